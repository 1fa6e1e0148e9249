"""Semantic search: dense retrieval by the cosine similarity of sentence embeddings.

What it computes: every product text and the query are embedded by a
sentence-transformers model (by default all-MiniLM-L6-v2, shipped on disk; see
`recsys.embeddings`) into unit vectors; a product's score is the dot product,
i.e. the cosine similarity, of its vector and the query's, in [-1, 1]
(Reimers and Gurevych, "Sentence-BERT", EMNLP 2019; Karpukhin et al., "Dense
Passage Retrieval", EMNLP 2020). Search is exact: one matrix product over the
whole catalog (n_products x 384 float32, 84 MB for 55k products), which on two
cores takes a few milliseconds per query.

Catalog embeddings come from `cached_encode`: they are computed once per
(model, backend, catalog texts) and read back from `var/embeddings/` afterwards.
`backend` picks the encoder: "torch" (the SentenceTransformer), "onnx-fp32"
(the same model exported to ONNX, same embeddings, several times faster per
query) or "onnx-int8" (int8 weights, activations quantised per token row, so a
text's embedding does not depend on its batch; see `recsys.onnx_encoder` and
docs/benchmarks.md for its speed and nDCG). Query encoding is stage "encode" of
`recsys.timing`.
`search` encodes its one query; `search_many` encodes its queries in batches.
The reason of a hit is its cosine similarity.

>>> import pandas as pd
>>> catalog = pd.DataFrame({"product_id": ["a", "b"], "title": ["Coffee mug", "Lawn mower"]})
>>> DenseRetriever().fit(catalog).search("cup for tea", k=1)[0].product_id
'a'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys import embeddings as sentence_embeddings
from recsys.search.base import Retriever, RetrieverConfig, SearchReason, register


@dataclass
class DenseConfig(RetrieverConfig):
    # A sentence-transformers model folder; None: the shipped all-MiniLM-L6-v2.
    model_path: str | None = None
    # The encoder: "torch", "onnx-fp32" or "onnx-int8" (recsys.embeddings.BACKENDS).
    backend: str = "torch"

    def __post_init__(self):
        sentence_embeddings.check_backend(self.backend)


@register
class DenseRetriever(Retriever):
    name = "semantic"
    Config = DenseConfig

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        # Kept as (dim, n_products), C-contiguous: a query's product with it streams the
        # matrix row by row, 2.6 times faster than with (n_products, dim) on our machine.
        self._by_dimension = np.zeros((0, 0), dtype=np.float32)

    @property
    def embeddings(self) -> np.ndarray:
        """Unit-length product embeddings, shape (n_products, dim) (a view)."""
        return self._by_dimension.T

    def _fit(self, catalog: pd.DataFrame) -> None:
        vectors = sentence_embeddings.cached_encode(self.texts(catalog), self.config.model_path,
                                                    backend=self.config.backend)
        self._by_dimension = np.ascontiguousarray(vectors.T, dtype=np.float32)

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """Unit vectors of `queries`, shape (len(queries), dim); one model call, batched."""
        return sentence_embeddings.encode(queries, self.config.model_path,
                                          backend=self.config.backend)

    def _scores(self, queries: list[str]) -> np.ndarray:
        import torch

        vectors = torch.from_numpy(self.encode_queries(queries))
        # The product runs on torch's thread pool, like the encoding before it: numpy's
        # BLAS pool would compete with torch's for the two cores (see docs/benchmarks.md).
        with torch.inference_mode():
            return (vectors @ torch.from_numpy(self._by_dimension)).numpy()

    def _reasons(self, query: str, indices: np.ndarray, scores: np.ndarray) -> list[list[SearchReason]]:
        return [[SearchReason("cosine", f"cosine similarity {score:.3f}", float(score))]
                for score in scores]

    def _score_many(self, queries: list[str], indices: list[np.ndarray]) -> list[np.ndarray]:
        vectors = self.encode_queries(queries)
        return [self.embeddings[chosen] @ vector for vector, chosen in zip(vectors, indices)]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"embeddings": self.embeddings}

    def _restore(self, arrays: dict[str, np.ndarray], folder: Path) -> None:
        # Saved from the transposed view, so the file is Fortran-ordered: .T needs no copy.
        self._by_dimension = np.ascontiguousarray(arrays["embeddings"].T, dtype=np.float32)
