"""Training pairs from judgments, clicks and co-purchases, and splits with no query in two parts."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.training.jobs import default_min_grade, prepare_pairs
from recsys.training.pairs import (SplitFractions, assign_parts, pairs_from_co_purchases, pairs_from_judgments,
                                   pairs_from_search_log, split_judgments, split_pairs)

CATALOG = pd.DataFrame({"product_id": ["1", "2", "3", "4", "5"],
                        "title": ["Red mug", "Blue mug", "Lawn mower", "Garden hose", "Tea pot"],
                        "description": ["", "Ceramic", None, "", ""]})


def test_judgment_pairs_keep_grades_at_or_above_the_threshold_and_known_products():
    judgments = pd.DataFrame({"query": ["mug", "mug", "mug", "Mower ", "mug"],
                              "product_id": ["1", "2", "3", "3", "99"], "grade": [3, 2.33, 1, 2.67, 3]})
    pairs = pairs_from_judgments(judgments, CATALOG, min_grade=2.33)
    assert sorted(zip(pairs["anchor"], pairs["positive_id"])) == [("Mower", "3"), ("mug", "1"), ("mug", "2")]
    # The description joins the title in the embedded text; the split key is the lower-cased query.
    assert pairs.set_index("positive_id").loc["2", "positive"] == "Blue mug. Ceramic"
    assert set(pairs["group"]) == {"mug", "mower"}


def test_repeated_judgments_are_averaged_before_the_threshold():
    judgments = pd.DataFrame({"query": ["mug", "mug"], "product_id": ["1", "1"], "grade": [3, 1]})
    assert pairs_from_judgments(judgments, CATALOG, min_grade=2.5).empty
    assert len(pairs_from_judgments(judgments, CATALOG, min_grade=2.0)) == 1


def test_search_log_pairs_count_clicks_and_skip_searches_without_one():
    log = pd.DataFrame({"query": ["mug", "mug", "mug", "hose", "pot"],
                        "product_id": ["1", "1", None, "4", ""]})
    pairs = pairs_from_search_log(log, CATALOG)
    assert sorted(zip(pairs["anchor"], pairs["positive_id"], pairs["grade"])) == [("hose", "4", 1.0),
                                                                                  ("mug", "1", 2.0)]
    assert pairs_from_search_log(log, CATALOG, min_clicks=2)["anchor"].tolist() == ["mug"]


def test_co_purchase_pairs_come_from_shared_baskets():
    events = pd.DataFrame({
        "user_id": ["a", "a", "b", "b", "c", "c", "c"],
        "product_id": ["1", "2", "1", "2", "1", "3", "5"],
        "event_type": ["purchase"] * 7,
        "timestamp": pd.to_datetime(["2024-01-01"] * 4 + ["2024-01-02"] * 3),
        "session_id": ["o1", "o1", "o2", "o2", "o3", "o3", "o3"]})
    pairs = pairs_from_co_purchases(events, CATALOG, min_baskets=2)
    assert sorted(zip(pairs["anchor_id"], pairs["positive_id"], pairs["grade"])) == [("1", "2", 2.0),
                                                                                     ("2", "1", 2.0)]
    assert pairs.set_index("anchor_id").loc["1", "anchor"] == "Red mug"
    once = pairs_from_co_purchases(events, CATALOG, min_baskets=1)
    assert ("1", "3") in set(zip(once["anchor_id"], once["positive_id"]))
    assert pairs_from_co_purchases(events, CATALOG, min_baskets=1, max_basket_size=2)["anchor_id"].nunique() == 2


def test_default_min_grade_is_the_top_third_of_the_scale():
    assert default_min_grade(pd.Series([1.0, 2.0, 3.0])) == 2.33
    assert default_min_grade(pd.Series([0, 4])) == 2.67


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="abcXYZ ", min_size=1, max_size=6), min_size=1, max_size=60),
       st.integers(0, 1000))
def test_no_group_is_in_two_parts_and_parts_are_stable(queries, seed):
    frame = pd.DataFrame({"group": [" ".join(q.lower().split()) for q in queries], "anchor": queries,
                          "anchor_id": queries, "positive": "x", "positive_id": "1", "grade": 1.0})
    fractions = SplitFractions(0.2, 0.2, seed)
    parts = split_pairs(frame, fractions)
    groups = [set(part["group"]) for part in parts.values()]
    assert sum(len(g) for g in groups) == len(set(frame["group"]))
    assert sum(len(part) for part in parts.values()) == len(frame)
    # A group keeps its part when other groups come or go.
    alone = assign_parts(frame["group"].head(1), fractions).iloc[0]
    assert assign_parts(frame["group"], fractions).iloc[0] == alone


def test_split_shares_are_close_to_the_fractions():
    groups = pd.Series([f"query {i}" for i in range(5000)])
    counts = assign_parts(groups, SplitFractions(0.1, 0.2, 7)).value_counts(normalize=True)
    assert abs(counts["validation"] - 0.1) < 0.02 and abs(counts["test"] - 0.2) < 0.02


def test_judgments_split_like_their_pairs_so_evaluation_never_sees_training_queries():
    queries = [f"q{i}" for i in range(300)]
    judgments = pd.DataFrame({"query": queries * 2, "product_id": ["1"] * 300 + ["3"] * 300,
                              "grade": [3.0] * 300 + [1.0] * 300})
    prepared = prepare_pairs("judgments", CATALOG, judgments=judgments, min_grade=2.5)
    train_queries = set(prepared["pairs"]["train"]["anchor"])
    for part in ("validation", "test"):
        evaluated = set(prepared["judgments"][part]["query"])
        assert evaluated and not evaluated & train_queries
        assert evaluated == set(prepared["pairs"][part]["anchor"])
        # Evaluation keeps every grade, also those below the training threshold.
        assert set(prepared["judgments"][part]["grade"]) == {1.0, 3.0}


def test_split_judgments_and_split_pairs_agree_on_case_and_spacing():
    judgments = pd.DataFrame({"query": ["Red  Mug", "red mug"], "product_id": ["1", "2"], "grade": [3, 3]})
    parts = split_judgments(judgments, SplitFractions(0.5, 0.0, 1))
    assert sum(not part.empty for part in parts.values()) == 1


@pytest.mark.parametrize("source, kwargs, message", [
    ("judgments", {}, "no judgments"),
    ("search_log", {"search_log": pd.DataFrame(columns=["query", "product_id"])}, "no search log"),
    ("co_purchases", {}, "no events"),
    ("ratings", {}, "unknown training data"),
])
def test_missing_training_data_is_a_clear_error(source, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_pairs(source, CATALOG, **kwargs)


def test_no_pair_in_the_catalog_is_a_clear_error():
    judgments = pd.DataFrame({"query": ["mug"], "product_id": ["99"], "grade": [3.0]})
    with pytest.raises(ValueError, match="gave no training pairs"):
        prepare_pairs("judgments", CATALOG, judgments=judgments)
