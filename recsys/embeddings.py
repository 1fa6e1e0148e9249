"""Encoding texts with the embedding model, and the on-disk cache of catalog embeddings.

The model itself (the shipped all-MiniLM-L6-v2 or a fine-tuned folder, its identity, threads and
loading) is `recsys.embedding_model`'s; its names are importable from here too.

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
from pathlib import Path

import numpy as np

from recsys.embedding_model import (BACKENDS, check_backend, configure_threads, default_model_path,  # noqa: F401
                                    default_threads, load_model, model_identity, product_texts)
from recsys.onnx_encoder import load_encoder
from recsys.timing import stage

CACHE_DIR = Path(os.environ.get("WORKBENCH_EMBEDDINGS_DIR")
                 or Path(__file__).resolve().parent.parent / "var" / "embeddings")


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
