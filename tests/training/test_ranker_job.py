"""The learned-ranker job: trained over the search engine as served, registered as a reranker
without being activated, and a failed run registers nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recsys import jobs
from recsys.data import IngestOptions, ingest_file
from recsys.search.ltr import META_FILE, LearnedRanker
from recsys import model_registry as registry
from recsys.training.jobs import RankerSpec, search_engine_for_training
from tests.training.test_finetune import CATALOG
from tests.training.test_finetune_job import judged_shop  # noqa: F401 (a fixture)

CONFIG = {"top_n": 6, "trees": 20, "leaves": 4, "min_child_samples": 2, "early_stopping": 10}


def test_a_ranker_job_registers_a_reranker_without_activating_it(judged_shop, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(registry, "model_dir", lambda kind, name: tmp_path / kind / str(name))
    job_id = jobs.submit(RankerSpec.from_dict({"config": CONFIG, "validation": 0.25, "test": 0.25}), "olga",
                         spawn=False)
    assert jobs.run_job(job_id) == "succeeded", jobs.get_job(job_id).message
    result = jobs.get_job(job_id).result
    assert result.kind == "ranker" and result.top_n == 6 and result.steps >= 1
    assert set(result.full_catalog) == {"validation", "test"}
    for part in result.full_catalog.values():
        assert set(part) == {"before", "after"} and set(part["after"]) == {"ndcg@10", "recall@100"}
    assert registry.active_model("reranker") is None
    model = registry.get_model(result.model_id)
    assert model.kind == "reranker" and model.job_id == job_id
    assert model.hyperparameters["top_n"] == 6
    assert model.training_data["engine"]["fusion"]["reranker"] is None
    saved = json.loads((Path(model.artifact_path) / META_FILE).read_text())
    assert saved["sources"] == ["bm25", "semantic"]
    logs = jobs.job_logs(job_id)
    assert any("trees from" in row["message"] for row in logs)
    charted = [row for row in logs if row["step"] is not None]  # what the page's chart draws
    assert charted and all(row["metrics"]["val_ndcg"] is not None for row in charted)
    assert registry.activate_model(model.id, "olga").is_active
    # What a preset that reranks with it gets: the served engine, reordered by the ranker.
    engine = search_engine_for_training(judged_shop, CATALOG)
    ranked = engine.with_fusion({**engine.fusion.to_dict(), "reranker": registry.active_model_path("reranker"),
                                 "rerank_top": 6})
    hits = ranked.search("mug", k=6, matched_only=True)
    fused = [item for item in engine.rank_candidates(["mug"], engine.candidates(["mug"]))[0].items][:6]
    ranker = LearnedRanker(registry.active_model_path("reranker"))
    scores = ranker.scores(engine.rerank_requests(["mug"], [fused], ranker.sources, ranker.depth))[0]
    assert [hit.product_id for hit in hits] == [fused[i].product_id for i in np.argsort(-scores, kind="stable")]
    assert all(hit.sources["rerank"].by == "learned ranker" for hit in hits)


def test_a_ranker_job_without_judgments_fails_and_registers_nothing(db_url, write, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "model_dir", lambda kind, name: tmp_path / kind / str(name))
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    job_id = jobs.submit(RankerSpec.from_dict({"config": CONFIG}), "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    assert "judgments" in jobs.get_job(job_id).message
    assert registry.list_models("reranker").empty
    assert not (tmp_path / "reranker").exists() or not any((tmp_path / "reranker").iterdir())
