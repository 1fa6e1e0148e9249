"""A cross-encoder reranker: reads the query and each product text together.

What it computes: for a query q and a product text d, a cross-encoder reads
the pair together ("[CLS] q [SEP] d [SEP]") and a classification head gives
one relevance logit, turned into a probability by a sigmoid (Nogueira and Cho,
"Passage Re-ranking with BERT", 2019). It is far slower than the first stage
per product, so it only reorders the first `top_n` candidates; the rest keep
their order after them. Models are trained by `recsys.training.reranker` and
saved as sentence-transformers CrossEncoder folders.

A folder is loaded once per process (keyed by its path and the size and time
of its weights, so a retrained model in the same folder is read again); on the
CPU torch's threads are set by `recsys.embeddings.configure_threads`. Scoring
is stage "rerank" of the active `recsys.timing.StageTimer`.

>>> reranker = CrossEncoderReranker("var/models/reranker")             # doctest: +SKIP
>>> reranker.probabilities("red mug", ["Red ceramic mug", "Oak chair"])  # doctest: +SKIP
array([0.97, 0.01])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from recsys import embeddings
from recsys.embedding_model import resolve_device
from recsys.search.rerank import Reranker, RerankRequest, register
from recsys.timing import stage

CROSS_ENCODER = "cross-encoder"
BATCH_SIZE = 64


@lru_cache(maxsize=4)
def _load(path: str, identity: str, device: str):
    """The CrossEncoder in `path`; `identity` (its weights' size and time) is only part of the key."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers.cross_encoder import CrossEncoder

        return CrossEncoder(path, device=device, local_files_only=True)


@register
class CrossEncoderReranker(Reranker):
    """A saved cross-encoder folder, loaded once; scores each (query, product text) pair.

    `device` None: CUDA when available, else the CPU. `batch_size` is the number
    of (query, text) pairs the model reads at once.
    """

    kind = CROSS_ENCODER

    def __init__(self, model_path: str | os.PathLike, device: str | None = None,
                 batch_size: int = BATCH_SIZE):
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a cross-encoder model folder (it has no config.json); "
                                    "train one with `recsys.training.reranker.train_reranker`")
        self.path = path.resolve()
        self.device = resolve_device(device)
        self.batch_size = batch_size
        if self.device == "cpu":
            embeddings.configure_threads()
        self.model = _load(str(self.path), embeddings.model_identity(self.path), self.device)

    @staticmethod
    def holds(folder: Path) -> bool:
        return (folder / "config.json").is_file()

    def scores(self, requests: Sequence[RerankRequest]) -> list[np.ndarray]:
        """Each request's probabilities of its texts for its query; all pairs in one batched pass."""
        return self.probabilities_many([request.query for request in requests],
                                       [request.texts for request in requests])

    def probabilities(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Relevance probabilities of `texts` for `query`, shape (len(texts),)."""
        return self.probabilities_many([query], [texts])[0]

    def probabilities_many(self, queries: Sequence[str], texts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """`probabilities` of each query's own texts, read by the model in one batched pass."""
        if len(queries) != len(texts):
            raise ValueError(f"{len(queries)} queries but {len(texts)} lists of texts")
        pairs = [[query, text] for query, chosen in zip(queries, texts) for text in chosen]
        if not pairs:
            return [np.zeros(0) for _ in queries]
        with stage("rerank"):
            flat = np.asarray(self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                                 convert_to_numpy=True), dtype=np.float64).reshape(-1)
        ends = np.cumsum([len(chosen) for chosen in texts])
        return np.split(flat, ends[:-1])


