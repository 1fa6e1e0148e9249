"""The model registry: versions per kind, one active per kind, roll-back, audit, and the engines
encoding with the active embedding model."""

from __future__ import annotations

import pytest

from db.engine import session_scope
from db.queries import audit_log
from recsys import model_registry as registry

FACTS = {"base_model": "all-MiniLM-L6-v2", "hyperparameters": {"epochs": 1, "batch_size": 32},
         "training_data": {"source": "judgments", "dataset_version_ids": {"catalog": 1, "judgments": 2},
                           "pairs": {"train": 80, "validation": 10, "test": 10}}}


def register(kind: str, folder, ndcg: float = 0.4, **extra) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"val_ndcg@10_before": 0.3, "val_ndcg@10_after": ndcg, "full_catalog": {"test": {}}}
    return registry.register_model(kind, folder, **FACTS, metrics=metrics, actor="olga", **extra)


def actions() -> list[tuple[str, str]]:
    with session_scope() as session:
        log = audit_log(session)
    return list(zip(log["action"], log["target"]))[::-1]


def test_versions_are_numbered_per_kind_and_registering_serves_nothing(db_url, tmp_path):
    first = register("embedding", tmp_path / "a", note="first try")
    second = register("embedding", tmp_path / "b")
    reranker = register("reranker", tmp_path / "r")
    assert (first.version, second.version, reranker.version) == (1, 2, 1)
    assert first.training_data == FACTS["training_data"] and first.note == "first try"
    assert first.artifact_path == str(tmp_path / "a") and not first.is_active
    assert first.activated_at is None and first.created_by == "olga"
    assert registry.active_model("embedding") is None
    assert registry.get_model(second.id).version == 2
    assert actions() == [("register model", "embedding v1"), ("register model", "embedding v2"),
                         ("register model", "reranker v1")]
    with pytest.raises(ValueError, match="unknown model kind 'ranker'; choose one of embedding, reranker"):
        register("ranker", tmp_path / "x")


def test_one_version_per_kind_is_active(db_url, tmp_path):
    first, second = register("embedding", tmp_path / "a"), register("embedding", tmp_path / "b")
    reranker = register("reranker", tmp_path / "r")
    registry.activate_model(first.id, "olga")
    registry.activate_model(reranker.id, "olga")
    active = registry.activate_model(second.id, "olga")
    assert active.is_active and active.activated_at is not None
    assert registry.active_model("embedding").id == second.id
    assert registry.active_model("reranker").id == reranker.id
    frame = registry.list_models("embedding")
    assert list(frame["version"]) == [2, 1] and list(frame["is_active"]) == [True, False]
    assert list(frame.columns) == ["id", "kind", "version", "base_model", "created_by", "created_at",
                                   "is_active", "activated_at", "job_id", "note", "val_ndcg@10_before",
                                   "val_ndcg@10_after", "artifact_path"]
    assert len(registry.list_models()) == 3
    with pytest.raises(LookupError, match="there is no model with id 99"):
        registry.activate_model(99, "olga")


def test_rollback_serves_what_was_served_before_then_the_base_model(db_url, tmp_path):
    first, second, third = (register("embedding", tmp_path / name) for name in "abc")
    registry.activate_model(first.id, "olga")
    registry.activate_model(third.id, "olga")
    # v2 was never served, so the roll-back skips it.
    assert registry.rollback_model("embedding", "olga").version == 1
    registry.use_base_model("embedding", "olga")
    assert registry.active_model("embedding") is None
    with pytest.raises(LookupError, match="no embedding model is active"):
        registry.rollback_model("embedding", "olga")
    registry.activate_model(second.id, "olga")
    registry.activate_model(first.id, "olga")
    assert registry.rollback_model("embedding", "olga").version == 2
    assert actions()[-7:] == [
        ("activate model", "embedding v1"), ("activate model", "embedding v3"),
        ("roll back model", "embedding v1"), ("use base model", "embedding base model"),
        ("activate model", "embedding v2"), ("activate model", "embedding v1"),
        ("roll back model", "embedding v2")]


def test_rolling_back_the_only_served_version_goes_back_to_the_base_model(db_url, tmp_path):
    only = register("reranker", tmp_path / "r")
    registry.activate_model(only.id, "olga")
    assert registry.rollback_model("reranker", "olga") is None
    assert registry.active_model_path("reranker") is None
    with session_scope() as session:
        entry = audit_log(session).iloc[0]
    assert (entry["action"], entry["target"]) == ("roll back model", "reranker base model")
    assert entry["details"] == {"previous": "reranker v1"}


def test_a_model_whose_folder_is_gone_is_not_activated(db_url, tmp_path):
    served, gone = register("embedding", tmp_path / "a"), register("embedding", tmp_path / "b")
    registry.activate_model(served.id, "olga")
    (tmp_path / "b").rmdir()
    before = actions()
    with pytest.raises(FileNotFoundError, match=r"embedding v2 cannot be served: its folder .*/b no longer"):
        registry.activate_model(gone.id, "olga")
    assert registry.active_model("embedding").id == served.id and actions() == before
    # Nor is a version whose folder is gone rolled back to.
    (tmp_path / "b").mkdir()
    registry.activate_model(gone.id, "olga")
    (tmp_path / "a").rmdir()
    with pytest.raises(FileNotFoundError, match="embedding v1 cannot be served"):
        registry.rollback_model("embedding", "olga")
    assert registry.active_model("embedding").id == gone.id


def test_active_model_path_and_model_dir(db_url, tmp_path):
    assert registry.active_model_path("embedding") is None
    model = register("embedding", tmp_path / "ft")
    registry.activate_model(model.id, "olga")
    assert registry.active_model_path("embedding") == str(tmp_path / "ft")
    assert registry.model_dir("embedding", 3) == registry.MODELS_DIR / "embedding" / "v3"
    assert registry.model_dir("reranker", "job12").name == "job12"


# --- the engines encode with the active embedding model --------------------------------

def test_the_serving_engine_serves_the_active_embedding_model(db_url, tmp_path, catalog_file, events_file):
    from recsys.data import IngestOptions, ingest_file
    from recsys.data.clean import CleaningConfig
    from recsys.embeddings import default_model_path
    from recsys.serving import engine

    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    ingest_file(events_file, IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    base = engine.ServingEngine.from_database(db_url)
    assert base.model_version == "hybrid+hybrid:embedding-base@catalog-v1.events-v2"
    assert base.retriever.sources[1].config.model_path is None
    # A registered model (the shipped weights under another folder: a real model, cheap to load).
    (tmp_path / "ft").symlink_to(default_model_path(), target_is_directory=True)
    registry.activate_model(register("embedding", tmp_path / "ft").id, "olga")
    served = engine.ServingEngine.from_database(db_url)
    assert served.model_version == "hybrid+hybrid:embedding-v1@catalog-v1.events-v2"
    assert served.retriever.sources[1].config.model_path == str(tmp_path / "ft")
    assert served.recommender.sources[1].config.model_path == str(tmp_path / "ft")


def test_the_hybrids_pass_the_model_path_to_their_semantic_source(tmp_path):
    from recsys import recommenders, search
    from recsys.factory import _hybrid_params

    params = _hybrid_params(None, str(tmp_path))
    assert search.get("hybrid")(**params)._source_config("semantic")["model_path"] == str(tmp_path)
    assert recommenders.get("hybrid")(**params).config.source_configs["semantic"] == {
        "model_path": str(tmp_path)}


def test_the_models_table_names_base_models_instead_of_showing_their_folders(db_url, tmp_path):
    from recsys.embeddings import default_model_path

    first = registry.register_model("embedding", tmp_path / "a", base_model=str(default_model_path()),
                                    training_data={}, hyperparameters={}, metrics={}, actor="olga")
    registry.register_model("embedding", tmp_path / "b", base_model=first.artifact_path,
                            training_data={}, hyperparameters={}, metrics={}, actor="olga")
    assert list(registry.list_models("embedding")["base_model"]) == ["embedding v1", "all-MiniLM-L6-v2 (shipped)"]
