"""Semantic recommendations from product-text embeddings.

Each product is embedded from its title (and description, when the catalog has
one) with the active sentence-transformers model (by default the shipped
all-MiniLM-L6-v2). A user's profile is the weighted mean of the embeddings of
the products in their history, weights log(1 + interaction weight); products
are scored by cosine similarity to the profile, and item-to-item similarity is
the cosine of two products' embeddings. Every recommendation names the history
item it is closest to: "similar to X you bought".

It needs no co-purchase data, so it covers products nobody bought yet (every
catalog product is a candidate), at the price of recommending near-duplicates.
Reference: Reimers and Gurevych, "Sentence-BERT", EMNLP 2019.

Large catalogs are searched approximately, through the index the config's `index` names
(`recsys.ann.IndexConfig`; "auto": a faiss HNSW graph (Malkov and Yashunin, 2018) from 20,000
products, IVF-PQ from 500,000): it gives each profile its `ann_candidates` nearest products plus
as many as the user has seen, and every other product scores -inf. On Home Depot's 54,667
titles the graph's 500 nearest took 1.4 ms instead of 3.3 ms for the exact scan, with 99.5% of
the exact top 100 found (docs/benchmarks.md, "REST service").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.ann import IndexConfig, NearestIndex, legacy_index_params
from recsys.embeddings import cached_encode
from recsys.recommenders.base import Reason, Recommender, RecommenderConfig, register


@dataclass
class SemanticConfig(RecommenderConfig):
    model_path: str | None = None  # None: the shipped all-MiniLM-L6-v2
    # The nearest-neighbour index of the catalog (recsys.ann): "auto" scores every product below
    # 20,000 products; the graph explores 64 candidates a profile (at least as many as wanted).
    index: IndexConfig = field(default_factory=lambda: IndexConfig(hnsw_ef_search=64))
    ann_candidates: int = 300  # products taken from the index per profile, besides the seen ones

    def __post_init__(self):
        if isinstance(self.index, dict):
            self.index = IndexConfig.from_dict(self.index)

    @classmethod
    def from_dict(cls, data: dict) -> SemanticConfig:
        return super().from_dict(legacy_index_params(data, IndexConfig(hnsw_ef_search=64)))


def product_texts(catalog: pd.DataFrame, item_ids: np.ndarray) -> list[str]:
    """Title (plus description where present) of each product, in `item_ids` order."""
    by_id = catalog.assign(product_id=catalog["product_id"].astype(str)).drop_duplicates(
        "product_id").set_index("product_id")
    texts = by_id["title"].astype(str)
    if "description" in by_id:
        described = by_id["description"].fillna("").astype(str)
        texts = texts.where(described == "", texts + ". " + described)
    return texts.reindex(item_ids).fillna("").tolist()


@register
class Semantic(Recommender):
    name = "semantic"
    Config = SemanticConfig
    needs_catalog = True

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        self.embeddings = cached_encode(product_texts(catalog, self.item_ids), self.config.model_path)
        self._index_embeddings()

    def _index_embeddings(self) -> None:
        # Scoring reads every product's vector per call; one (1 x d) @ (d x n) product over a
        # contiguous dimension-major copy took 3.3 ms for 54,667 products, (n x d) @ (d x 1)
        # over the row-major matrix 8.6 ms (one thread): the copy costs the matrix's size again.
        self._by_dimension = np.ascontiguousarray(self.embeddings.T, dtype=np.float32)
        self._graph = None
        if self.config.index.chosen_kind(len(self.embeddings)) != "exact":
            self._graph = NearestIndex.build(self.embeddings, self.config.index)

    def _profiles(self, histories: sp.csr_matrix) -> np.ndarray:
        weights = histories.copy().astype(np.float32)
        weights.data = np.log1p(np.clip(weights.data, 0, None))
        profiles = np.asarray(weights @ self.embeddings)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        return profiles / np.where(norms > 0, norms, 1.0)

    def _matmul(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        # In torch, like the semantic retriever: numpy's OpenBLAS pool and torch's
        # OpenMP pool taking turns on 2 cores made a one-user product 8 ms instead
        # of 0.3 ms (docs/benchmarks.md, "Recommenders on Online Retail").
        import torch

        return (torch.from_numpy(np.ascontiguousarray(left, dtype=np.float32))
                @ torch.from_numpy(np.ascontiguousarray(right, dtype=np.float32))).numpy()

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        profiles = self._profiles(histories)
        if self._graph is None:
            return self._matmul(profiles, self._by_dimension)
        scores = np.full((len(profiles), len(self.item_ids)), -np.inf, dtype=np.float32)
        for row, profile in enumerate(profiles):
            wanted = self.config.ann_candidates + histories[row].nnz
            similarity, found = self._graph.search(profile[None, :], wanted)
            kept = found[0] >= 0
            scores[row, found[0][kept]] = similarity[0][kept]
        return scores

    def _similar(self, item_index: int) -> np.ndarray:
        return self._matmul(self.embeddings[item_index][None, :], self._by_dimension)[0]

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        seen = np.flatnonzero(history > 0)
        if not len(seen):
            return []
        similarity = self.embeddings[seen] @ self.embeddings[item_index]
        reasons = []
        for position in np.argsort(-similarity)[:2]:
            other = self.item_ids[seen[position]]
            reasons.append(Reason("similar_embedding",
                                  f"similar to {self.title(other)} you bought "
                                  f"(cosine {similarity[position]:.2f})",
                                  float(similarity[position]), other))
        return reasons

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"embeddings": self.embeddings}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.embeddings = arrays["embeddings"]
        self._index_embeddings()
