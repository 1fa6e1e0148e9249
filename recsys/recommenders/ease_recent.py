"""EASE with recency: EASE's item-item weights, applied to a history that weighs recent baskets more.

What it computes: the same weight matrix B as `ease` (Steck, WWW 2019), fitted on the binary
user-item matrix; a customer's scores are r_u B, where r_u holds decay^n for each product of the
customer's history, n the number of distinct purchase times (baskets) after the product's last
purchase: 1 for the latest basket, `decay` for the one before, decay^2 before that. `decay` 1 is
EASE; 0 scores from the latest basket alone. Products a known customer adds in a session form a
newer basket: weight 1, and the trained history moves one step back. A session of an unknown
customer has no times, so its products weigh 1 each (EASE's scores). Without a timestamp column
every product weighs 1.

Why: what a shop's customer buys next follows their latest basket more than their whole history
(the repeat and next-basket literature weighs history by recency with exponential decay, e.g. Hu
et al., "Modeling Personalized Item Frequency Information for Next-basket Recommendation", SIGIR
2020). On Online Retail's leave-last-out split (the next product after the training history) the
decay chosen on validation raised nDCG@10 from EASE's 0.1760 to 0.2286; on the time split (a whole
month of later purchases) it fell below EASE's, 0.1860 against 0.2229: it suits "what next after
this basket", not a customer's purchases over the coming weeks (docs/benchmarks.md).

>>> import pandas as pd
>>> frame = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c", "c", "c", "c"],
...     "product_id": ["mug", "teapot", "chair", "table", "mug", "teapot", "chair", "lamp"],
...     "weight": 1.0, "timestamp": pd.to_datetime(["2024-01-01"] * 4 + ["2024-01-01", "2024-01-01",
...                                                                      "2024-02-01", "2024-02-01"])})
>>> model = EASERecent(l2=1.0, decay=0.1).fit(frame)
>>> model.recommend("c", k=1)[0][0]  # c's latest basket had a chair
'table'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.recommenders.base import Reason, register
from recsys.recommenders.ease import EASE, EASEConfig


@dataclass
class EASERecentConfig(EASEConfig):
    # Both chosen on a validation split of Online Retail's training part (`python -m recsys tune
    # --algo ease_recent`; docs/benchmarks.md): decay 0.3 and l2 100 scored nDCG@10 0.1986, decay 1
    # (EASE) 0.1557; with history weights below 1, less regularisation than EASE's 400 suits.
    l2: float = 100.0
    decay: float = 0.3  # weight of a basket relative to the next one; 1: EASE


@register
class EASERecent(EASE):
    name = "ease_recent"
    Config = EASERecentConfig
    search_space: ClassVar[dict[str, list]] = {"decay": [0.0, 0.1, 0.3, 0.5], "l2": [100.0, 400.0, 1600.0]}

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        if not 0.0 <= self.config.decay <= 1.0:
            raise ValueError(f"decay is the weight of a basket relative to the next one, from 0 to 1, "
                             f"not {self.config.decay}")

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        super()._fit(frame, catalog)
        if "timestamp" in frame.columns:
            # Baskets counted back from the customer's latest: 0 for the latest.
            age = frame.groupby("user_index")["timestamp"].rank(method="dense", ascending=False) - 1.0
            values = np.power(self.config.decay, age.to_numpy(np.float64))
        else:
            values = np.ones(len(frame))
        self.recency = sp.csr_matrix((values.astype(np.float32), (frame["user_index"], frame["item_index"])),
                                     shape=self.matrix.shape)
        self.recency.sort_indices()

    def _weighted(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> sp.csr_matrix:
        """Each history row with its products weighted by recency (see the module docstring), float32."""
        rows = sp.csr_matrix(histories, dtype=np.float32, copy=True)
        rows.sort_indices()
        rows.data[:] = 1.0
        # Row by row on the CSR arrays: scipy's slicing and products cost more than EASE's scoring.
        for position in np.flatnonzero(user_indices >= 0):
            user = user_indices[position]
            start, end = self.recency.indptr[user], self.recency.indptr[user + 1]
            row_start, row_end = rows.indptr[position], rows.indptr[position + 1]
            # Session products beyond the trained history make a newer basket.
            shift = self.config.decay if row_end - row_start > end - start else 1.0
            trained = row_start + np.searchsorted(rows.indices[row_start:row_end],
                                                  self.recency.indices[start:end])
            rows.data[trained] = shift * self.recency.data[start:end]
        return rows

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        # In the weights' float32: a float64 row would have scipy copy the items x items weights to
        # float64 on every call.
        return np.asarray(self._weighted(user_indices, histories) @ self.weights)

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        row = sp.csr_matrix(history.reshape(1, -1))
        weights = self._weighted(np.array([user_index]), row).toarray().ravel()
        contributions = weights * self.weights[:, item_index]
        return self._history_reasons(contributions, "co_purchase", "because you bought {title}")

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "recency_data": self.recency.data,
                "recency_indices": self.recency.indices, "recency_indptr": self.recency.indptr}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self.recency = sp.csr_matrix((arrays["recency_data"], arrays["recency_indices"],
                                      arrays["recency_indptr"]), shape=self.matrix.shape)
        self.recency.sort_indices()
