"""Rating-prediction models from scikit-surprise: SVD and item-based KNNBaseline.

Both learn from ratings: the real ones when the interactions carry a `rating`
column, otherwise ratings derived from implicit weights,
rating = 1 + 4 log(1 + w) / log(1 + max w), so a single view is 1 and the
heaviest interaction 5. Surprise fits the model; its learned arrays (factors,
biases, similarities) are then kept and scored with numpy, vectorised over all
products, because calling `predict` once per product is far too slow to rank
a catalog.

Rating predictors rank poorly for top-N (they optimise the error on ratings
people gave, not what they will pick); they are here as the classic baselines
and for shops with real ratings.

References: Koren, Bell and Volinsky, "Matrix factorization techniques for
recommender systems", IEEE Computer 2009 (SVD with biases); Koren, "Factor in
the neighbors", ACM TKDD 2010 (KNNBaseline); Hug, "Surprise: a Python library
for recommender systems", JOSS 2020.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.recommenders.base import Reason, Recommender, RecommenderConfig, register


def ratings_of(frame: pd.DataFrame) -> tuple[pd.Series, tuple[float, float]]:
    """The ratings to learn from and their scale."""
    if "rating" in frame and frame["rating"].notna().all():
        ratings = frame["rating"].astype(float)
        return ratings, (float(ratings.min()), float(ratings.max()))
    weights = np.log1p(frame["weight"].clip(lower=0).astype(float))
    top = float(weights.max()) or 1.0
    return 1.0 + 4.0 * weights / top, (1.0, 5.0)


def surprise_trainset(frame: pd.DataFrame):
    """A Surprise trainset of the frame's user and item indices and ratings."""
    from surprise import Dataset, Reader

    # Surprise numbers users and items in the order it meets them, and SGD visits
    # ratings in that order: sort so the input's row order does not matter.
    frame = frame.sort_values(["user_index", "item_index"])
    ratings, scale = ratings_of(frame)
    data = pd.DataFrame({"user": frame["user_index"].to_numpy(), "item": frame["item_index"].to_numpy(),
                         "rating": ratings.to_numpy()})
    if scale[0] == scale[1]:
        scale = (scale[0] - 1.0, scale[1])
    dataset = Dataset.load_from_df(data, Reader(rating_scale=scale))
    return dataset.build_full_trainset(), ratings


def _inner_order(trainset, count: int, to_inner) -> np.ndarray:
    """For each of our indices 0..count-1, Surprise's inner id (-1 if absent)."""
    order = np.full(count, -1, dtype=np.int64)
    for index in range(count):
        try:
            order[index] = to_inner(index)
        except ValueError:
            pass
    return order


@dataclass
class SVDConfig(RecommenderConfig):
    n_factors: int = 100
    n_epochs: int = 20
    lr_all: float = 0.005
    reg_all: float = 0.02
    random_state: int = 42


@register
class SurpriseSVD(Recommender):
    name = "svd"
    Config = SVDConfig
    scores_history = False
    search_space: ClassVar[dict[str, list]] = {"n_factors": [20, 50, 100], "reg_all": [0.02, 0.05, 0.1],
                                               "lr_all": [0.005, 0.01]}

    def surprise_algorithm(self):
        from surprise import SVD

        c = self.config
        return SVD(n_factors=c.n_factors, n_epochs=c.n_epochs, lr_all=c.lr_all, reg_all=c.reg_all,
                   random_state=c.random_state)

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        trainset, _ = surprise_trainset(frame)
        algorithm = self.surprise_algorithm()
        algorithm.fit(trainset)
        users = _inner_order(trainset, len(self.user_ids), trainset.to_inner_uid)
        items = _inner_order(trainset, len(self.item_ids), trainset.to_inner_iid)
        self.user_factors = np.where(users[:, None] >= 0, algorithm.pu[users], 0).astype(np.float32)
        self.item_factors = np.where(items[:, None] >= 0, algorithm.qi[items], 0).astype(np.float32)
        self.user_bias = np.where(users >= 0, algorithm.bu[users], 0).astype(np.float32)
        self.item_bias = np.where(items >= 0, algorithm.bi[items], 0).astype(np.float32)
        self.global_mean = np.float32(trainset.global_mean)

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        users = np.maximum(user_indices, 0)
        known = (user_indices >= 0)[:, None]
        personal = self.user_factors[users] @ self.item_factors.T + self.user_bias[users, None]
        return self.global_mean + self.item_bias[None, :] + np.where(known, personal, 0.0)

    def _similar(self, item_index: int) -> np.ndarray:
        vectors = self.item_factors
        norms = np.linalg.norm(vectors, axis=1) + 1e-9
        return vectors @ vectors[item_index] / (norms * norms[item_index])

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        reasons = []
        if user_index >= 0:
            fit = float(self.user_factors[user_index] @ self.item_factors[item_index])
            reasons.append(Reason("latent_factors",
                                  f"your taste profile matches this product (+{fit:.2f} on a predicted "
                                  f"rating of {self.global_mean + self.item_bias[item_index] + fit:.2f})",
                                  max(fit, 0.0)))
        similarity = self._similar(item_index) * (history > 0)
        return reasons + self._history_reasons(
            similarity, "similar_taste",
            "liked by the same kind of customers as {title}, which you bought", limit=2)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors,
                "user_bias": self.user_bias, "item_bias": self.item_bias,
                "global_mean": np.array([self.global_mean])}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
            setattr(self, name, arrays[name])
        self.global_mean = np.float32(arrays["global_mean"][0])


@dataclass
class KNNBaselineConfig(RecommenderConfig):
    k: int = 40
    min_k: int = 1
    similarity: str = "pearson_baseline"
    shrinkage: int = 100
    # Each product's neighbours are looked for among its `candidates` most
    # similar products (Surprise looks among all); a few hundred rarely miss one.
    candidates: int = 100


@register
class SurpriseKNNBaseline(Recommender):
    """Item-based KNN with baselines: r = b_ui + sum_j s_ij (r_uj - b_uj) / sum_j s_ij
    over the k products j the user rated that are most similar to i (positive
    similarities only, as in Surprise)."""

    name = "knn_baseline"
    Config = KNNBaselineConfig
    search_space: ClassVar[dict[str, list]] = {"k": [20, 40, 80], "shrinkage": [50, 100]}

    def surprise_algorithm(self):
        from surprise import KNNBaseline

        options = {"name": self.config.similarity, "user_based": False}
        if self.config.similarity == "pearson_baseline":
            options["shrinkage"] = self.config.shrinkage
        return KNNBaseline(k=self.config.k, min_k=self.config.min_k, sim_options=options,
                           verbose=False)

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        trainset, ratings = surprise_trainset(frame)
        if ratings.nunique() < 2 and self.config.similarity == "pearson_baseline":
            raise ValueError("knn_baseline with pearson_baseline needs ratings that vary; every "
                             "rating here is the same (implicit data with one weight per row)")
        algorithm = self.surprise_algorithm()
        algorithm.fit(trainset)
        users = _inner_order(trainset, len(self.user_ids), trainset.to_inner_uid)
        items = _inner_order(trainset, len(self.item_ids), trainset.to_inner_iid)
        present = items >= 0
        similarity = np.zeros((len(items), len(items)), dtype=np.float32)
        similarity[np.ix_(present, present)] = algorithm.sim[np.ix_(items[present], items[present])]
        np.fill_diagonal(similarity, 0.0)
        # Each product's candidate neighbours, most similar first.
        n = min(self.config.candidates, len(items))
        top = np.argpartition(-similarity, n - 1, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1, kind="stable")
        self.neighbors = np.take_along_axis(top, order, axis=1).astype(np.int32)
        self.neighbor_similarity = np.clip(
            np.take_along_axis(similarity, self.neighbors, axis=1), 0.0, None)
        self.user_bias = np.where(users >= 0, algorithm.bu[users], 0).astype(np.float32)
        self.item_bias = np.where(items >= 0, algorithm.bi[items], 0).astype(np.float32)
        self.global_mean = np.float32(trainset.global_mean)
        self.ratings = sp.csr_matrix(
            (ratings.to_numpy(np.float32),
             (frame.loc[ratings.index, "user_index"], frame.loc[ratings.index, "item_index"])),
            shape=self.matrix.shape)

    def _user_scores(self, user_index: int, rated: np.ndarray, values: np.ndarray) -> np.ndarray:
        baseline_items = self.global_mean + self.item_bias
        user_bias = self.user_bias[user_index] if user_index >= 0 else 0.0
        estimate = baseline_items + user_bias
        if not len(rated):
            return estimate
        residuals = np.zeros(len(self.item_ids), dtype=np.float32)
        residuals[rated] = values - (baseline_items[rated] + user_bias)
        is_rated = np.zeros(len(self.item_ids), dtype=bool)
        is_rated[rated] = True
        # The first k rated products in each product's neighbour list, with s > 0.
        member = is_rated[self.neighbors] & (self.neighbor_similarity > 0)
        chosen = member & (np.cumsum(member, axis=1) <= self.config.k)
        sims = np.where(chosen, self.neighbor_similarity, 0.0)
        total = sims.sum(axis=1)
        weighted = (sims * residuals[self.neighbors]).sum(axis=1)
        adjust = np.divide(weighted, total, out=np.zeros_like(total), where=total > 0)
        return estimate + np.where(chosen.sum(axis=1) >= self.config.min_k, adjust, 0.0)

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        out = np.empty((len(user_indices), len(self.item_ids)), dtype=np.float64)
        for row, user_index in enumerate(user_indices):
            if user_index >= 0:
                source = self.ratings[user_index]
                rated, values = source.indices, source.data
            else:
                # A session has no ratings: its products count as liked, half a point
                # above the mean.
                rated = histories[row].indices
                values = np.full(len(rated), self.global_mean + 0.5, dtype=np.float32)
            out[row] = self._user_scores(user_index, rated, values)
        return out

    def _similar(self, item_index: int) -> np.ndarray:
        scores = np.zeros(len(self.item_ids), dtype=np.float32)
        scores[self.neighbors[item_index]] = self.neighbor_similarity[item_index]
        return scores

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        similarity = self._similar(item_index) * (history > 0)
        reasons = self._history_reasons(similarity, "co_rating", "rated like {title}, which you bought")
        if not reasons:
            bias = float(self.item_bias[item_index])
            reasons.append(Reason("baseline", f"customers rate this product {abs(bias):.2f} "
                                              f"{'above' if bias >= 0 else 'below'} the average "
                                              f"of {self.global_mean:.2f}", max(bias, 0.0)))
        return reasons

    def _arrays(self) -> dict[str, np.ndarray]:
        r = self.ratings
        return {"neighbors": self.neighbors, "neighbor_similarity": self.neighbor_similarity,
                "user_bias": self.user_bias, "item_bias": self.item_bias,
                "global_mean": np.array([self.global_mean]),
                "ratings_data": r.data, "ratings_indices": r.indices, "ratings_indptr": r.indptr}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.neighbors, self.neighbor_similarity = arrays["neighbors"], arrays["neighbor_similarity"]
        self.user_bias, self.item_bias = arrays["user_bias"], arrays["item_bias"]
        self.global_mean = np.float32(arrays["global_mean"][0])
        self.ratings = sp.csr_matrix(
            (arrays["ratings_data"], arrays["ratings_indices"], arrays["ratings_indptr"]),
            shape=self.matrix.shape)
