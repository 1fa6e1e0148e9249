"""Live offline metrics: re-fusing cached candidate lists as weights and rules change."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.evaluation.live import (evaluate_fusion, fuse_recommendations, fuse_search,
                                    recommendation_sample, search_sample)
from recsys.evaluation.search import evaluate_full_catalog
from recsys.evaluation.splits import SplitConfig, split_interactions
from recsys.fusion import FusionConfig
from recsys.recommenders import get as get_recommender
from recsys.search import get
from tests.recommenders.test_contract import CATALOG as SHOP, interactions
from tests.search.conftest import CATALOG

JUDGMENTS = pd.DataFrame(
    [("red mug", "P01", 3.0), ("red mug", "P02", 2.0), ("red mug", "P05", 1.0),
     ("garden chair", "P05", 3.0), ("garden chair", "P06", 2.0), ("cordless drill", "P09", 3.0),
     ("copper elbow", "P07", 3.0), ("kettle", "P04", 3.0), ("kettle", "P03", 1.0)],
    columns=["query", "product_id", "grade"])


@pytest.fixture(scope="module")
def hybrid():
    return get("hybrid")().fit(CATALOG)


def test_the_live_metrics_equal_the_full_evaluation_of_the_same_fusion(hybrid):
    sample = search_sample(hybrid, JUDGMENTS, size=200)
    assert sample.keys == sorted(JUDGMENTS["query"].unique())
    live = evaluate_fusion(sample, hybrid.fusion, fuse_search(hybrid))
    full = evaluate_full_catalog(hybrid, JUDGMENTS)
    assert live["ndcg@10"] == pytest.approx(full["ndcg@10"])
    assert 0 < live["coverage@10"] <= 1 and 0 <= live["diversity@10"] <= 2


def test_metrics_move_with_rules(hybrid):
    sample = search_sample(hybrid, JUDGMENTS)
    fuse = fuse_search(hybrid)
    # No semantic floor: the lists then hold products of other categories to move up.
    unfloored = FusionConfig(**{**hybrid.fusion.to_dict(), "min_scores": {}})
    base = evaluate_fusion(sample, unfloored, fuse)
    # burying every kitchen product pushes the perfect "red mug" and "kettle" answers down
    buried = FusionConfig(**{**unfloored.to_dict(), "rules": [
        {"kind": "bury", "field": "category", "value": "kitchen", "strength": 5.0}]})
    assert evaluate_fusion(sample, buried, fuse)["ndcg@10"] < base["ndcg@10"]


def test_the_sample_is_seeded_and_bounded(hybrid):
    first = search_sample(hybrid, JUDGMENTS, size=3, seed=1)
    assert len(first.keys) == 3 and first.keys == search_sample(hybrid, JUDGMENTS, size=3, seed=1).keys
    with pytest.raises(ValueError, match="no judged query has a product graded above the lowest"):
        search_sample(hybrid, JUDGMENTS.assign(grade=1.0))


def test_recommendation_metrics_on_a_temporal_split():
    train, test = split_interactions(interactions(), SplitConfig(kind="temporal"))
    hybrid = get_recommender("hybrid")().fit(train, SHOP)
    sample = recommendation_sample(hybrid, test, size=50)
    assert set(sample.keys) == set(test["user_id"])
    result = evaluate_fusion(sample, hybrid.fusion, fuse_recommendations(hybrid))
    assert set(result) == {"ndcg@10", "recall@100", "coverage@10", "diversity@10"}
    ease_only = evaluate_fusion(sample, FusionConfig(weights={"ease": 1.0, "semantic": 0.0}),
                                fuse_recommendations(hybrid))
    assert ease_only["coverage@10"] <= 1.0


def test_excluded_queries_are_never_sampled(hybrid):
    queries = sorted(JUDGMENTS["query"].unique())
    kept = search_sample(hybrid, JUDGMENTS, exclude=frozenset(queries[:2])).keys
    assert kept == queries[2:]
    with pytest.raises(ValueError, match="are ones an active model was trained on"):
        search_sample(hybrid, JUDGMENTS, exclude=frozenset(queries))
