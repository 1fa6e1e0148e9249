"""Splits: known answers on tiny frames, and properties over random ones (hypothesis)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.evaluation.splits import (
    SplitConfig,
    leave_last_out_split,
    split_interactions,
    stratified_split,
    time_split,
)


def _pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"], frame["product_id"]))


@st.composite
def interactions(draw) -> pd.DataFrame:
    """Up to 6 users x 8 products, repeats allowed, timestamps on a few days (so ties happen)."""
    rows = draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7), st.integers(0, 9)),
                         min_size=1, max_size=60))
    return pd.DataFrame({
        "user_id": [f"u{u}" for u, _, _ in rows],
        "product_id": [f"p{p}" for _, p, _ in rows],
        "weight": 1.0,
        "timestamp": pd.to_datetime("2024-01-01") + pd.to_timedelta([d for _, _, d in rows], unit="D"),
    })


@settings(max_examples=60, deadline=None)
@given(frame=interactions(), test_frac=st.sampled_from([0.1, 0.25, 0.5, 0.8]), seed=st.integers(0, 99))
def test_stratified_holds_out_the_fraction_of_each_user_and_no_pair_twice(frame, test_frac, seed):
    train, test = stratified_split(frame, test_frac=test_frac, seed=seed)
    assert not _pairs(train) & _pairs(test)
    assert _pairs(train) | _pairs(test) == _pairs(frame)
    assert train["weight"].sum() + test["weight"].sum() == frame["weight"].sum()  # repeats summed
    per_user = frame.drop_duplicates(["user_id", "product_id"]).groupby("user_id").size()
    held_out = test.groupby("user_id").size().reindex(per_user.index, fill_value=0)
    assert ((held_out - test_frac * per_user).abs() <= 0.5 + 1e-9).all()
    again = stratified_split(frame, test_frac=test_frac, seed=seed)
    pd.testing.assert_frame_equal(again[0], train)
    pd.testing.assert_frame_equal(again[1], test)


def test_stratified_rounds_as_microsoft_recommenders_does():
    # round((1 - 0.25) * n) products to train, half to even: n=4 -> 3, n=2 -> round(1.5) = 2,
    # n=6 -> round(4.5) = 4, n=1 -> 1.
    sizes = {"a": 4, "b": 2, "c": 6, "d": 1}
    frame = pd.DataFrame([(user, f"{user}{i}") for user, n in sizes.items() for i in range(n)],
                         columns=["user_id", "product_id"]).assign(weight=1.0)
    train, test = stratified_split(frame, test_frac=0.25, seed=3)
    assert train.groupby("user_id").size().to_dict() == {"a": 3, "b": 2, "c": 4, "d": 1}
    assert test.groupby("user_id").size().to_dict() == {"a": 1, "c": 2}
    other_seed = {tuple(sorted(stratified_split(frame, 0.25, seed=s)[1]["product_id"])) for s in range(8)}
    assert len(other_seed) > 1  # the seed does choose


def test_stratified_keeps_users_under_the_minimum_whole_in_train():
    frame = pd.DataFrame({"user_id": ["a"] * 4 + ["b"] * 2, "product_id": list("wxyzwx"), "weight": 1.0})
    train, test = stratified_split(frame, test_frac=0.5, min_interactions=3)
    assert set(test["user_id"]) == {"a"} and (train["user_id"] == "b").sum() == 2
    assert test.attrs["split"]["users_kept_whole"] == 1


@settings(max_examples=60, deadline=None)
@given(frame=interactions(), n_last=st.integers(1, 3), seed=st.integers(0, 99))
def test_leave_last_out_puts_each_users_latest_in_test(frame, n_last, seed):
    train, test = leave_last_out_split(frame, n_last=n_last, seed=seed)
    assert not _pairs(train) & _pairs(test)
    assert _pairs(train) | _pairs(test) == _pairs(frame)
    per_user = frame.drop_duplicates(["user_id", "product_id"]).groupby("user_id").size()
    held_out = test.groupby("user_id").size()
    for user, n in per_user.items():
        assert held_out.get(user, 0) == (n_last if n > n_last else 0)
    newest_train = train.groupby("user_id")["timestamp"].max()
    oldest_test = test.groupby("user_id")["timestamp"].min()
    assert (oldest_test >= newest_train.reindex(oldest_test.index)).all()


def test_leave_last_out_known_answer_and_single_interaction_users():
    frame = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "product_id": ["x", "y", "x", "z"],
                          "weight": [1.0, 1.0, 2.0, 1.0], "timestamp": [1, 2, 3, 5]})
    train, test = leave_last_out_split(frame)
    # a bought x at 1 and again at 3: x's latest time (3) beats y's (2), so x, with both rows, is held out.
    assert test.to_dict("records") == [{"user_id": "a", "product_id": "x", "weight": 3.0, "timestamp": 3}]
    assert sorted(_pairs(train)) == [("a", "y"), ("b", "z")]


@settings(max_examples=60, deadline=None)
@given(frame=interactions(), test_frac=st.sampled_from([0.2, 0.5]))
def test_time_split_trains_on_the_past_and_tests_known_users_on_the_future(frame, test_frac):
    try:
        train, test = time_split(frame, test_frac=test_frac)
    except ValueError as error:  # every row on one side of the cutoff
        assert "empty" in str(error)
        return
    cutoff = pd.Timestamp(test.attrs["split"]["cutoff"])
    assert (train["timestamp"] <= cutoff).all() and (test["timestamp"] > cutoff).all()
    assert not _pairs(train) & _pairs(test)
    assert set(test["user_id"]) <= set(train["user_id"])
    assert set(test["product_id"]) <= set(train["product_id"])


def test_time_split_counts_what_it_drops():
    frame = pd.DataFrame({
        "user_id": ["a", "a", "b", "a", "a", "c", "b"],
        "product_id": ["x", "y", "x", "x", "z", "x", "y"],
        "weight": 1.0,
        "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-02-01",
                                     "2024-02-02", "2024-02-03", "2024-02-04"]),
    })
    train, test = time_split(frame, cutoff="2024-01-15")
    assert _pairs(test) == {("b", "y")}
    report = test.attrs["split"]
    assert report["repeat_pairs_dropped"] == 1      # a bought x before and after
    assert report["items_unseen_in_train"] == 1     # z
    assert report["users_unseen_in_train"] == 1     # c
    assert report["test_pairs_dropped"] == 3


def test_split_config_round_trips_and_dispatches():
    config = SplitConfig(kind="temporal", n_last=2, seed=7)
    assert SplitConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="no parameter"):
        SplitConfig.from_dict({"ratio": 0.5})
    frame = pd.DataFrame({"user_id": ["a"] * 3, "product_id": list("xyz"), "weight": 1.0,
                          "timestamp": [1, 2, 3]})
    assert sorted(split_interactions(frame, config)[1]["product_id"]) == ["y", "z"]
    with pytest.raises(ValueError, match="need the column"):
        leave_last_out_split(frame.drop(columns="timestamp"))
