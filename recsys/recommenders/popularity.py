"""Popularity: the products most customers interacted with, overall or recently.

The cold-start fallback for unknown users, and the baseline every other
algorithm must beat. Scores count distinct customers (so one wholesaler's
thousand purchases count once); the recent variant counts only the last
`window_days` before the newest interaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.recommenders.base import Reason, Recommender, RecommenderConfig, register


@dataclass
class PopularityConfig(RecommenderConfig):
    window_days: float | None = None  # None: all time


@register
class Popularity(Recommender):
    name = "popularity"
    Config = PopularityConfig

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        counted = frame
        window = self.config.window_days
        if window is not None and "timestamp" in frame and frame["timestamp"].notna().any():
            newest = frame["timestamp"].max()
            counted = frame[frame["timestamp"] >= newest - pd.Timedelta(days=window)]
        scores = np.bincount(counted["item_index"].to_numpy(), minlength=len(self.item_ids))
        # Break ties by all-time popularity so the order is stable and sensible.
        self.scores = scores.astype(np.float64) + self.popularity / (self.popularity.max() + 1.0) / 2

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.scores, (len(user_indices), 1))

    def _fallback_scores(self) -> np.ndarray:
        return self.scores

    def _similar(self, item_index: int) -> np.ndarray:
        return self.scores

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        window = self.config.window_days
        period = f"in the last {window:g} days" if window else "overall"
        rank = int((self.scores > self.scores[item_index]).sum()) + 1
        return [Reason("popular", f"number {rank} of {len(self.scores)} products {period}",
                       float(self.scores[item_index]))]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.scores = arrays["scores"]


@register
class RecentPopularity(Popularity):
    name = "popularity_recent"

    def __init__(self, config=None, **params):
        super().__init__(config or PopularityConfig(window_days=30.0), **params)
