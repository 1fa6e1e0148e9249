"""evaluate_recommender on a five-user shop whose popularity ranking, and so every figure, is known."""

from __future__ import annotations

from math import log2, sqrt

import pandas as pd
import pytest

from recsys.evaluation import recs
from recsys.evaluation.recs import cannot_run, evaluate_recommender, intra_list_diversity
from recsys.recommenders.popularity import Popularity

# Nested baskets: A was bought by 5 users, B by 4, C by 3, D by 2, E by 1,
# so popularity ranks A > B > C > D > E.
BASKETS = {"u1": "ABCDE", "u2": "ABCD", "u3": "ABC", "u4": "AB", "u5": "A"}
TRAIN = pd.DataFrame([(user, product) for user, basket in BASKETS.items() for product in basket],
                     columns=["user_id", "product_id"]).assign(weight=1.0)
TEST = pd.DataFrame({
    "user_id": ["u5", "u4", "u4", "u3", "u2", "u9"],
    "product_id": ["C", "D", "E", "E", "B", "A"],   # u2's B is in train already; u9 is unknown to train
    "weight": 1.0,
})
# Top 3 without the user's train products: u5 [B, C, D], u4 [C, D, E], u3 [D, E] (nothing else is left).
LISTS = {"u5": "BCD", "u4": "CDE", "u3": "DE"}
USERS_WHO_BOUGHT = {"A": 5, "B": 4, "C": 3, "D": 2, "E": 1}


def _dcg(ranks: list[int]) -> float:
    return sum(1 / log2(rank + 1) for rank in ranks)


def _cosine(a: str, b: str) -> float:
    # Baskets are nested, so the overlap of two products' buyers is the smaller set.
    na, nb = USERS_WHO_BOUGHT[a], USERS_WHO_BOUGHT[b]
    return min(na, nb) / sqrt(na * nb)


def test_the_figures_match_the_hand_computed_ones():
    result = evaluate_recommender("popularity", TRAIN, TEST, k=3, latency_users=2)
    ndcg = {"u5": _dcg([2]) / _dcg([1]),            # C at rank 2
            "u4": _dcg([2, 3]) / _dcg([1, 2]),      # D, E at ranks 2 and 3
            "u3": _dcg([2]) / _dcg([1])}            # E at rank 2
    assert result["users"] == 3 and result["users_unknown"] == 1 and result["users_without_new_items"] == 1
    assert result["ndcg@3"] == pytest.approx(sum(ndcg.values()) / 3)
    assert result["precision@3"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 3) / 3)
    assert result["recall@3"] == pytest.approx(1.0)
    assert result["map@3"] == pytest.approx((1 / 2 + (1 / 2 + 2 / 3) / 2 + 1 / 2) / 3)
    assert result["mrr@3"] == pytest.approx(1 / 2)
    assert result["coverage@3"] == pytest.approx(4 / 5)   # B, C, D, E of the 5 train products
    recommended = "".join(LISTS.values())
    assert result["novelty@3"] == pytest.approx(
        sum(-log2(USERS_WHO_BOUGHT[p] / 5) for p in recommended) / len(recommended))
    diversity = [sum(1 - _cosine(a, b) for i, a in enumerate(items) for b in items[i + 1:])
                 / (len(items) * (len(items) - 1) / 2) for items in LISTS.values()]
    assert result["diversity@3"] == pytest.approx(sum(diversity) / 3)
    assert result["algo"] == "popularity" and result["config"] == {"window_days": None}
    assert 0 < result["recommend_ms_p50"] <= result["recommend_ms_p95"] and result["fit_s"] >= 0
    assert result["test_pairs"] == 4 and result["train_items"] == 5


def test_batches_give_the_same_lists_as_one_call(monkeypatch):
    whole = evaluate_recommender("popularity", TRAIN, TEST, k=3, latency_users=0)
    monkeypatch.setattr(recs, "BATCH_CELLS", 5)  # one user per batch
    batched = evaluate_recommender(Popularity, TRAIN, TEST, k=3, latency_users=0)
    timings = ("fit_s", "recommend_many_ms_per_user")
    assert {k: v for k, v in batched.items() if k not in timings} == \
        {k: v for k, v in whole.items() if k not in timings}
    assert whole["recommend_ms_p50"] is None


def test_catalog_is_the_coverage_denominator_and_vectors_can_be_given():
    catalog = pd.DataFrame({"product_id": list("ABCDEFGH"), "title": list("abcdefgh")})
    result = evaluate_recommender("popularity", TRAIN, TEST, k=3, catalog=catalog, latency_users=0,
                                  item_vectors={p: [1.0, 0.0] for p in "ABCDE"})
    assert result["coverage@3"] == pytest.approx(4 / 8)
    assert result["diversity@3"] == pytest.approx(0.0)   # identical vectors: no diversity


def test_intra_list_diversity_of_orthogonal_and_missing_vectors():
    ids = pd.Index(["a", "b"])
    vectors = pd.DataFrame([[1.0, 0.0], [0.0, 2.0]], index=ids).to_numpy()
    assert intra_list_diversity([["a", "b"]], (ids, vectors)) == pytest.approx(1.0)
    assert intra_list_diversity([["a", "unknown"]], (ids, vectors / [[1.0], [2.0]])) == pytest.approx(1.0)
    assert intra_list_diversity([["a"]], (ids, vectors)) == 0.0


def test_an_algorithm_that_needs_a_catalog_says_so():
    class NeedsTexts(Popularity):
        name = "needs_texts"
        needs_catalog = True

    assert "needs a catalog" in cannot_run(NeedsTexts, None)
    with pytest.raises(ValueError, match="needs a catalog"):
        evaluate_recommender(NeedsTexts, TRAIN, TEST, k=3)
    with pytest.raises(KeyError, match="unknown algorithm"):
        evaluate_recommender("no_such_algorithm", TRAIN, TEST)


def test_columns_outside_the_contract_do_not_reach_fit():
    # to_interactions adds events and last_timestamp; Recommender.fit would try to sum the dates.
    extra = TRAIN.assign(events=1, last_timestamp=pd.Timestamp("2024-01-01"), note="x")
    result = evaluate_recommender("popularity", extra, TEST, k=3, latency_users=0)
    assert result["users"] == 3
