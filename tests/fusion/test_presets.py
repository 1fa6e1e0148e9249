"""Presets in SQL: versions, activation, roll-back, audit; and the CLIs' --preset."""

from __future__ import annotations

import json

import pytest

from db.engine import session_scope
from db.queries import audit_log
from recsys.fusion import FusionConfig
from recsys.fusion import presets as store
from tests.search.test_search_cli import evaluate_search, files  # noqa: F401 - fixture

BOOSTED = {"method": "rrf", "weights": {"bm25": 1.0, "semantic": 0.2}, "rrf_k": 20,
           "rules": [{"kind": "pin", "product_id": "P05", "position": 1, "when_query": "red mug"}]}


def test_saving_adds_versions_and_activation_serves_one_per_scope(db_url):
    with session_scope(db_url) as session:
        first = store.save_preset(session, "search", "Summer", BOOSTED, "merch", note="try", activate=True)
        second = store.save_preset(session, "search", "Summer", {"weights": {"bm25": 2.0}}, "merch")
        other = store.save_preset(session, "recommendations", "Summer", {}, "merch", activate=True)
    assert (first.version, second.version, other.version) == (1, 2, 1)
    with session_scope(db_url) as session:
        active = store.active_preset(session, "search")
        assert active.label == "Summer v1" and active.config.method == "rrf"
        assert active.config.rules[0]["product_id"] == "P05"
        store.activate(session, second.id, "merch")
    with session_scope(db_url) as session:
        assert store.active_preset(session, "search").version == 2
        assert store.active_preset(session, "recommendations").name == "Summer"
        rolled = store.roll_back(session, "search", "merch")
        assert rolled.version == 1
        with pytest.raises(LookupError, match="first version; there is no earlier one"):
            store.roll_back(session, "search", "merch")
        frame = store.list_presets(session, "search")
        assert list(frame["version"]) == [2, 1] and list(frame["active"]) == [False, True]
        actions = list(audit_log(session)["action"])
    assert actions.count("save preset") == 3 and "roll back preset" in actions
    assert actions.count("activate preset") == 3


def test_bad_presets_are_refused_with_the_reason(db_url):
    with session_scope(db_url) as session:
        with pytest.raises(ValueError, match="rule 2: a pin rule needs the product id"):
            store.save_preset(session, "search", "bad", {"rules": [
                {"kind": "filter", "min_price": 1}, {"kind": "pin", "position": 1}]}, "merch")
        with pytest.raises(ValueError, match="unknown preset scope 'emails'"):
            store.save_preset(session, "emails", "x", {}, "merch")
        with pytest.raises(ValueError, match="needs a name"):
            store.save_preset(session, "search", "  ", {}, "merch")
        with pytest.raises(LookupError, match="no search preset 'nope'; the search presets are: none yet"):
            store.get_preset(session, "search", "nope")
        assert store.list_presets(session, "search").empty


def test_defaults_are_created_once_and_match_the_engines(db_url):
    with session_scope(db_url) as session:
        created = store.ensure_default_presets(session)
        assert [p.scope for p in created] == ["search", "recommendations"]
        assert store.ensure_default_presets(session) == []
        active = store.active_preset(session, "search")
    assert active.name == "default" and active.config == store.default_config("search")
    assert store.default_config("search").weights == {"bm25": 0.75, "semantic": 0.25}
    assert isinstance(store.default_config("recommendations"), FusionConfig)


def test_evaluate_search_uses_a_stored_preset(db_url, files):  # noqa: F811
    with session_scope(db_url) as session:
        store.save_preset(session, "search", "pinned", BOOSTED, "merch")
    data = ["--catalog", str(files["catalog"]), "--judgments", str(files["judgments"]),
            "--latency-queries", "0"]
    args = [*data, "--method", "hybrid"]
    plain = evaluate_search(*args)
    pinned = evaluate_search(*args, "--preset", "pinned")
    assert plain.returncode == 0 and pinned.returncode == 0, pinned.stderr
    result = json.loads(pinned.stdout)
    assert result["preset"] == "pinned" and result["fusion"]["method"] == "rrf"
    # pinning a product graded 1 (gain 0) above the perfect match lowers nDCG of "red mug"
    assert result["ndcg@10"] < json.loads(plain.stdout)["ndcg@10"]
    missing = evaluate_search(*args, "--preset", "nope")
    assert missing.returncode == 1 and "no search preset 'nope'; the search presets are: pinned" in missing.stderr
    wrong = evaluate_search(*data, "--method", "bm25", "--preset", "pinned")
    assert wrong.returncode == 1 and "use it with --method hybrid" in wrong.stderr
