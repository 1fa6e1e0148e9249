"""Ranking metrics: ranx's figures against sums done by hand, and against a plain reference implementation."""

from __future__ import annotations

from math import log2

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.evaluation.metrics import ranking_metrics

QRELS = {"u1": {"a": 1, "b": 1, "c": 1}, "u2": {"d": 1}, "u3": {"e": 1}}
RUN = {"u1": [("a", 0.9), ("x", 0.8), ("b", 0.7), ("y", 0.6)],   # hits at ranks 1 and 3 of 3 relevant
       "u2": [("x", 0.9), ("y", 0.8), ("z", 0.7), ("d", 0.1)]}   # hit at rank 4; u3 has no list: all 0


def test_every_metric_matches_the_hand_computed_value():
    ndcg_u1 = (1 / log2(2) + 1 / log2(4)) / (1 / log2(2) + 1 / log2(3) + 1 / log2(4))
    ndcg_u2 = (1 / log2(5)) / 1.0
    expected = {
        "ndcg@4": (ndcg_u1 + ndcg_u2 + 0) / 3,
        "precision@4": (2 / 4 + 1 / 4 + 0) / 3,               # hits / k
        "recall@4": (2 / 3 + 1 / 1 + 0) / 3,                  # hits / relevant
        "map@4": ((1 / 1 + 2 / 3) / 3 + (1 / 4) / 1 + 0) / 3,  # precision at each hit / relevant
        "mrr@4": (1 / 1 + 1 / 4 + 0) / 3,
    }
    assert ranking_metrics(QRELS, RUN, k=4) == pytest.approx(expected, abs=1e-12)


def test_the_cut_at_k_and_per_user_values():
    result = ranking_metrics(QRELS, RUN, k=2, per_query=True)
    assert result["per_query"]["precision@2"] == pytest.approx({"u1": 0.5, "u2": 0.0, "u3": 0.0})
    # u1's third-ranked hit is past the cut; AP still divides by all 3 relevant products.
    assert result["per_query"]["map@2"]["u1"] == pytest.approx(1 / 3)
    assert result["per_query"]["ndcg@2"]["u1"] == pytest.approx(1 / (1 + 1 / log2(3)))


def _reference(relevant: set[str], ranked: list[str], k: int) -> dict[str, float]:
    top = ranked[:k]
    hits = [item in relevant for item in top]
    dcg = sum(1 / log2(rank + 2) for rank, hit in enumerate(hits) if hit)
    idcg = sum(1 / log2(rank + 2) for rank in range(min(k, len(relevant))))
    precisions = [sum(hits[: rank + 1]) / (rank + 1) for rank, hit in enumerate(hits) if hit]
    first = next((rank for rank, hit in enumerate(hits) if hit), None)
    return {f"ndcg@{k}": dcg / idcg, f"precision@{k}": sum(hits) / k,
            f"recall@{k}": sum(hits) / len(relevant), f"map@{k}": sum(precisions) / len(relevant),
            f"mrr@{k}": 0.0 if first is None else 1 / (first + 1)}


ITEMS = [f"p{i}" for i in range(12)]
users = st.lists(
    st.tuples(st.sets(st.sampled_from(ITEMS), min_size=1, max_size=6),
              st.lists(st.sampled_from(ITEMS), unique=True, max_size=10)),
    min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(users=users, k=st.integers(1, 8))
def test_ranx_agrees_with_a_plain_implementation(users, k):
    qrels = {f"u{i}": dict.fromkeys(relevant, 1.0) for i, (relevant, _) in enumerate(users)}
    run = {f"u{i}": [(item, 1.0) for item in ranked] for i, (_, ranked) in enumerate(users)}
    per_user = [_reference(relevant, ranked, k) for relevant, ranked in users]
    expected = {name: sum(values[name] for values in per_user) / len(users) for name in per_user[0]}
    assert ranking_metrics(qrels, run, k=k) == pytest.approx(expected, abs=1e-9)


def test_fractional_gains_count_as_fractions():
    # ranx alone truncates relevance to integers: 0.67 would count 0 and 1.33 as much as 1.
    qrels = {"q": {"a": 2 / 3, "b": 4 / 3}}
    dcg = (2 / 3) / log2(2) + (4 / 3) / log2(3)
    ideal = (4 / 3) / log2(2) + (2 / 3) / log2(3)
    assert ranking_metrics(qrels, {"q": [("a", 1.0), ("b", 0.5)]}, k=10)["ndcg@10"] == pytest.approx(dcg / ideal)


def test_a_single_metric_is_returned_as_a_dict():
    from recsys.evaluation.metrics import ranking_metrics

    assert ranking_metrics({"q": {"a": 1.0}}, {"q": [("b", 2.0), ("a", 1.0)]}, k=1,
                           metrics=["precision"]) == {"precision@1": 0.0}


graded = st.lists(  # Home Depot's gains come in thirds
    st.tuples(st.dictionaries(st.sampled_from(ITEMS), st.sampled_from([0.0, 1 / 3, 2 / 3, 1.0, 4 / 3, 2.0, 3.0]),
                              max_size=6),
              st.lists(st.sampled_from(ITEMS), unique=True, max_size=12)),
    min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(users=graded, k=st.integers(1, 8), recall_k=st.integers(1, 12))
def test_the_live_metrics_agree_with_ranx(users, k, recall_k):
    from recsys.evaluation.metrics import ndcg_and_recall

    qrels = {f"u{i}": gains for i, (gains, _) in enumerate(users)}
    relevant = {user: {item: 1.0 for item, gain in gains.items() if gain >= 2} for user, gains in qrels.items()}
    run = {f"u{i}": [(item, 1.0) for item in ranked] for i, (_, ranked) in enumerate(users) if i % 3 != 2}
    from recsys.evaluation.metrics import ndcg_per_query

    fast = ndcg_and_recall(qrels, relevant, run, k=k, recall_k=recall_k)
    # (ranx reads the gains rounded to a billionth: see metrics.GAIN_SCALE)
    slow = ranking_metrics(qrels, run, k=k, metrics=("ndcg", "precision"), per_query=True)
    assert fast[f"ndcg@{k}"] == pytest.approx(slow[f"ndcg@{k}"], abs=1e-8)
    assert ndcg_per_query(qrels, run, k) == pytest.approx(slow["per_query"][f"ndcg@{k}"], abs=1e-8)
    assert fast[f"recall@{recall_k}"] == pytest.approx(
        ranking_metrics(relevant, run, k=recall_k)[f"recall@{recall_k}"], abs=1e-9)


def test_per_query_values_belong_to_their_queries_whatever_the_order_given():
    qrels = {"mug": {"p1": 3.0, "p2": 2.0}, "lamp": {"l1": 1.0}}  # ranx sorts queries: lamp before mug
    run = {"mug": [("p3", 3.0), ("p1", 2.0), ("x", 1.0)], "lamp": [("l1", 1.0)]}
    per_query = ranking_metrics(qrels, run, k=10, metrics=("ndcg", "precision"), per_query=True)["per_query"]
    assert per_query["ndcg@10"]["lamp"] == pytest.approx(1.0)
    assert per_query["ndcg@10"]["mug"] == pytest.approx((3 / log2(3)) / (3 + 2 / log2(3)))
