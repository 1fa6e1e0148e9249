"""Catalog encoding with Ray Data: the texts split into blocks, encoded by a pool of encoder actors
(CPU, or GPU with the torch backend), the vectors gathered back in the texts' order.

Each actor loads the same encoder as the local path (`recsys.embeddings.encode`): the ONNX export
run by onnxruntime (`recsys.onnx_encoder.OnnxEncoder`, fp32 or int8 with per-row scales), or the
SentenceTransformer on PyTorch, on the actor's GPU when it has one. Since a text's embedding does
not depend on the texts encoded with it, the vectors are those of the local path up to float
rounding (cosine >= 0.999 per title, tests/test_ray_embed.py), and are stored in the same
embedding folder format (`python -m recsys embed ... --engine ray`).

The cluster is the one in force (``$RAY_ADDRESS`` or the ``ray`` setting, `recsys.cluster`), or
``local`` (Ray started in this process, with every core) when none is named. Every node needs
the model (the shipped MiniLM is a requirement; a fine-tuned folder must be on a shared path)
and, for the ONNX backends, exports it on first use into ``$WORKBENCH_ONNX_DIR`` unless it is
there already (this process exports it first, so actors on this machine or a shared folder
find it).

>>> vectors = encode_on_ray(["cordless drill", "LED"], workers=2)   # doctest: +SKIP
>>> vectors.shape
(2, 384)
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from recsys import cluster
from recsys.embedding_model import check_backend, load_model
from recsys.onnx_encoder import OnnxEncoder, export

ROWS_PER_BLOCK = 4096
ENCODER_BATCH = 64  # texts per forward pass inside an actor, as the local path's default


class CatalogEncoder:
    """One actor of the pool: an encoder loaded once, then called on batches of rows
    ({"row": int64, "text": str}) -> {"row", "vector": float32 (rows x dim)}."""

    def __init__(self, model_path: str | None, backend: str, threads: int):
        os.environ["WORKBENCH_THREADS"] = str(threads)  # the actor's CPUs, not the machine's cores
        self.backend = backend
        if backend == "torch":
            import ray
            import torch

            torch.set_num_threads(threads)
            self.model = load_model(model_path, "cuda" if ray.get_gpu_ids() else "cpu")
        else:
            self.encoder = OnnxEncoder(model_path, backend.removeprefix("onnx-"), threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(text) for text in batch["text"]]
        if self.backend == "torch":
            vectors = self.model.encode(texts, batch_size=ENCODER_BATCH, convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
        else:
            vectors = self.encoder.encode(texts, batch_size=ENCODER_BATCH)
        return {"row": batch["row"], "vector": np.asarray(vectors, dtype=np.float32)}


def encode_on_ray(texts: list[str], model_path: str | None = None, backend: str = "onnx-int8",
                  workers: int = 2, batch_size: int = 256, num_gpus: float = 0.0,
                  address: str | None = None, cpus_per_worker: float = 1.0) -> np.ndarray:
    """Unit float32 embeddings of `texts`, shape (len(texts), dim), row i of texts[i], encoded
    on a Ray cluster by `workers` encoder actors of `cpus_per_worker` CPUs and `num_gpus` GPUs
    each, `batch_size` texts per call.

    `address`: the cluster (default: the one in force, else a local Ray). ClusterUnavailable
    when it cannot be reached; ValueError for GPUs with an ONNX backend (onnxruntime runs on CPU
    here) or a count below one.
    """
    check_backend(backend)
    if workers < 1 or batch_size < 1 or cpus_per_worker <= 0 or num_gpus < 0:
        raise ValueError(f"workers ({workers}) and batch size ({batch_size}) must be at least 1, CPUs "
                         f"per worker ({cpus_per_worker:g}) above 0 and GPUs ({num_gpus:g}) not negative")
    if num_gpus and backend != "torch":
        raise ValueError(f"GPUs encode with --backend torch; {backend} runs on CPU (onnxruntime)")
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    cluster.connect(address or cluster.ray_address() or cluster.LOCAL)
    import ray.data

    if backend != "torch":  # once here, not once per actor
        export(model_path, backend.removeprefix("onnx-"))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    frame = pd.DataFrame({"row": np.arange(len(texts), dtype=np.int64), "text": list(map(str, texts))})
    blocks = max(workers * 2, -(-len(texts) // ROWS_PER_BLOCK))
    bounds = np.linspace(0, len(texts), min(blocks, len(texts)) + 1).astype(int)
    chunks = [frame.iloc[start:end] for start, end in zip(bounds[:-1], bounds[1:])]
    threads = max(1, int(cpus_per_worker))
    encoder = {"model_path": model_path, "backend": backend, "threads": threads}
    encoded = ray.data.from_pandas(chunks).map_batches(
        CatalogEncoder, fn_constructor_kwargs=encoder, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker, num_gpus=num_gpus or None,
        runtime_env={"env_vars": {**cluster.runtime_env()["env_vars"], "WORKBENCH_THREADS": str(threads)}})
    vectors: np.ndarray | None = None
    seen = np.zeros(len(texts), dtype=bool)
    for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
        if vectors is None:
            vectors = np.empty((len(texts), batch["vector"].shape[1]), dtype=np.float32)
        vectors[batch["row"]] = batch["vector"]
        seen[batch["row"]] = True
    if not seen.all():
        raise RuntimeError(f"Ray Data returned {int(seen.sum())} of {len(texts)} embeddings")
    return vectors
