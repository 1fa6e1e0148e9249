"""EASE: a shallow linear autoencoder with a closed-form solution.

Learns an item-item weight matrix B with a zero diagonal that reconstructs each
user's interactions from their other interactions:
B = I - P diagMat(1 / diag(P)), with P = (X^T X + l2 I)^-1. Scores are X_u B,
so each recommendation decomposes into contributions of the user's history
("because you bought X"). Strong on top-N ranking despite its simplicity.
Reference: Harald Steck, "Embarrassingly Shallow Autoencoders for Sparse
Data", WWW 2019.

Memory and time grow with the square and cube of the number of products; past
`max_items` use implicit-feedback matrix factorisation ("als" or "bpr"), whose memory grows
linearly (item_knn builds a dense items x items co-occurrence matrix too).

>>> import pandas as pd
>>> interactions = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
...     "product_id": ["mug", "teapot", "mug", "teapot", "mug"], "weight": 1.0})
>>> EASE(l2=1.0).fit(interactions).recommend("c", k=1)[0][0]
'teapot'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from recsys.recommenders.base import Reason, Recommender, RecommenderConfig, binary, register


@dataclass
class EASEConfig(RecommenderConfig):
    l2: float = 400.0
    binary: bool = True
    max_items: int = 20_000


@register
class EASE(Recommender):
    name = "ease"
    Config = EASEConfig
    search_space: ClassVar[dict[str, list]] = {"l2": [50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]}

    def _input(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return binary(matrix) if self.config.binary else matrix

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        n = len(self.item_ids)
        if n > self.config.max_items:
            raise ValueError(f"EASE inverts an items x items matrix; {n:,} products exceed "
                             f"max_items={self.config.max_items:,}. Use als or bpr (memory linear in "
                             "the products) for catalogs this large.")
        x = self._input(self.matrix).astype(np.float64)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n)] += self.config.l2
        # The Gram matrix plus l2 I is symmetric positive definite: Cholesky is
        # about twice as fast as a general inverse.
        precision = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram, overwrite_a=True),
                                           np.eye(n), overwrite_b=True)
        weights = -precision / np.diag(precision)
        np.fill_diagonal(weights, 0.0)
        # C order: scipy copies a Fortran-ordered right-hand side on every product.
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self._input(histories) @ self.weights)

    def _similar(self, item_index: int) -> np.ndarray:
        return self.weights[item_index]

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        weights = (history > 0).astype(np.float32) if self.config.binary else history
        contributions = weights * self.weights[:, item_index]
        return self._history_reasons(contributions, "co_purchase", "because you bought {title}")

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = np.ascontiguousarray(arrays["weights"])
