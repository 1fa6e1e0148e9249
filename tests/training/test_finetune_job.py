"""The fine-tune job: it registers a model without activating it, logs to SQL, and a failed,
cancelled or killed job leaves the active model as it was."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from recsys import jobs
from recsys.data import IngestOptions, ingest_file
from recsys import model_registry as registry
from recsys.training.jobs import FinetuneSpec, TrainedModel
from tests.training.test_finetune import CATALOG, JUDGMENTS, QUERIES

CONFIG = {"max_steps": 2, "batch_size": 4, "eval_steps": 2, "device": "cpu", "validation_corpus": 20}


@pytest.fixture
def judged_shop(db_url, write):
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    judgments = pd.concat([JUDGMENTS.assign(query=[f"{q} {n}" for q in QUERIES]) for n in range(4)])
    ingest_file(write("judgments.csv", judgments), IngestOptions("judgments"), actor="test")
    return db_url


def _previous_model(url, tmp_path) -> registry.RegisteredModel:
    """A registered, active model (a copy of nothing: only its folder must exist)."""
    folder = tmp_path / "previous"
    folder.mkdir()
    model = registry.register_model("embedding", str(folder), base_model="base", training_data={},
                                    hyperparameters={}, metrics={}, actor="test", url=url)
    return registry.activate_model(model.id, "test", url=url)


def test_a_finetune_job_registers_its_model_without_activating_it(judged_shop, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "model_dir", lambda kind, name: tmp_path / kind / str(name))
    job_id = jobs.submit(FinetuneSpec.from_dict({"source": "judgments", "config": CONFIG, "start_from": "shipped",
                                                 "validation": 0.25, "test": 0.25}), "olga", spawn=False)
    assert jobs.run_job(job_id) == "succeeded", jobs.get_job(job_id).message
    result = jobs.get_job(job_id).result
    assert isinstance(result, TrainedModel) and result.kind == "embedding"
    assert result.steps == 2 and result.pairs["train"] > 0
    assert set(result.full_catalog) == {"validation", "test"}
    assert set(result.full_catalog["test"]) == {"before", "after"}
    assert registry.active_model("embedding") is None
    model = registry.get_model(result.model_id)
    assert model.job_id == job_id and model.training_data["source"] == "judgments"
    assert model.hyperparameters["max_steps"] == 2 and os.path.isdir(model.artifact_path)
    logs = jobs.job_logs(job_id)
    assert logs[0]["message"].endswith("test") and any(row["step"] == 2 for row in logs)
    assert registry.activate_model(model.id, "olga").is_active
    assert registry.active_model_path("embedding") == model.artifact_path


def test_a_failing_finetune_leaves_the_active_model_untouched(judged_shop, tmp_path):
    active = _previous_model(judged_shop, tmp_path)
    job_id = jobs.submit(FinetuneSpec.from_dict({"source": "judgments", "min_grade": 10, "config": CONFIG}),
                         "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    assert "no training pairs" in jobs.get_job(job_id).message
    assert registry.active_model("embedding").id == active.id
    assert len(registry.list_models("embedding")) == 1


def test_a_cancelled_finetune_registers_nothing(judged_shop, tmp_path, monkeypatch):
    active = _previous_model(judged_shop, tmp_path)
    monkeypatch.setattr(registry, "model_dir", lambda kind, name: tmp_path / kind / str(name))
    job_id = jobs.submit(FinetuneSpec.from_dict({"source": "judgments", "config": CONFIG, "start_from": "shipped"}),
                         "olga", spawn=False)
    original = jobs.JobContext.progress

    def cancel_when_training(self, fraction, message=""):
        if message.startswith("step"):
            jobs.cancel(self.job_id, "olga")
        return original(self, fraction, message)

    monkeypatch.setattr(jobs.JobContext, "progress", cancel_when_training)
    assert jobs.run_job(job_id) == "cancelled"
    assert registry.active_model("embedding").id == active.id
    assert len(registry.list_models("embedding")) == 1


def test_a_killed_worker_is_marked_failed_and_nothing_changes(judged_shop, tmp_path):
    active = _previous_model(judged_shop, tmp_path)
    job_id = jobs.submit(FinetuneSpec.from_dict({"source": "judgments", "config": CONFIG}), "olga", spawn=False)
    with pytest.raises(jobs.JobBusy):
        jobs.submit(FinetuneSpec(source="judgments"), "ivan", spawn=False)
    from db.engine import session_scope
    from db.models import Job

    import socket

    with session_scope() as session:
        job = session.get(Job, job_id)
        job.status, job.worker = "running", f"{socket.gethostname()}:{2**22 + 12345}"  # no such process
    assert jobs.refresh() == 1
    assert jobs.get_job(job_id).status == "failed"
    assert registry.active_model("embedding").id == active.id
