"""Offline evaluation of a recommender on a train/test split: accuracy, beyond-accuracy and speed.

`evaluate_recommender` fits one algorithm on `train`, recommends the top k
products to every test user (their train products excluded, in batches with
`recommend_many`) and scores the lists against what each user did in `test`:

- accuracy, by `ranking_metrics` (ranx): nDCG, precision, recall, MAP and MRR
  at k, with binary relevance: every held-out product of the user is
  relevant, as in Microsoft Recommenders' evaluation. Precision divides by k
  and MAP by the number of relevant products (trec_eval's convention);
- coverage@k: the share of the catalog (of the train products when no
  catalog is given) that appears in at least one top-k list;
- diversity@k: intra-list diversity, the mean over lists of the mean pairwise
  ``1 - cosine`` of the recommended products (Ziegler et al., WWW 2005). A
  product's vector is its column of the binary train user-item matrix (so
  the cosine is co-purchase similarity), or its embedding when
  `item_vectors` are given; a product without a vector counts as unlike
  every other;
- novelty@k: the mean self-information ``-log2(share of train users who
  interacted with the product)`` of the recommended products (Zhou et al.,
  PNAS 2010); a product no train user had counts as had by one;
- speed: the seconds `fit` took, and the p50/p95 milliseconds of single
  `recommend` calls, one user at a time, on a seeded sample of test users,
  after a warm-up.

Test users that train never saw cannot be personalised and are skipped
(`users_unknown`); so are users whose test products all appear in their train
history (`users_without_new_items`; the splits in `splits` never make them).

>>> import pandas as pd
>>> train = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "product_id": ["x", "y", "x", "x"],
...                       "weight": 1.0})
>>> test = pd.DataFrame({"user_id": ["b"], "product_id": ["y"], "weight": 1.0})
>>> result = evaluate_recommender("popularity", train, test, k=2, latency_users=0)
>>> result["users"], result["ndcg@2"], result["coverage@2"]
(1, 1.0, 0.5)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.evaluation.metrics import RANKING_METRICS, ranking_metrics
from recsys.recommenders import get
from recsys.recommenders.base import Ranking, Recommender

logger = logging.getLogger(__name__)

KEYS = ["user_id", "product_id"]
# Scores are computed as one dense (users x products) matrix per batch; this many cells at most.
BATCH_CELLS = 4_000_000
WARM_UP_CALLS = 5


def make_model(name_or_model: str | type[Recommender] | Recommender,
               params: Mapping[str, Any] | None = None) -> Recommender:
    """A recommender from a registered name, a class or an instance, with `params` for its config."""
    if isinstance(name_or_model, Recommender):
        if params:
            raise ValueError("pass params with an algorithm name or class, not with a built model")
        return name_or_model
    cls = get(name_or_model) if isinstance(name_or_model, str) else name_or_model
    return cls(**dict(params or {}))


def cannot_run(name_or_model: str | type[Recommender] | Recommender,
               catalog: pd.DataFrame | None) -> str | None:
    """Why the algorithm cannot run on these inputs, or None when it can."""
    cls = get(name_or_model) if isinstance(name_or_model, str) else name_or_model
    if getattr(cls, "needs_catalog", False) and (catalog is None or "title" not in catalog):
        return f"{cls.name} needs a catalog with product_id and title (product texts)"
    return None


def evaluate_recommender(
    name_or_model: str | type[Recommender] | Recommender,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    catalog: pd.DataFrame | None = None,
    seed: int = 42,
    latency_users: int = 200,
    *,
    params: Mapping[str, Any] | None = None,
    item_vectors: pd.DataFrame | Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Fit on `train`, recommend to the test users, and score against `test` (see the module docstring).

    `train` and `test` are interactions frames (user_id, product_id, weight;
    optional rating, timestamp), e.g. from `splits.split_interactions`.
    `catalog` (product_id, title) is passed to `fit` and is the denominator of
    coverage. `params` configure an algorithm given by name or class.
    `item_vectors` (a frame indexed by product_id, or a mapping product_id ->
    vector) replace co-purchase vectors in the diversity. `latency_users` test
    users (sampled with `seed`) are timed one call each; 0 skips the timing.

    Returns a flat dict: algo, config, k, users (evaluated), users_unknown,
    users_without_new_items, ``ndcg@k``, ``precision@k``, ``recall@k``,
    ``map@k``, ``mrr@k``, ``coverage@k``, ``diversity@k``, ``novelty@k``,
    fit_s, recommend_ms_p50, recommend_ms_p95, recommend_many_ms_per_user,
    train_users, train_items, test_pairs.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, not {k}")
    model = make_model(name_or_model, params)
    reason = cannot_run(type(model), catalog)
    if reason:
        raise ValueError(reason)
    for name, frame in (("train", train), ("test", test)):
        missing = [c for c in KEYS if c not in frame.columns]
        if missing:
            raise ValueError(f"the {name} interactions need the column(s) {missing}; "
                             f"they have {list(frame.columns)}")

    train_pairs = train[KEYS].astype(str).drop_duplicates()
    test_pairs = test[KEYS].astype(str).drop_duplicates()
    train_users = set(train_pairs["user_id"])
    seen = pd.MultiIndex.from_frame(test_pairs).isin(pd.MultiIndex.from_frame(train_pairs))
    test_users = pd.Index(test_pairs["user_id"].unique())
    known = test_pairs[~seen & test_pairs["user_id"].isin(train_users)]
    qrels = {user: dict.fromkeys(items, 1.0)
             for user, items in known.groupby("user_id", sort=False)["product_id"]}
    users = list(qrels)
    unknown = int((~test_users.isin(list(train_users))).sum())
    logger.info("%s: fitting on %s interactions of %s users", model.name, f"{len(train):,}",
                f"{len(train_users):,}")

    # Only the contract's columns: the base sums every other column, which fails for dates and text.
    columns = [c for c in (*KEYS, "weight", "rating", "timestamp") if c in train.columns]
    start = time.perf_counter()
    model.fit(train[columns], catalog)
    fit_s = time.perf_counter() - start

    start = time.perf_counter()
    run = _recommend_all(model, users, k)
    many_s = time.perf_counter() - start
    logger.info("%s: fitted in %.2f s; recommended to %s users in %.2f s", model.name, fit_s,
                f"{len(users):,}", many_s)

    scores = ranking_metrics(qrels, run, k=k, metrics=RANKING_METRICS)
    lists = [[item for item, _ in run[user]] for user in users]
    catalog_items = set(train_pairs["product_id"])
    if catalog is not None and "product_id" in catalog:
        catalog_items = set(catalog["product_id"].astype(str))
    recommended = {item for ranked in lists for item in ranked}
    p50, p95 = _latency(model, users, k, latency_users, seed)
    return {
        "algo": model.name,
        "config": model.config.to_dict(),
        "k": k,
        "users": len(users),
        "users_unknown": unknown,
        "users_without_new_items": int(len(test_users) - unknown - len(users)),
        **scores,
        f"coverage@{k}": len(recommended) / max(len(catalog_items), 1),
        f"diversity@{k}": intra_list_diversity(lists, _item_vectors(train_pairs, item_vectors)),
        f"novelty@{k}": novelty(lists, train_pairs),
        "fit_s": round(fit_s, 3),
        "recommend_ms_p50": p50,
        "recommend_ms_p95": p95,
        "recommend_many_ms_per_user": round(1000 * many_s / max(len(users), 1), 4),
        "train_users": len(train_users),
        "train_items": int(train_pairs["product_id"].nunique()),
        "test_pairs": int(len(known)),
    }


def _recommend_all(model: Recommender, users: list[str], k: int) -> dict[str, Ranking]:
    batch = max(1, BATCH_CELLS // max(len(model.item_ids), 1))
    run: dict[str, Ranking] = {}
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        run.update(zip(chunk, model.recommend_many(chunk, k, exclude_seen=True)))
    return run


def _latency(model: Recommender, users: list[str], k: int, count: int,
             seed: int) -> tuple[float | None, float | None]:
    if count <= 0 or not users:
        return None, None
    rng = np.random.default_rng(seed)
    sample = [users[i] for i in rng.choice(len(users), size=min(count, len(users)), replace=False)]
    for user in sample[:WARM_UP_CALLS]:
        model.recommend(user, k)
    timings = []
    for user in sample:
        start = time.perf_counter()
        model.recommend(user, k)
        timings.append(1000 * (time.perf_counter() - start))
    return round(float(np.percentile(timings, 50)), 4), round(float(np.percentile(timings, 95)), 4)


def _item_vectors(train_pairs: pd.DataFrame,
                  item_vectors: pd.DataFrame | Mapping[str, Sequence[float]] | None,
                  ) -> tuple[pd.Index, sp.csr_matrix | np.ndarray]:
    """Product ids and their vectors (one row each): given, or their binary columns of the train matrix."""
    if item_vectors is not None:
        if isinstance(item_vectors, pd.DataFrame):
            ids, vectors = item_vectors.index.astype(str), item_vectors.to_numpy(np.float64)
        else:
            ids = pd.Index([str(i) for i in item_vectors])
            vectors = np.vstack([np.asarray(v, dtype=np.float64) for v in item_vectors.values()])
        return pd.Index(ids), vectors
    items = pd.Index(train_pairs["product_id"].unique())
    users = pd.Index(train_pairs["user_id"].unique())
    rows = items.get_indexer(train_pairs["product_id"])
    columns = users.get_indexer(train_pairs["user_id"])
    return items, sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(items), len(users)))


def intra_list_diversity(lists: Sequence[Sequence[str]],
                         vectors: tuple[pd.Index, sp.csr_matrix | np.ndarray]) -> float:
    """Mean over lists (of two or more products) of the mean pairwise ``1 - cosine``.

    `vectors` is (product ids, their vectors as rows, dense or sparse). Scaled
    to unit length v_1..v_m, the sum of cosines over ordered pairs i != j is
    ``|v_1 + ... + v_m|^2 - m``, so each list costs one sparse product
    instead of m^2 lookups.

    >>> ids = pd.Index(["a", "b", "c"])
    >>> unit = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> intra_list_diversity([["a", "b"], ["a", "c"], ["a"]], (ids, unit))
    0.5
    """
    ids, matrix = vectors
    lengths = np.array([len(ranked) for ranked in lists])
    usable = [ranked for ranked in lists if len(ranked) >= 2]
    if not usable:
        return 0.0
    lengths = lengths[lengths >= 2].astype(np.float64)
    squared = matrix.multiply(matrix).sum(axis=1) if sp.issparse(matrix) else (matrix ** 2).sum(axis=1)
    norms = np.sqrt(np.asarray(squared, dtype=np.float64).ravel())
    has_vector = norms > 0
    scale = np.where(has_vector, 1.0 / np.where(has_vector, norms, 1.0), 0.0)
    matrix = sp.diags(scale) @ matrix if sp.issparse(matrix) else matrix * scale[:, None]
    totals = []
    for start in range(0, len(usable), 512):
        chunk = usable[start:start + 512]
        flat = ids.get_indexer([item for ranked in chunk for item in ranked])
        rows = np.repeat(np.arange(len(chunk)), [len(ranked) for ranked in chunk])
        keep = flat >= 0
        indicator = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], flat[keep])),
                                  shape=(len(chunk), len(ids)))
        summed = indicator @ matrix
        squared = (summed.multiply(summed).sum(axis=1) if sp.issparse(summed)
                   else (summed ** 2).sum(axis=1))
        self_terms = indicator @ has_vector.astype(np.float64)
        totals.append(np.asarray(squared).ravel() - np.asarray(self_terms).ravel())
    pair_cosine = np.concatenate(totals) / (lengths * (lengths - 1))
    return float(np.mean(1.0 - pair_cosine))


def novelty(lists: Sequence[Sequence[str]], train_pairs: pd.DataFrame) -> float:
    """Mean ``-log2(share of train users who had the product)`` over all recommended products.

    >>> pairs = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "product_id": ["x", "x", "x", "y"]})
    >>> round(novelty([["y"], ["x", "y"]], pairs), 4)  # y: 1 of 4 users (2 bits), x: 3 of 4
    1.4717
    """
    flat = [item for ranked in lists for item in ranked]
    if not flat:
        return 0.0
    pairs = train_pairs[KEYS].drop_duplicates()
    users = pairs["user_id"].nunique()
    counts = pairs["product_id"].value_counts()
    had = counts.reindex(flat).fillna(1.0).clip(lower=1.0).to_numpy(np.float64)
    return float(np.mean(-np.log2(had / users)))
