"""The hybrid recommender: fusion of its sources, rules, explanations, persistence, --preset."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from db.engine import session_scope
from recsys.fusion import fuse
from recsys.fusion import presets as store
from recsys.recommenders import get
from recsys.recommenders.hybrid import HybridRecommender
from tests.evaluation.test_cli import recsys
from tests.recommenders.test_contract import BASKETS, CATALOG, interactions, same


@pytest.fixture(scope="module")
def hybrid() -> HybridRecommender:
    catalog = CATALOG.assign(category=["tea", "tea", "tea", "tea", "garden", "garden", "garden",
                                       "garden", "home"], price=[20, 5, 4, 6, 50, 80, 30, 12, 9])
    return get("hybrid")().fit(interactions(), catalog)


def test_scores_are_the_fusion_of_the_sources_lists(hybrid):
    ease, semantic = hybrid.sources
    assert (ease.name, semantic.name) == ("ease", "semantic")
    lists = {"ease": ease.recommend("u4", 100), "semantic": semantic.recommend("u4", 100)}
    expected = [(item.product_id, item.score) for item in fuse(lists, hybrid.fusion)][:5]
    assert same(hybrid.recommend("u4", k=5), expected)
    assert not {p for p, _ in hybrid.recommend("u4", k=5)} & set(BASKETS["u4"])


def test_a_session_history_changes_the_lists(hybrid):
    cold = [p for p, _ in hybrid.recommend(None, k=3)]
    garden = [p for p, _ in hybrid.recommend(None, k=3, history=["chair", "table"])]
    assert garden != cold and set(garden) <= {"parasol", "lantern", "mug", "teapot", "tea", "saucer", "vase"}
    assert garden[0] in {"parasol", "lantern"}


def test_weights_and_rules_come_from_the_fusion_config(hybrid):
    only_ease = hybrid.with_fusion({"weights": {"ease": 1.0, "semantic": 0.0}})
    assert [p for p, _ in only_ease.recommend("u4", 3)] == [p for p, _ in hybrid.sources[0].recommend("u4", 3)]
    pinned = hybrid.with_fusion({"rules": [{"kind": "pin", "product_id": "vase", "position": 1}]})
    assert pinned.recommend("u4", 3)[0][0] == "vase"
    filtered = hybrid.with_fusion({"rules": [{"kind": "filter", "field": "category", "value": "garden"}]})
    assert {p for p, _ in filtered.recommend("u4", 5)} <= {"chair", "table", "parasol", "lantern"}
    items = pinned.fuse_candidates(pinned.candidates(["u4"])[0], 3)
    assert items[0].effects[0].action == "pinned"


def test_explanations_name_their_source_and_history_items(hybrid):
    product = hybrid.recommend("u4", k=1)[0][0]
    reasons = hybrid.explain("u4", product)
    assert {r.text.split(":")[0] for r in reasons} == {"ease", "semantic"}
    assert any(r.product_id in BASKETS["u4"] for r in reasons)
    assert [r.weight for r in reasons] == sorted((r.weight for r in reasons), reverse=True)


def test_similar_items_fuse_both_neighbourhoods(hybrid):
    similar = [p for p, _ in hybrid.similar_items("chair", k=3)]
    assert "chair" not in similar and set(similar) & {"table", "parasol"}


def test_save_and_load_keep_sources_fusion_and_attributes(hybrid, tmp_path):
    pinned = hybrid.with_fusion({"rules": [{"kind": "boost", "field": "category", "value": "home",
                                            "strength": 5}]})
    loaded = HybridRecommender.load(pinned.save(tmp_path / "hybrid"))
    assert [s.name for s in loaded.sources] == ["ease", "semantic"]
    assert loaded.attributes["vase"]["category"] == "home"
    assert same(loaded.recommend("u1", 4), pinned.recommend("u1", 4))
    assert loaded.recommend("u1", 1)[0][0] == "vase"


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="unknown source algorithm"):
        HybridRecommender(sources=["ease", "magic"])


def test_evaluate_recs_uses_a_stored_preset(db_url, tmp_path):
    rows = interactions()
    rows.to_csv(tmp_path / "events.csv", index=False)
    CATALOG.to_csv(tmp_path / "catalog.csv", index=False)
    with session_scope(db_url) as session:
        store.save_preset(session, "recommendations", "ease only",
                          {"weights": {"ease": 1.0, "semantic": 0.0}}, "merch")
    args = ["evaluate-recs", "--interactions", str(tmp_path / "events.csv"), "--catalog",
            str(tmp_path / "catalog.csv"), "--split", "temporal", "--latency-users", "0"]
    result = recsys(*args, "--algo", "hybrid", "--preset", "ease only")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["algo"] == "hybrid" and output["config"]["fusion"]["weights"]["semantic"] == 0.0
    ease = json.loads(recsys(*args, "--algo", "ease").stdout)
    assert output["ndcg@10"] == pytest.approx(ease["ndcg@10"])
    wrong = recsys(*args, "--algo", "ease", "--preset", "ease only")
    assert wrong.returncode == 1 and "use it with --algo hybrid" in wrong.stderr
    assert pd.read_csv(tmp_path / "events.csv").shape[0] == len(rows)
