"""The active state in one answer (`recsys.active.read`): data versions, presets, the embedding
model and the reranker, and the problems it names when they do not fit together."""

from __future__ import annotations

from db.engine import session_scope
from recsys import active
from recsys import model_registry as registry
from recsys.data import IngestOptions, ingest_file
from recsys.fusion import presets
from recsys.fusion.base import ACTIVE_RERANKER, FusionConfig
from recsys.fusion.defaults import SEARCH


def register(kind: str, folder, training_data: dict | None = None) -> registry.RegisteredModel:
    folder.mkdir(parents=True, exist_ok=True)
    model = registry.register_model(kind, folder, base_model="base", training_data=training_data or {},
                                    hyperparameters={}, metrics={}, actor="test")
    return registry.activate_model(model.id, "test")


def test_an_empty_database_serves_the_shipped_defaults(db_url):
    state = active.read(db_url)
    assert state.data == {} and state.versions_label == "catalog-v-.events-v-"
    assert state.presets["search"].label == "default" and state.presets["search"].version is None
    assert state.embedding == active.EmbeddingModel() and state.reranker is None
    assert state.problems == () and not state.trained_on_judgments


def test_data_versions_and_presets_are_read_as_activated(db_url, catalog_file, events_file):
    catalog = ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    ingest_file(events_file, IngestOptions("events"), actor="test")
    with session_scope(db_url) as session:
        saved = presets.save_preset(session, "search", "summer", {**SEARCH, "candidates": 50}, "test")
        presets.activate(session, saved.id, "test")
    state = active.read(db_url)
    assert state.version("catalog") == catalog.version_ids[0] and state.data["catalog"].rows == 4
    assert state.versions_label == f"catalog-v{catalog.version_ids[0]}.events-v{state.version('events')}"
    assert state.presets["search"].label == "summer v1" and state.presets["search"].config.candidates == 50
    assert state.presets["recommendations"].version is None


def test_a_model_whose_folder_is_gone_is_named_and_the_shipped_one_served(db_url, tmp_path):
    register("embedding", tmp_path / "ft", {"source": "judgments"})
    assert active.read(db_url).embedding.label == "embedding-v1"
    assert active.read(db_url).trained_on_judgments
    (tmp_path / "ft").rmdir()
    state = active.read(db_url)
    assert state.embedding.path is None and "missing its folder" in state.problems[0]


def test_the_reranker_is_told_by_what_its_folder_holds(db_url, tmp_path):
    register("reranker", tmp_path / "empty")
    state = active.read(db_url)
    assert state.reranker.kind is None and "missing from its folder" in state.problems[0]
    folder = tmp_path / "ranker"
    folder.mkdir()
    (folder / "ranker.json").write_text('{"config": {"top_n": 40}}')
    register("reranker", folder, {"engine": {"embedding_model": None}})
    state = active.read(db_url)
    assert (state.reranker.kind, state.reranker.top_n, state.reranker.learned) == ("learned ranker", 40, True)
    assert state.problems == ()  # trained over the shipped model, which is served
    follows = FusionConfig.resolve({**SEARCH, "reranker": ACTIVE_RERANKER, "rerank_top": 40})
    assert state.resolve(follows).reranker == str(folder)
    register("embedding", tmp_path / "ft")
    state = active.read(db_url)
    assert any("trained over another embedding model" in p for p in state.problems)
    assert not state.resolve(follows).reranks  # served without the ranker, not with moved scores


def test_a_preset_reranking_with_a_folder_that_is_gone_is_named(db_url, tmp_path):
    with session_scope(db_url) as session:
        saved = presets.save_preset(session, "search", "reranked",
                                    {**SEARCH, "reranker": str(tmp_path / "gone"), "rerank_top": 10}, "test")
        presets.activate(session, saved.id, "test")
    assert any("reranks with" in p and "no longer exists" in p for p in active.read(db_url).problems)


def test_a_preset_that_reranks_with_the_active_reranker_follows_its_activations(db_url, tmp_path):
    from recsys.fusion.base import ACTIVE_RERANKER
    from recsys.serving.follow import served_key

    with session_scope(db_url) as session:
        saved = presets.save_preset(session, "search", "reranked",
                                    {**SEARCH, "reranker": ACTIVE_RERANKER, "rerank_top": 10}, "test")
        presets.activate(session, saved.id, "test")
    state = active.read(db_url)  # no reranker is active: served without reranking, and said so
    search = state.presets["search"]
    assert not search.config.reranks and search.saved.reranker == ACTIVE_RERANKER
    assert any("no usable reranker is active" in p for p in state.problems)
    keys = [served_key(state)]
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "ranker.json").write_text('{"config": {"top_n": 10}}')
        register("reranker", folder, {"engine": {"embedding_model": None}})
        state = active.read(db_url)
        search = state.presets["search"]
        assert (search.config.reranker, search.config.rerank_top) == (str(folder), 10) and state.problems == ()
        assert search.saved.reranker == ACTIVE_RERANKER and search.label == "reranked v1"
        keys.append(served_key(state))
    assert len(set(keys)) == 3  # each activation is something else to serve: the service swaps
    registry.rollback_model("reranker", "test")
    assert active.read(db_url).presets["search"].config.reranker == str(tmp_path / "first")


def test_an_edited_config_is_resolved_as_served_and_a_search_refuses_an_unresolved_one(db_url, tmp_path):
    import pytest

    from recsys.fusion import FusionConfig
    from recsys.fusion.base import ACTIVE_RERANKER
    from recsys.search.rerank import load_reranker

    edited = FusionConfig.from_dict({**SEARCH, "reranker": ACTIVE_RERANKER, "rerank_top": 5})
    assert not active.read(db_url).resolve(edited).reranks  # no reranker active: no reranking
    folder = tmp_path / "ranker"
    folder.mkdir()
    (folder / "ranker.json").write_text('{"config": {"top_n": 5}}')
    register("reranker", folder, {"engine": {"embedding_model": None}})
    assert active.read(db_url).resolve(edited).reranker == str(folder)
    pinned = FusionConfig.from_dict({**SEARCH, "reranker": str(tmp_path / "pinned"), "rerank_top": 5})
    assert active.read(db_url).resolve(pinned) is pinned  # a folder named is kept
    with pytest.raises(ValueError, match="not resolved to its folder"):
        load_reranker(ACTIVE_RERANKER)
