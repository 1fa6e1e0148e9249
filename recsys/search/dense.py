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
`search` encodes its one query; `search_many` encodes its queries in batches on torch and one at a
time on ONNX, on the graph for one text (int8: one activation scale per query, see
`recsys.onnx_encoder`), so that a query has the same vector in an evaluation as in a search.
The reason of a hit is its cosine similarity.

Large catalogs: the config's `index` (`recsys.ann.IndexConfig`) names the nearest-neighbour
index the hybrid takes the semantic candidates from: "auto" scores every product below 20,000
products (the exact scan above), walks a faiss HNSW graph from 20,000 and scans IVF-PQ cells
from 500,000; "exact", "hnsw" and "ivfpq" choose one whatever the size. A candidate's score is
its exact cosine in every case. Configs saved with the older `ann_threshold` (0: exact) and
`ann_ef_search` load as the same index.

>>> import pandas as pd
>>> catalog = pd.DataFrame({"product_id": ["a", "b"], "title": ["Coffee mug", "Lawn mower"]})
>>> DenseRetriever().fit(catalog).search("cup for tea", k=1)[0].product_id
'a'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys import embeddings as sentence_embeddings
from recsys.ann import NEAREST_FILE, IndexConfig, NearestIndex, legacy_index_params
from recsys.search.base import QueryScores, Retriever, RetrieverConfig, SearchReason, register


@dataclass
class DenseConfig(RetrieverConfig):
    # A sentence-transformers model folder; None: the shipped all-MiniLM-L6-v2.
    model_path: str | None = None
    # The encoder: "torch", "onnx-fp32" or "onnx-int8" (recsys.embeddings.BACKENDS).
    backend: str = "torch"
    # The nearest-neighbour index the hybrid takes the semantic candidates from (recsys.ann):
    # by default every product is scored below 20,000 products, an HNSW graph from 20,000 and
    # IVF-PQ from 500,000.
    index: IndexConfig = field(default_factory=IndexConfig)

    def __post_init__(self):
        sentence_embeddings.check_backend(self.backend)
        if isinstance(self.index, dict):
            self.index = IndexConfig.from_dict(self.index)

    @classmethod
    def from_dict(cls, data: dict) -> DenseConfig:
        return super().from_dict(legacy_index_params(data, IndexConfig()))


@register
class DenseRetriever(Retriever):
    name = "semantic"
    Config = DenseConfig

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        # Kept as (dim, n_products), C-contiguous: a query's product with it streams the
        # matrix row by row, 2.6 times faster than with (n_products, dim) on our machine.
        self._by_dimension = np.zeros((0, 0), dtype=np.float32)
        self._nearest: NearestIndex | None = None

    @property
    def embeddings(self) -> np.ndarray:
        """Unit-length product embeddings, shape (n_products, dim) (a view)."""
        return self._by_dimension.T

    def _fit(self, catalog: pd.DataFrame) -> None:
        vectors = sentence_embeddings.cached_encode(self.texts(catalog), self.config.model_path,
                                                    backend=self.config.backend)
        self._by_dimension = np.ascontiguousarray(vectors.T, dtype=np.float32)
        self._nearest = self._built_index()

    @property
    def index_kind(self) -> str:
        """The kind of index that searches this catalog: "exact", "hnsw" or "ivfpq"."""
        return self.config.index.chosen_kind(self._by_dimension.shape[1])

    def _built_index(self) -> NearestIndex | None:
        """The catalog's approximate index; None where every product is scored by the retriever's
        own scan (its torch product, as before indexes could be chosen: results unchanged)."""
        if self.index_kind == "exact":
            return None
        return NearestIndex.build(self.embeddings, self.config.index)

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """Unit vectors of `queries`, shape (len(queries), dim); on torch one batched call, on
        ONNX each query alone (`recsys.embeddings.encode_queries`)."""
        return sentence_embeddings.encode_queries(queries, self.config.model_path,
                                                  backend=self.config.backend)

    def _scores(self, queries: list[str]) -> np.ndarray:
        import torch

        vectors = torch.from_numpy(self.encode_queries(queries))
        # The product runs on torch's thread pool, like the encoding before it: numpy's
        # BLAS pool would compete with torch's for the two cores (see docs/benchmarks.md).
        with torch.inference_mode():
            return (vectors @ torch.from_numpy(self._by_dimension)).numpy()

    def _query_scores(self, queries: list[str]) -> list[QueryScores]:
        if self._nearest is None:
            return super()._query_scores(queries)
        return [NearestScores(self, vector) for vector in self.encode_queries(queries)]

    def _reasons(self, query: str, indices: np.ndarray, scores: np.ndarray) -> list[list[SearchReason]]:
        return [[SearchReason("cosine", f"cosine similarity {score:.3f}", float(score))]
                for score in scores]

    def _score_many(self, queries: list[str], indices: list[np.ndarray]) -> list[np.ndarray]:
        vectors = self.encode_queries(queries)
        return [self.embeddings[chosen] @ vector for vector, chosen in zip(vectors, indices)]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"embeddings": self.embeddings}

    def _save_files(self, folder: Path) -> None:
        if self._nearest is not None:
            self._nearest.save(folder / NEAREST_FILE)

    def _restore(self, arrays: dict[str, np.ndarray], folder: Path) -> None:
        # Saved from the transposed view, so the file is Fortran-ordered: .T needs no copy.
        self._by_dimension = np.ascontiguousarray(arrays["embeddings"].T, dtype=np.float32)
        saved = folder / NEAREST_FILE
        if saved.is_file() and self.index_kind != "exact":
            self._nearest = NearestIndex.load(saved, self.config.index)
            if len(self._nearest) == self._by_dimension.shape[1] and self._nearest.kind == self.index_kind:
                return
        self._nearest = self._built_index()


class NearestScores(QueryScores):
    """One query's semantic scores through the index: its best products as `recsys.ann.NearestIndex`
    finds them, the exact cosine of any product asked for; every product matches (as in the scan)."""

    def __init__(self, retriever: DenseRetriever, vector: np.ndarray):
        self.retriever, self.vector = retriever, vector
        self.matches = retriever._by_dimension.shape[1]
        self._tops: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._tops:
            scores, found = self.retriever._nearest.search(self.vector[None, :], k)
            kept = found[0] >= 0
            self._tops[k] = found[0][kept].astype(np.int64), scores[0][kept].astype(np.float64)
        return self._tops[k]

    def at(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = self.retriever._nearest.vectors(indices) @ self.vector
        return scores.astype(np.float64), np.ones(len(indices), dtype=bool)
