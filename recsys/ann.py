"""Approximate nearest neighbours of unit vectors by inner product: a faiss HNSW graph.

What it computes: the `k` catalog vectors with the largest inner product with a
query vector (the cosine, for unit vectors), found by walking a hierarchical
navigable small-world graph (Malkov and Yashunin, "Efficient and robust
approximate nearest neighbor search using Hierarchical Navigable Small World
graphs", TPAMI 2018; faiss's ``IndexHNSWFlat``) instead of scanning every
vector. Each query explores at least `ef_search` candidates (more when `k` is
larger), which sets how close the answer comes to the exact top k; the scores
it returns are exact inner products of the vectors it found.

Used where scanning a large catalog for every request costs more than it
should: the semantic retriever's candidates (`recsys.search.dense`) and the
semantic recommender (`recsys.recommenders.semantic`), from `DEFAULT_THRESHOLD`
vectors on. The graph is saved in faiss's own file format (`save`, `load`), so
an engine loads in a moment instead of building it again.

>>> import numpy as np
>>> vectors = np.eye(4, dtype=np.float32)
>>> scores, found = NearestIndex.build(vectors).search(vectors[[2]], 1)
>>> int(found[0, 0]), float(scores[0, 0])
(2, 1.0)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_THRESHOLD = 20_000  # vectors from which a catalog is searched through the graph
LINKS = 32  # neighbours per node (faiss's M)
EF_CONSTRUCTION = 64


class NearestIndex:
    """A faiss HNSW graph over unit vectors (inner product); see the module docstring."""

    def __init__(self, graph, ef_search: int = 128):
        self.graph = graph
        self.ef_search = ef_search

    @classmethod
    def build(cls, vectors: np.ndarray, ef_search: int = 128) -> NearestIndex:
        """The graph of `vectors`, shape (n, dim), in their order (a result's index is a row of them)."""
        import faiss

        graph = faiss.IndexHNSWFlat(vectors.shape[1], LINKS, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = EF_CONSTRUCTION
        graph.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(graph, ef_search)

    def __len__(self) -> int:
        return int(self.graph.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, indices), each (n_queries, k), best first; index -1 (score -inf) where fewer
        were found."""
        self.graph.hnsw.efSearch = max(k, self.ef_search)
        scores, found = self.graph.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return np.where(found >= 0, scores, -np.inf), found

    def vectors(self, indices: np.ndarray) -> np.ndarray:
        """The vectors at `indices`, shape (len(indices), dim), read from the graph's own row-major
        copy: 0.03 ms for 100 of 54,667 where gathering them from a (dim, n) matrix took 0.4 ms."""
        return self.graph.reconstruct_batch(np.asarray(indices, dtype=np.int64))

    def save(self, path: str | Path) -> None:
        import faiss

        faiss.write_index(self.graph, str(path))

    @classmethod
    def load(cls, path: str | Path, ef_search: int = 128) -> NearestIndex:
        import faiss

        return cls(faiss.read_index(str(path)), ef_search)
