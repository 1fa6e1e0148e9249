"""Encoding texts with the embedding model, and the folder format of stored embeddings.

The model itself (the shipped all-MiniLM-L6-v2 or a fine-tuned folder, its identity, threads and
loading) is `recsys.embedding_model`'s; its names are importable from here too.

Encoding runs on one of three backends: "torch" (the SentenceTransformer), "onnx-fp32" and
"onnx-int8" (the model exported to ONNX and run by onnxruntime in length-sorted batches, see
`recsys.onnx_encoder`). fp32 gives the same embeddings as torch, int8 slightly different ones, so
every backend's embeddings are stored apart. On every backend a text's embedding does not depend
on the other texts encoded with it (up to float rounding, about 1e-7).

**An embedding folder** (written by `write_embeddings`, read by `read_embeddings`; the catalog
cache and ``python -m recsys embed`` both use it) holds three files:

- ``embeddings.npy``: float32, shape (count, dim), row i the embedding of id i; unit length
  when ``normalised``.
- ``ids.json``: a JSON list of `count` strings, the ids of the rows (product ids, or for the
  cache the SHA-1 of each text).
- ``meta.json``: what made them (`EmbeddingsMeta`): ``format``, ``model`` (the folder),
  ``model_fingerprint`` (`model_fingerprint`: SHA-256 of the model's files), ``backend``,
  ``encoder`` (the scheme, e.g. int8 with per-row activation scales), ``dim``, ``normalised``,
  ``count``, ``ids`` (what the ids are), ``created`` (UTC, ISO 8601).

Reading checks the files against each other and, when asked, against the model and backend that
will encode the queries: embeddings of another model or backend are refused with a message that
says which, never served.

The catalog cache keeps one such folder per (model, backend) under `var/embeddings/`, keyed by
the SHA-1 of each text, so a new catalog version encodes only its new texts and an unchanged one
is read back instead of re-encoded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from recsys.artifacts import artifact_path
from recsys.embedding_model import (BACKENDS, check_backend, configure_threads,  # noqa: F401
                                    default_model_path, default_threads, load_model, model_fingerprint,
                                    model_identity, product_texts)
from recsys.onnx_encoder import SCHEMES, load_encoder
from recsys.timing import stage

CACHE_DIR = artifact_path("embeddings", "WORKBENCH_EMBEDDINGS_DIR")  # recsys.artifacts


def encode(texts: list[str], model_path: str | None = None, batch_size: int = 64,
           backend: str = "torch") -> np.ndarray:
    """Unit-length float32 embeddings of `texts`, shape (len(texts), dim), by `backend`.

    The time spent is stage "encode" of the active `recsys.timing.StageTimer`.
    """
    check_backend(backend)
    if backend != "torch":
        encoder = load_encoder(model_path, backend.removeprefix("onnx-"))
        with stage("encode"):
            return encoder.encode(list(texts), batch_size=batch_size)
    model = load_model(model_path)
    with stage("encode"):
        vectors = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def encode_queries(queries: list[str], model_path: str | None = None, backend: str = "torch") -> np.ndarray:
    """Unit-length float32 embeddings of search queries, shape (len(queries), dim), by `backend`.

    On the ONNX backends each query is encoded alone (`OnnxEncoder.encode_queries`), so its
    embedding does not depend on the other queries of the call; on torch, as `encode`.
    The time spent is stage "encode" of the active `recsys.timing.StageTimer`.
    """
    check_backend(backend)
    if backend == "torch":
        return encode(queries, model_path, backend=backend)
    encoder = load_encoder(model_path, backend.removeprefix("onnx-"))
    with stage("encode"):
        return encoder.encode_queries(list(queries))


FORMAT = "recsys-embeddings/1"
EMBEDDINGS_FILE, IDS_FILE, META_FILE = "embeddings.npy", "ids.json", "meta.json"
CACHE_IDS = "sha1 of the text"
log = logging.getLogger(__name__)


class EmbeddingsMismatch(ValueError):
    """An embedding folder that must not be used: another model or backend, or torn files."""


def encoder_scheme(backend: str) -> str:
    """What embeddings `backend` makes, as recorded in meta.json's ``encoder``."""
    check_backend(backend)
    if backend == "torch":
        return "sentence-transformers on PyTorch"
    return SCHEMES[backend.removeprefix("onnx-")]


@dataclass(frozen=True)
class EmbeddingsMeta:
    """meta.json of an embedding folder (see the module's docstring)."""

    model: str
    model_fingerprint: str
    backend: str
    encoder: str
    dim: int
    normalised: bool
    count: int
    ids: str
    created: str
    format: str = FORMAT

    @classmethod
    def describe(cls, model_path: str | Path | None, backend: str, count: int, dim: int,
                 ids: str) -> EmbeddingsMeta:
        """The meta of `count` unit embeddings of size `dim` made by `model_path` on `backend`."""
        model = Path(model_path) if model_path else default_model_path()
        return cls(model=str(model), model_fingerprint=model_fingerprint(model), backend=backend,
                   encoder=encoder_scheme(backend), dim=dim, normalised=True, count=count, ids=ids,
                   created=datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "meta.json") -> EmbeddingsMeta:
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        missing = sorted(known - set(data) - {"format"})
        if unknown or missing:
            raise EmbeddingsMismatch(f"{source}: " + "; ".join(
                part for part in (f"unknown fields {', '.join(unknown)}" if unknown else "",
                                  f"missing fields {', '.join(missing)}" if missing else "") if part))
        return cls(**data)


def write_embeddings(folder: str | Path, ids: list[str], vectors: np.ndarray, meta: EmbeddingsMeta) -> Path:
    """Write `vectors` (count x dim float32) with their `ids` and `meta` into `folder`.

    Each file is written beside its place and renamed into it, meta.json last, so a reader sees
    whole files; one that comes between two renames sees counts that disagree and refuses them.
    """
    folder = Path(folder)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape != (len(ids), meta.dim) or meta.count != len(ids):
        raise ValueError(f"{len(ids)} ids, vectors of shape {vectors.shape} and meta count {meta.count}, "
                         f"dim {meta.dim} do not agree")
    folder.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{time.monotonic_ns()}"
    writers = ((EMBEDDINGS_FILE, lambda f: np.save(f, vectors)),
               (IDS_FILE, lambda f: f.write(json.dumps(list(map(str, ids))).encode())),
               (META_FILE, lambda f: f.write(json.dumps(meta.to_dict(), indent=2).encode())))
    for name, write in writers:
        temporary = folder / f".{name}.{token}.tmp"
        try:
            with open(temporary, "wb") as file:
                write(file)
            temporary.replace(folder / name)
        finally:
            temporary.unlink(missing_ok=True)
    return folder


def read_embeddings(folder: str | Path, model_path: str | Path | None = None,
                    backend: str | None = None) -> tuple[list[str], np.ndarray, EmbeddingsMeta]:
    """The ids, vectors (count x dim float32) and meta of the embedding folder `folder`.

    With `backend`, the folder must have been made by that backend and by the model in
    `model_path` (None: the shipped one), compared by fingerprint of the model's files: else
    `EmbeddingsMismatch`, which names both. FileNotFoundError when the folder has no meta.json.
    """
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"{folder} is not an embedding folder: it has no {META_FILE}")
    try:
        meta = EmbeddingsMeta.from_dict(json.loads(meta_path.read_text()), str(meta_path))
    except (json.JSONDecodeError, TypeError) as error:
        raise EmbeddingsMismatch(f"{meta_path} is not readable embedding metadata: {error}") from None
    if meta.format != FORMAT:
        raise EmbeddingsMismatch(f"{meta_path}: format {meta.format!r}, this version reads {FORMAT!r}")
    if backend is not None:
        model = Path(model_path) if model_path else default_model_path()
        fingerprint = model_fingerprint(model)
        if meta.model_fingerprint != fingerprint:
            raise EmbeddingsMismatch(
                f"{folder} holds embeddings of another model: {meta.model} (fingerprint "
                f"{meta.model_fingerprint}), not {model} (fingerprint {fingerprint}); encode the "
                f"catalog again with this model (python -m recsys embed ... --model {model})")
        if (meta.backend, meta.encoder) != (backend, encoder_scheme(backend)):
            raise EmbeddingsMismatch(
                f"{folder} holds embeddings made by {meta.backend} ({meta.encoder}), not by "
                f"{backend} ({encoder_scheme(backend)}); encode the catalog again with --backend {backend}")
    try:
        vectors = np.load(folder / EMBEDDINGS_FILE)
        ids = json.loads((folder / IDS_FILE).read_text())
    except (OSError, ValueError) as error:
        raise EmbeddingsMismatch(f"{folder}: cannot read its embeddings: {error}") from None
    if vectors.shape != (meta.count, meta.dim) or len(ids) != meta.count:
        raise EmbeddingsMismatch(f"{folder}: {EMBEDDINGS_FILE} has shape {vectors.shape} and {IDS_FILE} "
                                 f"{len(ids)} ids, but {META_FILE} says {meta.count} x {meta.dim}")
    return ids, np.asarray(vectors, dtype=np.float32), meta


def cached_encode(texts: list[str], model_path: str | None = None,
                  cache_dir: Path | None = None, backend: str = "torch") -> np.ndarray:
    """`encode`, with every text's embedding kept on disk per model and backend.

    The cache of a model and backend is one embedding folder under `cache_dir` whose ids are
    the SHA-1 of each text. Only texts not seen before are encoded, so a new catalog version
    that adds a few products encodes those few. The torch backend's folder is the model's
    identity; another backend's adds its name (``<identity>-onnx-int8``). A folder made by
    another model or scheme (say int8 before per-row scales) is encoded again from scratch.
    """
    check_backend(backend)
    name = model_identity(model_path) + ("" if backend == "torch" else f"-{backend}")
    folder = (cache_dir or CACHE_DIR) / name
    keys = [hashlib.sha1(t.encode("utf-8", "replace")).hexdigest() for t in texts]
    known_keys: list[str] = []
    known_vectors = None
    try:
        known_keys, known_vectors, _ = read_embeddings(folder, model_path, backend)
    except FileNotFoundError:
        pass
    except EmbeddingsMismatch as error:
        log.warning("embedding cache not used, encoding again: %s", error)
    position = {key: i for i, key in enumerate(known_keys)}
    missing = sorted({key: text for key, text in zip(keys, texts) if key not in position}.items())
    if missing:
        fresh = encode([text for _, text in missing], model_path, backend=backend)
        known_keys = known_keys + [key for key, _ in missing]
        known_vectors = fresh if known_vectors is None else np.vstack([known_vectors, fresh])
        write_embeddings(folder, known_keys, known_vectors, EmbeddingsMeta.describe(
            model_path, backend, len(known_keys), known_vectors.shape[1], CACHE_IDS))
        position = {key: i for i, key in enumerate(known_keys)}
    if known_vectors is None:  # no texts and nothing cached
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(known_vectors[[position[key] for key in keys]], dtype=np.float32)


# --- the command: python -m recsys embed ... -----------------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `embed` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "embed", help="encode a catalog file into an embedding folder (JSON on stdout)",
        description="Encode the texts of a catalog CSV with the embedding model and write "
                    f"{EMBEDDINGS_FILE} (float32, unit rows), {IDS_FILE} and {META_FILE} into --out "
                    "(the format of recsys.embeddings). Prints titles, seconds and titles_per_s.")
    parser.add_argument("--catalog", required=True, help="a CSV file with a header row")
    parser.add_argument("--id-col", required=True, help="the column of the product ids")
    parser.add_argument("--text-col", required=True, help="the column of the texts to encode")
    parser.add_argument("--model", help="sentence-transformers model folder (default: the shipped "
                                        "all-MiniLM-L6-v2)")
    parser.add_argument("--backend", default="onnx-int8", choices=BACKENDS,
                        help="encoder (default onnx-int8: int8 with per-row activation scales)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help="local: in this process; ray: Ray Data over a pool of encoder actors on the Ray "
                             "cluster in force ($RAY_ADDRESS or the 'ray' setting; a local Ray when none is "
                             "named), the same vectors")
    parser.add_argument("--address", help="with --engine ray: the Ray cluster (HOST:PORT, ray://HOST:PORT or "
                                          "local) instead of the one in force")
    parser.add_argument("--workers", type=int, default=2,
                        help="with --engine ray: encoder actors (default 2)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0,
                        help="with --engine ray: CPUs (and threads) of each actor (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="with --engine ray: GPUs of each actor (default 0; needs --backend torch)")
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.set_defaults(func=run)
    return parser


def read_catalog_texts(path: str | Path, id_column: str, text_column: str) -> tuple[list[str], list[str]]:
    """The ids and texts of a catalog CSV; ValueError naming the file and column when they are not there."""
    import pandas as pd

    try:
        catalog = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise ValueError(f"cannot read the catalog {path}: {error}") from None
    for option, column in (("--id-col", id_column), ("--text-col", text_column)):
        if column not in catalog.columns:
            raise ValueError(f"{path} has no column {column!r} (given as {option}); its columns are "
                             f"{', '.join(map(repr, catalog.columns))}")
    ids = catalog[id_column].astype(str)
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        first = duplicated.iloc[0]
        rows = [i + 2 for i in np.flatnonzero(ids.to_numpy() == first)[:2]]  # +2: header, 1-based
        raise ValueError(f"{path}: column {id_column!r} has {len(duplicated)} repeated ids, e.g. {first!r} "
                         f"on lines {rows[0]} and {rows[1]}; each row needs its own id")
    return ids.tolist(), catalog[text_column].astype(str).str.strip().tolist()


def run(args) -> int:
    """Run `embed`; prints one JSON object on stdout, returns the exit status."""
    import contextlib

    if args.model and not Path(args.model).is_dir():
        print(f"error: the model folder {args.model} does not exist", file=sys.stderr)
        return 1
    try:
        ids, texts = read_catalog_texts(args.catalog, args.id_col, args.text_col)
        if args.engine == "ray" and args.gpus_per_worker and args.backend != "torch":
            raise ValueError(f"--gpus-per-worker needs --backend torch; {args.backend} runs on CPU")
        if args.engine == "ray" and (args.workers < 1 or args.cpus_per_worker <= 0):
            raise ValueError("--workers must be at least 1 and --cpus-per-worker above 0")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    on_ray = args.engine == "ray"
    if on_ray:
        threads = max(1, int(args.cpus_per_worker))
    else:
        threads = configure_threads() if args.backend == "torch" else default_threads()
    # Exporters' and loaders' chatter must not reach stdout, which carries the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        if on_ray:
            from recsys.cluster import ClusterUnavailable

            try:
                vectors, seconds = _encode_on_ray(texts, args)
            except ClusterUnavailable as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
        else:
            encode(texts[:1], args.model, backend=args.backend)   # load (and export) before timing
            started = time.perf_counter()
            vectors = encode(texts, args.model, batch_size=args.batch_size, backend=args.backend)
            seconds = time.perf_counter() - started
        meta = EmbeddingsMeta.describe(args.model, args.backend, len(ids), vectors.shape[1],
                                       f"{args.id_col} of {Path(args.catalog).name}")
        write_embeddings(args.out, ids, vectors, meta)
    print(json.dumps({"titles": len(texts), "seconds": round(seconds, 3),
                      "titles_per_s": round(len(texts) / seconds, 1) if seconds else None,
                      "backend": args.backend, "engine": args.engine,
                      "workers": args.workers if on_ray else 1, "threads": threads, "model": meta.model,
                      "model_fingerprint": meta.model_fingerprint, "dim": meta.dim,
                      "out": str(Path(args.out))}))
    return 0


def _encode_on_ray(texts: list[str], args) -> tuple[np.ndarray, float]:
    """`embed --engine ray`: the vectors and the seconds they took, the actors' start included
    (Ray itself is joined, or started, before timing). An actor runs forward passes of
    --batch-size texts, four to a call."""
    from recsys import cluster
    from recsys.ray_embed import encode_on_ray

    address = args.address or cluster.ray_address() or cluster.LOCAL
    cluster.connect(address)
    started = time.perf_counter()
    vectors = encode_on_ray(texts, args.model, backend=args.backend, workers=args.workers,
                            batch_size=4 * args.batch_size, num_gpus=args.gpus_per_worker,
                            address=address, cpus_per_worker=args.cpus_per_worker,
                            encoder_batch=args.batch_size)
    return vectors, time.perf_counter() - started
