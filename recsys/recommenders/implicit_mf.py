"""Matrix factorisation for implicit feedback, fitted by the `implicit` library: ALS and BPR.

- ``als``: alternating least squares on confidence-weighted preferences (Hu, Koren and Volinsky,
  "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008). A customer's bought
  products are preferences 1 with confidence alpha x weight (implicit's form), everything else 0
  with confidence 1. A session or a customer unknown at fitting time is folded in exactly: their factors
  are the ALS user step on their history, given the item factors (no refit).
- ``bpr``: Bayesian personalised ranking (Rendle et al., UAI 2009), sampled pairs of a bought
  and a not-bought product; a session is folded in as the mean of its products' factors.

`implicit` only fits; scoring, explanations and persistence are numpy here, behind the Recommender
contract. Its threads: `threads` (0: every core; BPR keeps 1, to fit the same model twice).

>>> import pandas as pd
>>> baskets = {"a": ["mug", "teapot"], "b": ["mug", "teapot"], "c": ["chair", "table"],
...            "d": ["chair", "table"], "e": ["mug"]}
>>> interactions = pd.DataFrame([(u, p) for u, items in baskets.items() for p in items],
...                             columns=["user_id", "product_id"]).assign(weight=1.0)
>>> ALS(factors=4, iterations=30, regularization=0.1).fit(interactions).recommend("e", k=1)[0][0]
'teapot'
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.recommenders.base import Reason, Recommender, RecommenderConfig, register


@dataclass
class ALSConfig(RecommenderConfig):
    # The best of the search space on a validation split of Online Retail's training part
    # (`python -m recsys tune --algo als`; docs/benchmarks.md): alpha 1 beat 10 and 40.
    factors: int = 128
    regularization: float = 0.05
    alpha: float = 1.0  # confidence alpha x weight of a bought product
    iterations: int = 15
    seed: int = 7
    threads: int = 0


@dataclass
class BPRConfig(RecommenderConfig):
    # The best of the search space on a validation split of Online Retail's training part
    # (`python -m recsys tune --algo bpr`; docs/benchmarks.md): 128 factors scored nDCG@10 0.1015
    # against 0.0814 for the first default of 64; the learning rate and regularisation stayed.
    factors: int = 128
    learning_rate: float = 0.05
    regularization: float = 0.01
    iterations: int = 100
    seed: int = 7
    # One thread: BPR's stochastic updates from several threads race (hogwild), and two fits on the
    # same data would not give the same model.
    threads: int = 1


class _Factorised(Recommender):
    """Scores are user factors . item factors; items are similar by the cosine of their factors."""

    user_factors: np.ndarray
    item_factors: np.ndarray

    # The implicit class that fits the factors ("module:Class") and the config fields it takes.
    implicit_class: ClassVar[str]
    implicit_params: ClassVar[tuple[str, ...]]

    def _model(self):
        module, name = self.implicit_class.split(":")
        config = self.config.to_dict()
        return getattr(import_module(module), name)(
            **{param: config[param] for param in self.implicit_params},
            random_state=config["seed"], num_threads=config["threads"])

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        # implicit runs its own threads, and asks for BLAS's pool to stay out of their way.
        with threadpool_limits(limits=1, user_api="blas"):
            model = self._model()
            model.fit(self._confidence(self.matrix), show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._normalised = None

    def _confidence(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(matrix, dtype=np.float32)

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        trained = np.diff(self.matrix.indptr)[np.maximum(user_indices, 0)]
        known = (user_indices >= 0) & (np.diff(histories.indptr) == trained)
        # A known customer without session products keeps the factors learned for them; only the
        # others are folded in (ALS solves a system per row: folding in all 4,240 test customers
        # took 498 s on the busy 2-core machine).
        factors = np.zeros((histories.shape[0], self.item_factors.shape[1]), dtype=np.float32)
        factors[known] = self.user_factors[user_indices[known]]
        rest = np.flatnonzero(~known)
        if len(rest):
            factors[rest] = self._fold_in(histories[rest])
        # In float64: float32 products differ in their last bits with the batch's size, and a
        # customer's scores must not depend on who else is scored with them.
        return factors.astype(np.float64) @ self.item_factors.T.astype(np.float64)

    def _unit_items(self) -> np.ndarray:
        if getattr(self, "_normalised", None) is None:
            norms = np.linalg.norm(self.item_factors, axis=1, keepdims=True)
            self._normalised = self.item_factors / np.maximum(norms, 1e-12)
        return self._normalised

    def _similar(self, item_index: int) -> np.ndarray:
        unit = self._unit_items()
        return unit @ unit[item_index]

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        contributions = (history > 0) * self._similar(item_index)
        return self._history_reasons(contributions, "similar_taste",
                                     "customers who bought {title} have the same taste")

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors, self.item_factors = arrays["user_factors"], arrays["item_factors"]
        self._normalised = None


@register
class ALS(_Factorised):
    name = "als"
    Config = ALSConfig
    search_space: ClassVar[dict[str, list]] = {"factors": [32, 64, 128], "regularization": [0.01, 0.05, 0.2],
                                               "alpha": [1.0, 10.0, 40.0]}

    implicit_class = "implicit.cpu.als:AlternatingLeastSquares"
    implicit_params = ("factors", "regularization", "alpha", "iterations")

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        """The ALS user step for each history row: (Y'Y + Y'(C - I)Y + lambda I) x = Y'C p."""
        items = self.item_factors.astype(np.float64)
        gram = items.T @ items + self.config.regularization * np.eye(items.shape[1])
        out = np.zeros((histories.shape[0], items.shape[1]), dtype=np.float32)
        for row in range(histories.shape[0]):
            start, end = histories.indptr[row], histories.indptr[row + 1]
            if start == end:
                continue
            bought = items[histories.indices[start:end]]
            confidence = self.config.alpha * histories.data[start:end].astype(np.float64)
            system = gram + (bought.T * (confidence - 1.0)) @ bought
            out[row] = np.linalg.solve(system, bought.T @ confidence)
        return out


@register
class BPR(_Factorised):
    name = "bpr"
    Config = BPRConfig
    search_space: ClassVar[dict[str, list]] = {"factors": [32, 64, 128], "learning_rate": [0.01, 0.05, 0.1],
                                               "regularization": [0.001, 0.01, 0.05]}

    implicit_class = "implicit.cpu.bpr:BayesianPersonalizedRanking"
    implicit_params = ("factors", "learning_rate", "regularization", "iterations")

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        """The mean of the history's item factors (the last column is implicit's item bias, which
        a user factor multiplies by 1)."""
        counts = np.maximum(np.diff(histories.indptr), 1)[:, None]
        out = np.asarray((histories > 0).astype(np.float32) @ self.item_factors) / counts
        out[:, -1] = 1.0
        return out.astype(np.float32)
