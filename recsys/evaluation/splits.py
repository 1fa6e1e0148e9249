"""Train/test splits of an interactions frame for the offline evaluation of recommenders.

Three protocols, each returning ``(train, test)`` frames with the columns of the
input (user_id, product_id, weight; rating and a timestamp where present):

- `stratified_split`: per user, a random `test_frac` of their products go to
  test (Microsoft Recommenders' ``python_stratified_split`` with
  ``ratio = 1 - test_frac``). Measures how well the held-out part of a taste
  is recovered, with time ignored.
- `leave_last_out_split`: per user, the `n_last` most recent products go to
  test. The usual "what comes next" protocol.
- `time_split`: everything after a global cutoff (a date, or the time quantile
  ``1 - test_frac``) goes to test; test users and products that train never
  saw are dropped and counted. The most realistic protocol: train on the past,
  predict the future of every user at once.

A (user, product) pair is never in both frames. The random and per-user splits
first reduce the frame to one row per pair the way `Recommender.fit` does
(weights summed, ratings averaged, the latest timestamp kept), so a product a
user bought twice is held out whole. The time split cuts the rows first, so a
pair with rows on both sides of the cutoff is a repeat: it stays in train and
leaves test (recommendations exclude what a user already had, so it could
never be hit).

What a split dropped is in ``test.attrs["split"]`` (a dict; also logged).

>>> import pandas as pd
>>> interactions = pd.DataFrame({"user_id": ["a"] * 4, "product_id": ["w", "x", "y", "z"],
...     "weight": 1.0, "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02",
...                                                 "2024-01-03", "2024-01-04"])})
>>> train, test = leave_last_out_split(interactions)
>>> test["product_id"].tolist()
['z']
>>> train, test = stratified_split(interactions, test_frac=0.5, seed=1)
>>> len(train), len(test)
(2, 2)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.config import JsonConfig

logger = logging.getLogger(__name__)

SPLIT_KINDS = ("stratified", "temporal", "time")
KEYS = ["user_id", "product_id"]


@dataclass
class SplitConfig(JsonConfig):
    """Which split to make, as a JSON-round-tripping setting.

    `kind` is one of SPLIT_KINDS. `test_frac` is the per-user share held out by
    "stratified" and the share of time held out by "time" (unless `cutoff`, an
    ISO date or time, is given). `n_last` is the number of latest products per
    user that "temporal" holds out. `min_interactions` keeps users with fewer
    interactions wholly in train ("stratified"). `time_col` names the timestamp.

    >>> SplitConfig.from_dict(SplitConfig(kind="time", cutoff="2011-10-01").to_dict()).cutoff
    '2011-10-01'
    """

    kind: str = "stratified"
    test_frac: float = 0.25
    n_last: int = 1
    cutoff: str | None = None
    min_interactions: int = 1
    seed: int = 42
    time_col: str = "timestamp"


def split_interactions(interactions: pd.DataFrame,
                       config: SplitConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `interactions` as `config` says (see the module docstring)."""
    config = config or SplitConfig()
    if config.kind == "stratified":
        return stratified_split(interactions, config.test_frac, config.seed, config.min_interactions)
    if config.kind == "temporal":
        return leave_last_out_split(interactions, config.n_last, config.seed, config.time_col)
    if config.kind == "time":
        return time_split(interactions, config.cutoff, config.test_frac, config.time_col)
    raise ValueError(f"unknown split {config.kind!r}; choose one of {', '.join(SPLIT_KINDS)}")


def one_row_per_pair(interactions: pd.DataFrame, time_col: str = "timestamp") -> pd.DataFrame:
    """`interactions` with repeated (user_id, product_id) rows merged, as `Recommender.fit` merges them.

    Numbers are summed (weight, event counts), `rating` averaged, timestamps
    (the `time_col` and any datetime column) take their latest value, and other
    columns their first. A frame without repeats comes back as it is.
    """
    _check_columns(interactions, KEYS)
    if not interactions.duplicated(KEYS).any():
        return interactions.reset_index(drop=True)
    rules = {}
    for column in interactions.columns.difference(KEYS, sort=False):
        values = interactions[column]
        if column == "rating":
            rules[column] = "mean"
        elif column == time_col or pd.api.types.is_datetime64_any_dtype(values):
            rules[column] = "max"
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            rules[column] = "sum"
        else:
            rules[column] = "first"
    return interactions.groupby(KEYS, as_index=False, sort=False).agg(rules)


def stratified_split(interactions: pd.DataFrame, test_frac: float = 0.25, seed: int = 42,
                     min_interactions: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, a random `test_frac` of their products to test, the rest to train.

    Each user's n products are shuffled with `seed`; the first
    ``round((1 - test_frac) * n)`` go to train (round half to even, as
    Python's `round`), the others to test. Users with fewer than
    `min_interactions` products stay wholly in train. This is
    ``python_stratified_split(data, ratio=1 - test_frac, min_rating=...)`` of
    Microsoft Recommenders, with two differences: users under the minimum are
    kept in train instead of being dropped, and the shuffle draws from
    numpy's Generator rather than the global random state. Note that a user
    with one product and ``test_frac >= 0.5`` goes wholly to test (round(0.5)
    is 0); the evaluation skips such users and counts them.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"user_id": ["a"] * 4 + ["b"], "product_id": list("vwxyz"), "weight": 1.0})
    >>> train, test = stratified_split(frame, test_frac=0.25, seed=7)
    >>> sorted(test["user_id"]), len(train)
    (['a'], 4)
    """
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must be between 0 and 1 (exclusive), not {test_frac}")
    pairs = one_row_per_pair(interactions)
    codes, _ = pd.factorize(pairs["user_id"])
    counts = np.bincount(codes)
    shuffle = np.random.default_rng(seed).random(len(pairs))
    order = np.lexsort((shuffle, codes))  # by user, then at random
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(pairs), dtype=np.int64)
    rank[order] = np.arange(len(pairs)) - starts[codes[order]]
    n_train = np.round((1.0 - test_frac) * counts).astype(np.int64)
    n_train = np.where(counts < min_interactions, counts, n_train)
    in_train = rank < n_train[codes]
    return _finish(pairs, in_train, {"kind": "stratified", "test_frac": test_frac, "seed": seed,
                                     "users_kept_whole": int((counts < min_interactions).sum())})


def leave_last_out_split(interactions: pd.DataFrame, n_last: int = 1, seed: int = 42,
                         time_col: str = "timestamp") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, the `n_last` most recent products to test, the rest to train.

    Recency is the pair's latest timestamp in `time_col` (a datetime or a
    number, e.g. Unix seconds); products bought at the same moment (one
    basket) are ordered at random with `seed`, and rows without a timestamp
    count as the oldest. Users with `n_last` products or fewer stay wholly in
    train. Every test product of a user is at least as recent as each of the
    user's train products.
    """
    if n_last < 1:
        raise ValueError(f"n_last must be 1 or more, not {n_last}")
    _check_columns(interactions, [time_col], why="the temporal split orders by time")
    pairs = one_row_per_pair(interactions, time_col)
    codes, _ = pd.factorize(pairs["user_id"])
    counts = np.bincount(codes)
    recency = pairs[time_col].rank(method="dense", na_option="top").to_numpy()
    shuffle = np.random.default_rng(seed).random(len(pairs))
    order = np.lexsort((shuffle, recency, codes))  # by user, then oldest first
    ends = np.cumsum(counts)
    from_end = np.empty(len(pairs), dtype=np.int64)
    from_end[order] = ends[codes[order]] - 1 - np.arange(len(pairs))  # 0: the latest
    in_test = (from_end < n_last) & (counts[codes] > n_last)
    return _finish(pairs, ~in_test, {"kind": "temporal", "n_last": n_last, "seed": seed,
                                     "users_kept_whole": int((counts <= n_last).sum())})


def time_split(interactions: pd.DataFrame, cutoff: str | pd.Timestamp | float | None = None,
               test_frac: float = 0.25, time_col: str = "timestamp") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows after `cutoff` to test, the others to train; test users and products unseen in train dropped.

    `cutoff` is a date or time (or a number when `time_col` holds numbers);
    without one it is the ``1 - test_frac`` quantile of the rows' timestamps,
    so about `test_frac` of the rows fall after it. Both sides are then
    reduced to one row per pair; test pairs that are also in train
    (repeats), and test rows of users or products that train lacks, are
    dropped and counted in ``test.attrs["split"]``.
    """
    _check_columns(interactions, KEYS + [time_col], why="the time split cuts at a time")
    times = interactions[time_col]
    if cutoff is None:
        if not 0.0 < test_frac < 1.0:
            raise ValueError(f"test_frac must be between 0 and 1 (exclusive), not {test_frac}")
        cutoff = times.quantile(1.0 - test_frac)
    elif pd.api.types.is_datetime64_any_dtype(times):
        cutoff = pd.Timestamp(cutoff)
        zone = getattr(times.dt, "tz", None)
        if zone is not None and cutoff.tzinfo is None:
            cutoff = cutoff.tz_localize(zone)
    else:
        cutoff = float(cutoff)
    after = (times > cutoff).to_numpy()
    train = one_row_per_pair(interactions[~after], time_col)
    test = one_row_per_pair(interactions[after], time_col)
    if train.empty or test.empty:
        side = "train" if train.empty else "test"
        raise ValueError(f"the cutoff {cutoff} leaves {side} empty; the data run from "
                         f"{times.min()} to {times.max()}")
    repeat = _pair_index(test).isin(_pair_index(train))
    new_user = ~test["user_id"].isin(train["user_id"])
    new_item = ~test["product_id"].isin(train["product_id"])
    drop = repeat | new_user | new_item
    report = {
        "kind": "time", "cutoff": str(cutoff),
        "repeat_pairs_dropped": int(repeat.sum()),
        "users_unseen_in_train": int(test.loc[new_user, "user_id"].nunique()),
        "items_unseen_in_train": int(test.loc[new_item, "product_id"].nunique()),
        "test_pairs_dropped": int(drop.sum()),
    }
    test = test[~drop].reset_index(drop=True)
    return _report(train.reset_index(drop=True), test, report)


def _pair_index(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(frame[KEYS].astype(str))


def _finish(pairs: pd.DataFrame, in_train: np.ndarray, report: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pairs[in_train].reset_index(drop=True)
    test = pairs[~in_train].reset_index(drop=True)
    return _report(train, test, report)


def _report(train: pd.DataFrame, test: pd.DataFrame, report: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    report = {**report, "train_rows": len(train), "test_rows": len(test),
              "test_users": int(test["user_id"].nunique())}
    logger.info("split: %s", report)
    train.attrs = {}
    test.attrs = {"split": report}
    return train, test


def _check_columns(frame: pd.DataFrame, columns: list[str], why: str = "") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        reason = f" ({why})" if why else ""
        raise ValueError(f"interactions need the column(s) {missing}{reason}; they have "
                         f"{list(frame.columns)}")


# --- judged queries split by query: train, validation and test (fine-tuning, rankers, evaluation) ---

PARTS = ("train", "validation", "test")


def query_group(query: str) -> str:
    """The split key of a query: lower-cased, inner spaces collapsed."""
    return " ".join(str(query).lower().split())


@dataclass(frozen=True)
class SplitFractions:
    """Shares of the groups for validation and test; train gets the rest."""

    validation: float = 0.1
    test: float = 0.1
    seed: int = 42

    def __post_init__(self):
        if not (0 <= self.validation < 1 and 0 <= self.test < 1 and self.validation + self.test < 1):
            raise ValueError("validation and test shares must be in [0, 1) and leave some for training")


def _unit_hash(group: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_parts(groups: pd.Series, fractions: SplitFractions = SplitFractions()) -> pd.Series:
    """"train", "validation" or "test" for each group key, by a seeded hash of the key."""
    unique = pd.Series(groups.unique())
    position = unique.map(lambda group: _unit_hash(str(group), fractions.seed))
    parts = pd.Series("train", index=unique.to_numpy())
    parts[(position < fractions.validation).to_numpy()] = "validation"
    parts[((position >= fractions.validation)
           & (position < fractions.validation + fractions.test)).to_numpy()] = "test"
    return groups.map(parts)


def split_judgments(judgments: pd.DataFrame,
                    fractions: SplitFractions = SplitFractions()) -> dict[str, pd.DataFrame]:
    """All judgments (every grade) split like `split_pairs` splits their pairs, for evaluation."""
    parts = assign_parts(judgments["query"].astype(str).map(query_group), fractions)
    return {part: judgments[parts == part].reset_index(drop=True) for part in PARTS}
