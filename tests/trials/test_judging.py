"""Query sets, pooled blind judging, agreement and scorecards: the pure parts of recsys.trials."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from recsys.trials import querysets
from recsys.trials.judging import (Scale, agreement, blind_order, consensus, disagreements, pooled,
                                   to_grade)
from recsys.trials.scorecard import compare, score


def judged(rows) -> pd.DataFrame:
    """rows of (query, product_id, grader, grade or None, verdict)."""
    return pd.DataFrame(rows, columns=["query", "product_id", "grader", "grade", "verdict"])


def test_queries_are_kept_once_whatever_their_case_and_spaces():
    assert querysets.typed_queries("Red Mug\n red  mug\n\nteapot\n") == ["Red Mug", "teapot"]
    with pytest.raises(ValueError, match="at least one query"):
        querysets.typed_queries("\n  \n")
    frame = pd.DataFrame({"search": ["lamp", "lamp", "chair"]})
    assert querysets.file_queries(frame, file="q.csv") == ["lamp", "chair"]  # the only column
    with pytest.raises(ValueError, match="q.csv has no column 'query'; its columns are a, b"):
        querysets.file_queries(pd.DataFrame({"a": [1], "b": [2]}), file="q.csv")


def test_search_log_samples_and_the_traffic_they_cover():
    log = pd.DataFrame({"query": ["mug"] * 5 + ["Teapot"] * 3 + ["teapot "] + ["lamp", "chair", "rug"]})
    assert querysets.sample_search_log(log, "frequent", 2) == ["mug", "teapot"]
    drawn = querysets.sample_search_log(log, "random", 3, seed=1)
    assert len(drawn) == 3 and set(drawn) <= {"mug", "teapot", "lamp", "chair", "rug"}
    assert drawn == querysets.sample_search_log(log, "random", 3, seed=1)  # seeded
    assert querysets.traffic_share(["mug", "TEAPOT"], log) == pytest.approx(9 / 12, abs=1e-4)
    assert querysets.traffic_share(["mug"], pd.DataFrame(columns=["query"])) is None
    with pytest.raises(ValueError, match="the search log is empty"):
        querysets.sample_search_log(pd.DataFrame(columns=["query"]), "frequent", 3)


def test_the_vocabulary_of_titles_gives_queries_customers_would_type():
    titles = pd.Series(["White hanging heart T-light holder", "Red heart T-light holder", "Heart of wicker",
                        "Set of 3 cake tins"])
    queries = querysets.vocabulary_queries(titles, 3)
    assert queries[0] == "heart" and "t-light holder" in queries and "of" not in queries


def test_the_pool_merges_each_top_n_once_in_an_order_that_hides_its_source():
    first = pooled({"a": {"mug": ["p1", "p2", "p9"]}, "b": {"mug": ["p2", "p3"]}}, 2, trial_id=7)
    second = pooled({"b": {"mug": ["p3", "p2"]}, "a": {"mug": ["p2", "p1"]}}, 2, trial_id=7)
    assert sorted(first["mug"]) == ["p1", "p2", "p3"] and first == second  # p9 is below the depth
    assert first["mug"] == sorted(["p1", "p2", "p3"], key=lambda p: blind_order(7, "mug", p))
    done = judged([("mug", first["mug"][0], "ann", 2, "graded"), ("mug", first["mug"][1], "ann", None, "skipped")])
    assert to_grade(first, done, "ann")["product_id"].tolist() == first["mug"][2:]  # a skip is not asked again
    assert to_grade(first, done, "bob")["product_id"].tolist() == first["mug"]  # another grader sees them all


def test_a_scale_names_what_it_refuses():
    scale = Scale()
    assert scale.check("3") == 3.0 and scale.grades == [0, 1, 2, 3] and scale.label(2) == "relevant"
    with pytest.raises(ValueError, match=r"row 4, column grade: grade 5 is outside the trial's scale 0-3"):
        scale.check(5, "row 4, column grade: ")
    with pytest.raises(ValueError, match="outside"):
        scale.check("good")
    with pytest.raises(ValueError, match="lowest relevant grade"):
        Scale(lowest=1, highest=3, relevant=1)


def test_consensus_by_mean_or_majority_and_skips_count_for_nothing():
    rows = judged([("q", "p", "ann", 3, "graded"), ("q", "p", "bob", 1, "graded"), ("q", "p", "cy", 1, "graded"),
                   ("q", "r", "ann", None, "cant_tell"), ("q", "s", "ann", 2, "graded")])
    mean = consensus(rows, "mean").set_index("product_id")
    assert mean.loc["p", "grade"] == pytest.approx(5 / 3) and mean.loc["p", "graders"] == 3 and "r" not in mean.index
    assert consensus(rows, "majority").set_index("product_id").loc["p", "grade"] == 1.0
    tie = judged([("q", "p", "ann", 3, "graded"), ("q", "p", "bob", 1, "graded")])
    assert consensus(tie, "majority")["grade"].tolist() == [1.0]  # a tie goes to the lower grade


def test_agreement_is_krippendorffs_alpha_and_disagreements_are_listed():
    pairs = [("q1", "a"), ("q1", "b"), ("q2", "c"), ("q2", "d"), ("q3", "e")]
    grades = [3, 0, 2, 1, 3]
    same = judged([(q, p, g, grade, "graded") for (q, p), grade in zip(pairs, grades) for g in ("ann", "bob")])
    result = agreement(same, Scale())
    assert result["alpha"] == pytest.approx(1.0) and result["pairs"] == 5
    assert [(row["grader"], row["shared"], row["exact"]) for row in result["graders"]] == [
        ("ann", 5, 1.0), ("bob", 5, 1.0)]
    assert disagreements(same).empty
    flipped = same.copy()
    flipped.loc[(flipped["grader"] == "bob") & (flipped["product_id"] == "a"), "grade"] = 0
    worse = agreement(flipped, Scale())
    assert worse["alpha"] < 1.0
    listed = disagreements(flipped)
    assert listed[["query", "product_id", "spread"]].values.tolist() == [["q1", "a", 3.0]]
    assert listed["grades"].iloc[0] == "ann: 3, bob: 0"
    assert agreement(same[same["grader"] == "ann"], Scale())["alpha"] is None  # one grader: undefined


def test_a_scorecard_scores_ndcg_precision_and_the_holes():
    grades = pd.DataFrame({"query": ["mug", "mug", "mug", "lamp"], "product_id": ["p1", "p2", "p3", "l1"],
                           "grade": [3.0, 2.0, 0.0, 1.0]})
    scored = score("a", {"mug": ["p3", "p1", "x"], "lamp": ["l1"]}, grades, Scale()).per_query.set_index("query")
    ideal = 3 + 2 / math.log2(3)
    assert scored.loc["mug", "ndcg@10"] == pytest.approx((3 / math.log2(3)) / ideal)
    assert scored.loc["mug", "precision@10"] == pytest.approx(0.1)  # p1 only: 2 or more, and 10 places
    assert scored.loc["mug", "judged@10"] == pytest.approx(0.2)  # p3 and p1 of the ten places
    assert scored.loc["lamp", "ndcg@10"] == pytest.approx(1.0) and scored.loc["lamp", "precision@10"] == 0


def test_two_configurations_are_compared_query_by_query():
    queries = [f"q{i}" for i in range(8)]
    grades = pd.DataFrame({"query": queries, "product_id": "good", "grade": 3.0})
    worse = score("a", {query: ["bad", "good"] for query in queries}, grades, Scale())
    better = score("b", {query: (["good"] if i % 4 else ["bad", "good"]) for i, query in enumerate(queries)},
                   grades, Scale())
    result = compare(worse, better)
    assert (result["wins_b"], result["wins_a"], result["ties"], result["queries"]) == (6, 0, 2, 8)
    assert result["mean_difference"] > 0 and result["ci95"][0] < result["mean_difference"] < result["ci95"][1]
    assert 0 < result["p_value"] < 0.05 and 0 < result["p_value_wilcoxon"] < 0.05
    assert compare(worse, worse)["p_value"] is None  # no difference at all: nothing to test


def test_a_side_by_side_answer_is_read_as_a_win_of_the_configuration_on_that_side():
    from recsys.trials.preference import first_on_left, win_rate, winner_of, wilson

    assert winner_of("left", True) == "first" and winner_of("left", False) == "second"
    assert winner_of("right", True) == "second" and winner_of("same", False) == "same"
    with pytest.raises(ValueError, match="left, right or same"):
        winner_of("up", True)
    sides = [first_on_left(3, f"q{i}", "ann") for i in range(40)]
    assert 10 < sum(sides) < 30 and sides == [first_on_left(3, f"q{i}", "ann") for i in range(40)]
    answers = pd.DataFrame({"winner": ["second"] * 15 + ["first"] * 5 + ["same"] * 3,
                            "first_on_left": [True, False] * 10 + [True] * 3})
    result = win_rate(answers)
    assert (result["wins_second"], result["wins_first"], result["same"]) == (15, 5, 3)
    assert result["rate_second"] == 0.75 and result["ci95"][0] < 0.75 < result["ci95"][1]
    assert result["p_value"] == pytest.approx(0.041389, abs=1e-5)  # two-sided binomial, 15 of 20
    assert result["left_share"] == 0.45  # 7 second-wins shown left, 2 first-wins shown left, of 20
    assert wilson(0, 0) is None and wilson(10, 10)[1] == pytest.approx(1.0)


def test_a_scale_spanning_other_grades_counts_the_top_third_as_relevant():
    assert Scale.spanning(0, 3) == Scale()
    scale = Scale.spanning(1, 5)
    assert (scale.relevant, scale.grades, scale.label(4)) == (3.67, [1, 2, 3, 4, 5], "4")
