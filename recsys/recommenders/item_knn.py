"""Item-based k-nearest neighbours on the implicit interaction matrix.

Each product keeps its `neighbors` most similar products by cosine similarity
of their customer vectors, shrunk towards zero for products with little
support (similarity = x_i . x_j / (|x_i| |x_j| + shrink)). A user's score for a
product is the sum of its similarities to the products in their history, so
every recommendation comes with the history items that produced it: "because
you bought X". Reference: Deshpande and Karypis, "Item-based top-N
recommendation algorithms", ACM TOIS 22(1), 2004.

>>> import pandas as pd
>>> interactions = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
...     "product_id": ["mug", "teapot", "mug", "teapot", "mug"], "weight": 1.0})
>>> ItemKNN().fit(interactions).recommend("c", k=1)[0][0]
'teapot'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.recommenders.base import Reason, Recommender, RecommenderConfig, binary, register


@dataclass
class ItemKNNConfig(RecommenderConfig):
    neighbors: int = 200
    shrink: float = 10.0
    binary: bool = True  # True: an interaction counts once, whatever its weight


def top_k_per_row(matrix: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the k largest positive entries of each row of a dense matrix."""
    n = matrix.shape[0]
    k = min(k, matrix.shape[1])
    top = np.argpartition(-matrix, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(matrix, top, axis=1)
    keep = values > 0
    rows = np.repeat(np.arange(n), k)[keep.ravel()]
    return sp.csr_matrix((values[keep], (rows, top[keep])), shape=matrix.shape, dtype=np.float32)


@register
class ItemKNN(Recommender):
    name = "item_knn"
    Config = ItemKNNConfig
    search_space: ClassVar[dict[str, list]] = {"neighbors": [50, 100, 200, 400],
                                               "shrink": [0.0, 10.0, 50.0]}

    def _input(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return binary(matrix) if self.config.binary else matrix

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        x = self._input(self.matrix).astype(np.float32)
        cooccurrence = (x.T @ x).toarray()
        norms = np.sqrt(np.diag(cooccurrence))
        similarity = cooccurrence / (np.outer(norms, norms) + self.config.shrink + 1e-9)
        np.fill_diagonal(similarity, 0.0)
        # Row j holds j's neighbours; scores are history @ similarity.
        self.similarity = top_k_per_row(similarity, self.config.neighbors)

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return (self._input(histories) @ self.similarity).toarray()

    def _similar(self, item_index: int) -> np.ndarray:
        return self.similarity[item_index].toarray().ravel()

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        weights = (history > 0).astype(np.float32) if self.config.binary else history
        contributions = weights * self.similarity[:, item_index].toarray().ravel()
        return self._history_reasons(contributions, "co_purchase", "because you bought {title}: "
                                     "customers who bought it bought this too")

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.similarity
        return {"sim_data": s.data, "sim_indices": s.indices, "sim_indptr": s.indptr}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.item_ids)
        self.similarity = sp.csr_matrix(
            (arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=(n, n))
