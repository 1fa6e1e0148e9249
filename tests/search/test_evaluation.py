"""Judgment-list evaluation on a tiny judged set whose metrics are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.search import (evaluate_full_catalog, evaluate_rerank, evaluate_search,
                                      graded_qrels, measure_latency, relevant_qrels)
from recsys.search import Retriever

# Fixed scores per query: q1 ranks a > b > c > d > e, q2 ranks e > d > c > b > a.
TABLE = {"q1": dict(a=5.0, b=4.0, c=3.0, d=2.0, e=1.0),
         "q2": dict(e=5.0, d=4.0, c=3.0, b=2.0, a=1.0),
         "q3": dict(a=1.0)}


class TableRetriever(Retriever):
    """A retriever whose scores are the table above (not registered: a test double)."""

    name = "table"

    def _fit(self, catalog):
        self.calls = 0

    def _scores(self, queries):
        self.calls += len(queries)
        return np.array([[TABLE[q].get(p, 0.0) for p in self.product_ids] for q in queries])


@pytest.fixture
def retriever():
    return TableRetriever().fit(pd.DataFrame({"product_id": list("abcde"), "title": list("abcde")}))


# Grades on Home Depot's scale [1, 3]; q3 has nothing above the lowest grade.
JUDGMENTS = pd.DataFrame(
    [("q1", "a", 1.0), ("q1", "b", 3.0), ("q1", "c", 2.0), ("q1", "e", 3.0),
     ("q2", "e", 2.0), ("q2", "a", 3.0),
     ("q3", "a", 1.0), ("q3", "b", 1.0)], columns=["query", "product_id", "grade"])

LOG3 = math.log2(3)
# nDCG@3, gain = grade - 1. q1 ranks a(0) b(2) c(1); ideal 2, 2, 1.
Q1_NDCG = (2 / LOG3 + 1 / 2) / (2 + 2 / LOG3 + 1 / 2)
# q2 ranks e(1) d(0) c(0); ideal a(2), e(1).
Q2_NDCG = 1 / (2 + 1 / LOG3)
# Reranking q2's judged products: e(1) then a(2).
Q2_RERANK = (1 + 2 / LOG3) / (2 + 1 / LOG3)


def test_qrels_gain_is_grade_minus_the_lowest_grade():
    assert graded_qrels(JUDGMENTS)["q1"] == {"a": 0.0, "b": 2.0, "c": 1.0, "e": 2.0}
    assert graded_qrels(JUDGMENTS, min_grade=0)["q1"]["a"] == 1.0
    assert relevant_qrels(JUDGMENTS)["q1"] == {"a": 0.0, "b": 1.0, "c": 0.0, "e": 1.0}
    assert relevant_qrels(JUDGMENTS, relevant_grade=2)["q1"]["c"] == 1.0


def test_repeated_pairs_are_averaged_and_blank_queries_dropped():
    frame = pd.concat([JUDGMENTS, pd.DataFrame([("q1", "b", 2.0), ("  ", "a", 3.0)],
                                               columns=JUDGMENTS.columns)])
    qrels = graded_qrels(frame)
    assert qrels["q1"]["b"] == 1.5 and "  " not in qrels


def test_full_catalog_ndcg_and_recall_by_hand(retriever):
    result = evaluate_full_catalog(retriever, JUDGMENTS, k=3, recall_k=2)
    # q3 has no gain: left out of both means. Recall@2 of grades >= 2.5: q1 finds b of {b, e}.
    assert result["ndcg@3"] == pytest.approx((Q1_NDCG + Q2_NDCG) / 2)
    assert result["recall@2"] == pytest.approx((0.5 + 0.0) / 2)
    assert evaluate_full_catalog(retriever, JUDGMENTS, k=3, recall_k=2, relevant_grade=2)[
        "recall@2"] == pytest.approx((1 / 3 + 1 / 2) / 2)  # q1: b of {b, c, e}; q2: e of {e, a}


def test_min_grade_sets_the_zero_gain(retriever):
    q1 = JUDGMENTS[JUDGMENTS["query"] == "q1"]
    result = evaluate_full_catalog(retriever, q1, k=3, recall_k=2, min_grade=0)
    assert result["ndcg@3"] == pytest.approx((1 + 3 / LOG3 + 2 / 2) / (3 + 3 / LOG3 + 2 / 2))


def test_rerank_orders_only_the_judged_products(retriever):
    result = evaluate_rerank(retriever, JUDGMENTS, k=3)
    assert result == {"rerank_ndcg@3": pytest.approx((Q1_NDCG + Q2_RERANK) / 2)}


def test_rerank_puts_unknown_products_last(retriever):
    judged = pd.concat([JUDGMENTS, pd.DataFrame([("q2", "gone", 3.0)], columns=JUDGMENTS.columns)])
    q2 = judged[judged["query"] == "q2"]
    # e(1), a(2), then the unknown product(2): ideal a, gone, e.
    expected = (1 + 2 / LOG3 + 2 / 2) / (2 + 2 / LOG3 + 1 / 2)
    assert evaluate_rerank(retriever, q2, k=3, min_grade=1)["rerank_ndcg@3"] == pytest.approx(expected)


def test_latency_times_a_sample_after_a_warm_up(retriever):
    retriever.calls = 0
    latency = measure_latency(retriever, ["q1", "q2", "q3", "q1"], k=2, sample=2, warmup=3)
    assert retriever.calls == 3 + 2
    assert 0 < latency["latency_ms_p50"] <= latency["latency_ms_p95"]


def test_evaluate_search_reports_every_figure(retriever):
    result = evaluate_search(retriever, JUDGMENTS, k=3, recall_k=2, latency_sample=5)
    assert set(result) == {"queries", "ndcg@3", "recall@2", "rerank_ndcg@3", "latency_ms_p50",
                           "latency_ms_p95"}
    assert result["queries"] == 3
    assert "latency_ms_p50" not in evaluate_search(retriever, JUDGMENTS, latency_sample=0)
