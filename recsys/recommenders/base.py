"""The contract every recommender keeps, and the shared work behind it.

A recommender is fitted on an interactions frame (one row per user and product,
with a weight; see `recsys.data.interactions.to_interactions`) and then answers:

- ``recommend(user_id, k, exclude_seen=True, history=None)``: the top-k products
  for a user, or for an anonymous session given by its `history` of product ids;
- ``similar_items(product_id, k)``: products like a product;
- ``explain(user_id, product_id)``: why that product, as structured `Reason`s;
- ``save(folder)`` / ``Recommender.load(folder)``: arrays (npz) plus config (JSON).

The base does the shared work (as Surprise's AlgoBase and implicit's
RecommenderBase do): id mapping, the user-item matrix, excluding seen products,
unknown users and products, the popularity fallback, top-k selection and
persistence. A subclass only scores: it implements `_fit`, `_score` and,
where it can, `_similar` and `_reasons`.

Adding an algorithm is one new file with a subclass decorated by `@register`;
the contract tests and the pages pick it up from `REGISTRY`.

>>> import pandas as pd
>>> from recsys.recommenders import get
>>> interactions = pd.DataFrame({"user_id": ["a", "a", "b"], "product_id": ["x", "y", "x"],
...                              "weight": [1.0, 1.0, 1.0]})
>>> model = get("ease")(l2=1.0).fit(interactions)
>>> [product for product, score in model.recommend("b", k=1)]
['y']
>>> [product for product, score in model.recommend("new-user", k=1)]  # the most popular
['x']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.config import JsonConfig
from recsys.registry import Registry

Ranking = list[tuple[str, float]]
REGISTRY = Registry("algorithm")
register = REGISTRY.register


def binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The same matrix with every stored value 1: an interaction counts once."""
    matrix = matrix.copy()
    matrix.data = np.ones_like(matrix.data)
    return matrix


@dataclass
class Reason:
    """One reason for a recommendation: a history item or a property that contributed.

    `kind` is e.g. "co_purchase", "similar_embedding", "latent_factors",
    "popular" or "rule"; `product_id` the history item it refers to, if any;
    `weight` its contribution to the score.
    """

    kind: str
    text: str
    weight: float = 0.0
    product_id: str | None = None


@dataclass
class RecommenderConfig(JsonConfig):
    """Base of every algorithm's config."""


class Recommender:
    """Base class; see the module docstring for the contract."""

    name: ClassVar[str]
    Config: ClassVar[type[RecommenderConfig]] = RecommenderConfig
    # Whether the algorithm needs product texts (`catalog`) to fit.
    needs_catalog: ClassVar[bool] = False
    # Whether it can score an anonymous session from its history alone.
    scores_history: ClassVar[bool] = True

    def __init__(self, config: RecommenderConfig | dict | None = None, **params):
        self.config = self.Config.resolve(config, **params)
        self.user_ids = np.array([], dtype=object)
        self.item_ids = np.array([], dtype=object)
        self._user_index: dict[str, int] = {}
        self._item_index: dict[str, int] = {}
        self.matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self.popularity = np.zeros(0, dtype=np.float32)
        self.item_titles: dict[str, str] = {}

    # --- fitting -------------------------------------------------------------

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame | None = None) -> Recommender:
        """Fit on `interactions` (user_id, product_id, weight; optional rating, timestamp).

        `catalog` (product_id, title) supplies product texts for algorithms that
        need them and titles for explanations.
        """
        for column in ("user_id", "product_id", "weight"):
            if column not in interactions.columns:
                raise ValueError(f"interactions need a '{column}' column; they have "
                                 f"{list(interactions.columns)}")
        if self.needs_catalog and (catalog is None or "title" not in catalog):
            raise ValueError(f"{self.name} needs a catalog with product_id and title")
        # One row per user and product: weights add up, the latest time and the
        # mean rating stand for the pair; other columns are not used.
        how = {"weight": "sum", "timestamp": "max", "rating": "mean"}
        frame = interactions.assign(user_id=interactions["user_id"].astype(str),
                                    product_id=interactions["product_id"].astype(str))
        frame = frame.groupby(["user_id", "product_id"], as_index=False, sort=False).agg(
            {c: f for c, f in how.items() if c in frame.columns})
        # Sorted ids make results independent of the order of the input rows.
        users = pd.Index(np.sort(frame["user_id"].unique()))
        items = pd.Index(np.sort(frame["product_id"].unique()))
        if catalog is not None and self.needs_catalog:
            # Every catalog product can be recommended, even one nobody bought yet.
            items = items.append(pd.Index(catalog["product_id"].astype(str).unique()).difference(items))
        self.user_ids, self.item_ids = users.to_numpy(dtype=object), items.to_numpy(dtype=object)
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        self._item_index = {p: i for i, p in enumerate(self.item_ids)}
        rows = users.get_indexer(frame["user_id"])
        cols = items.get_indexer(frame["product_id"])
        self.matrix = sp.csr_matrix(
            (frame["weight"].to_numpy(np.float32), (rows, cols)),
            shape=(len(users), len(items)), dtype=np.float32)
        self.popularity = np.asarray((self.matrix > 0).sum(axis=0), dtype=np.float32).ravel()
        if catalog is not None and "title" in catalog:
            self.item_titles = dict(zip(catalog["product_id"].astype(str), catalog["title"].astype(str)))
        self._fit(frame.assign(user_index=rows, item_index=cols), catalog)
        return self

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        """Learn from `frame` (with user_index, item_index) and `self.matrix`."""
        raise NotImplementedError

    # --- scoring (subclasses) --------------------------------------------------

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Scores of every item, shape (len(user_indices), n_items).

        `user_indices` are -1 for sessions of unknown users; `histories` holds
        each row's interactions (the user's matrix row, or the session's).
        """
        raise NotImplementedError

    def _fallback_scores(self) -> np.ndarray:
        """Scores for users the model knows nothing about: customers per product."""
        return self.popularity.astype(np.float64)

    def _similar(self, item_index: int) -> np.ndarray:
        """Similarity of every item to one item, shape (n_items,)."""
        raise NotImplementedError(f"{self.name} has no item-to-item similarity")

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        return []

    def _history_reasons(self, contributions: np.ndarray, kind: str, text: str,
                         limit: int = 3) -> list[Reason]:
        """Reasons naming the history items with the largest positive contributions.

        `contributions` has one value per item (zero outside the history); `text`
        is formatted with the item's `title`.
        """
        reasons = []
        for j in np.argsort(-contributions)[:limit]:
            if contributions[j] <= 0:
                break
            other = self.item_ids[j]
            reasons.append(Reason(kind, text.format(title=self.title(other)),
                                  float(contributions[j]), other))
        return reasons

    # --- the contract ------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        return len(self.item_ids) > 0

    def _history_row(self, user_id: str | None, history: list[str] | None) -> tuple[int, sp.csr_matrix]:
        user_index = self._user_index.get(str(user_id), -1) if user_id is not None else -1
        row = self.matrix[user_index] if user_index >= 0 else sp.csr_matrix((1, len(self.item_ids)),
                                                                             dtype=np.float32)
        if history:
            known = [self._item_index[p] for p in map(str, history) if p in self._item_index]
            if known:
                extra = sp.csr_matrix((np.ones(len(known), np.float32), ([0] * len(known), known)),
                                      shape=(1, len(self.item_ids)))
                row = row + extra
        return user_index, sp.csr_matrix(row)

    def recommend(self, user_id: str | None, k: int = 10, exclude_seen: bool = True,
                  history: list[str] | None = None) -> Ranking:
        """The top-k (product_id, score) for a user, best first.

        An unknown user with no usable `history` gets the most popular products.
        """
        return self.recommend_many([user_id], k, exclude_seen, [history] if history else None)[0]

    def recommend_many(self, user_ids: list[str | None], k: int = 10, exclude_seen: bool = True,
                       histories: list[list[str] | None] | None = None) -> list[Ranking]:
        """`recommend` for many users at once (scored as one matrix, much faster)."""
        self._check_fitted()
        if k <= 0:
            raise ValueError(f"k must be positive, not {k}")
        histories = histories or [None] * len(user_ids)
        rows = [self._history_row(u, h) for u, h in zip(user_ids, histories)]
        results: list[Ranking | None] = [None] * len(rows)
        scored = [i for i, (index, row) in enumerate(rows)
                  if (index >= 0 or row.nnz) and (index >= 0 or self.scores_history)]
        if scored:
            indices = np.array([rows[i][0] for i in scored])
            stacked = sp.vstack([rows[i][1] for i in scored]).tocsr()
            scores = np.asarray(self._score(indices, stacked), dtype=np.float64)
            for position, i in enumerate(scored):
                seen = stacked[position].indices if exclude_seen else np.array([], dtype=np.int64)
                results[i] = self._top_k(scores[position], k, seen)
        for i, result in enumerate(results):
            if result is None:
                seen = rows[i][1].indices if exclude_seen else np.array([], dtype=np.int64)
                results[i] = self._top_k(self._fallback_scores(), k, seen)
        return results  # type: ignore[return-value]

    def falls_back(self, user_id: str | None, history: list[str] | None = None) -> bool:
        """Whether `recommend` answers this user or session with the most popular products, knowing
        nothing to go on (an unknown user without a history of products the model knows)."""
        self._check_fitted()
        user_index, row = self._history_row(user_id, history)
        return not ((user_index >= 0 or row.nnz) and (user_index >= 0 or self.scores_history))

    def similar_items(self, product_id: str, k: int = 10) -> Ranking:
        """The k products most similar to `product_id`, itself left out; [] if unknown."""
        self._check_fitted()
        index = self._item_index.get(str(product_id))
        if index is None:
            return []
        return self._top_k(np.asarray(self._similar(index), dtype=np.float64), k, np.array([index]))

    def explain(self, user_id: str | None, product_id: str,
                history: list[str] | None = None) -> list[Reason]:
        """Why `product_id` would be recommended to the user, strongest reason first."""
        self._check_fitted()
        item_index = self._item_index.get(str(product_id))
        if item_index is None:
            return [Reason("unknown_product", f"{product_id} was not in the training data")]
        user_index, row = self._history_row(user_id, history)
        if user_index < 0 and not row.nnz:
            customers = int(self.popularity[item_index])
            rank = int((self.popularity > self.popularity[item_index]).sum()) + 1
            return [Reason("popular", f"bought by {customers} customer{'' if customers == 1 else 's'} "
                                      f"(popularity rank {rank:,} of {len(self.item_ids):,} products); "
                                      "the user is new", float(customers))]
        reasons = self._reasons(user_index, row.toarray().ravel(), item_index)
        return sorted(reasons, key=lambda r: -r.weight)

    def knows_user(self, user_id: str | None) -> bool:
        """Whether `user_id` was in the data this recommender was fitted on."""
        return user_id is not None and str(user_id) in self._user_index

    def history(self, user_id: str | None) -> list[str]:
        """Products the user interacted with in the training data, heaviest first; [] if unknown."""
        self._check_fitted()
        user_index = self._user_index.get(str(user_id), -1) if user_id is not None else -1
        if user_index < 0:
            return []
        row = self.matrix[user_index]
        order = np.argsort(-row.data, kind="stable")
        return [self.item_ids[i] for i in row.indices[order]]

    def co_purchases(self, product_id: str) -> dict[str, int]:
        """{other product: customers who interacted with both it and `product_id`}; {} if unknown."""
        self._check_fitted()
        index = self._item_index.get(str(product_id))
        if index is None:
            return {}
        buyers = self.matrix[:, [index]].tocoo().row
        counts = np.asarray((self.matrix[buyers] > 0).sum(axis=0)).ravel()
        return {self.item_ids[j]: int(counts[j]) for j in np.flatnonzero(counts) if j != index}

    def title(self, product_id: str) -> str:
        return self.item_titles.get(product_id, product_id)

    def _top_k(self, scores: np.ndarray, k: int, exclude: np.ndarray) -> Ranking:
        scores = scores.copy()
        if len(exclude):
            scores[exclude] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        # Ties are broken by item order so results are deterministic.
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.item_ids[i], float(scores[i])) for i in top]

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{self.name} is not fitted; call fit() first")

    # --- persistence ---------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        """The learned arrays a subclass needs to score again after `load`."""
        return {}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    def _save_files(self, folder: Path) -> None:
        """Write files other than arrays.npz and config.json (e.g. a composite's sources)."""

    def _restore_files(self, folder: Path) -> None:
        """Read what `_save_files` wrote."""

    def save(self, folder: str | Path) -> Path:
        """Write config.json and arrays.npz into `folder`."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        matrix = self.matrix.tocsr()
        arrays = {"user_ids": self.user_ids.astype(str), "item_ids": self.item_ids.astype(str),
                  "popularity": self.popularity, "matrix_data": matrix.data,
                  "matrix_indices": matrix.indices, "matrix_indptr": matrix.indptr,
                  **{f"model_{k}": v for k, v in self._arrays().items()}}
        # Uncompressed: EASE's dense item-item weights (58 MB on the demo) barely compress, and
        # inflating them took most of the 1.1 s a page spent loading a fitted recommender.
        np.savez(folder / "arrays.npz", **arrays)
        meta = {"algorithm": self.name, "config": self.config.to_dict(),
                "item_titles": self.item_titles}
        (folder / "config.json").write_text(json.dumps(meta, indent=2))
        self._save_files(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Recommender:
        """Load what `save` wrote; on the base class, the saved algorithm is chosen."""
        folder = Path(folder)
        meta = json.loads((folder / "config.json").read_text())
        if cls is not Recommender and meta["algorithm"] != cls.name:
            raise ValueError(f"{folder} holds a {meta['algorithm']} model, not {cls.name}")
        target = REGISTRY[meta["algorithm"]] if cls is Recommender else cls
        model = target(target.Config.from_dict(meta["config"]))
        with np.load(folder / "arrays.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        model.user_ids = arrays["user_ids"].astype(object)
        model.item_ids = arrays["item_ids"].astype(object)
        model._user_index = {u: i for i, u in enumerate(model.user_ids)}
        model._item_index = {p: i for i, p in enumerate(model.item_ids)}
        model.popularity = arrays["popularity"]
        model.matrix = sp.csr_matrix(
            (arrays["matrix_data"], arrays["matrix_indices"], arrays["matrix_indptr"]),
            shape=(len(model.user_ids), len(model.item_ids)))
        model.item_titles = meta.get("item_titles", {})
        model._restore({k[len("model_"):]: v for k, v in arrays.items() if k.startswith("model_")})
        model._restore_files(folder)
        return model
