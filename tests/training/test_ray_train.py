"""Fine-tuning under Ray Train (a local Ray with 2 CPUs, tiny data, a few steps): one worker
trains the model the local trainer trains, two DDP workers register a model that loads and
encodes, a cancel stops the workers, and engine "ray" with no cluster named is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys import jobs
from recsys import model_registry as registry
from recsys.training.finetune import FinetuneConfig, RayScaling, finetune
from recsys.training.jobs import FinetuneSpec
from recsys.training.pairs import pairs_from_judgments
from tests.training.test_finetune import CATALOG, JUDGMENTS, TITLES, _weights
from tests.training.test_finetune_job import CONFIG, judged_shop  # noqa: F401 - a fixture

pytest.importorskip("ray")


def _config(seed: int = 1) -> FinetuneConfig:
    return FinetuneConfig(max_steps=3, batch_size=4, learning_rate=1e-4, seed=seed, eval_steps=3,
                          device="cpu")


def test_one_ray_worker_trains_the_model_the_local_trainer_trains(ray_local, tmp_path, monkeypatch):
    from recsys.embeddings import default_model_path

    # One torch thread on both sides (a Ray worker of 1 CPU has one): the same reductions.
    monkeypatch.setenv("WORKBENCH_THREADS", "1")
    pairs = pairs_from_judgments(JUDGMENTS, CATALOG, 2.5)
    local = finetune(pairs, pairs.head(4), CATALOG, _config(), tmp_path / "local")
    rows = []
    on_ray = finetune(pairs, pairs.head(4), CATALOG, _config(), tmp_path / "ray", report=rows.append,
                      scaling=RayScaling(workers=1, cpus_per_worker=1))
    assert on_ray["engine"] == "ray" and on_ray["workers"] == 1 and on_ray["steps"] == local["steps"] == 3
    assert on_ray["val_ndcg@10_after"] == pytest.approx(local["val_ndcg@10_after"], abs=1e-6)
    assert [row["loss"] for row in on_ray["loss_history"]] == pytest.approx(
        [row["loss"] for row in local["loss_history"]], rel=1e-5)
    # The rank-0 worker's log rows reached the driver's report callback.
    assert rows and rows[-1]["step"] == 3 and rows[-1]["total_steps"] == 3
    assert (tmp_path / "ray" / "workbench_training.json").exists()
    assert not (tmp_path / "ray" / "workbench_run.json").exists()
    base, here = _weights(default_model_path()), _weights(tmp_path / "local")
    there = _weights(tmp_path / "ray")
    # Same seed, same batches, same loss: the weights agree to float32 noise, while 3 steps moved
    # them far more than that.
    gap = max(float(np.abs(here[name] - there[name]).max()) for name in here)
    moved = max(float(np.abs(here[name] - base[name]).max()) for name in here)
    assert gap <= 1e-5 and moved > 100 * max(gap, 1e-6)
    from sentence_transformers import SentenceTransformer

    titles = TITLES[:4]
    local_vectors = SentenceTransformer(str(tmp_path / "local"), device="cpu").encode(titles)
    ray_vectors = SentenceTransformer(str(tmp_path / "ray"), device="cpu").encode(titles)
    cosines = (local_vectors * ray_vectors).sum(1) / (np.linalg.norm(local_vectors, axis=1)
                                                       * np.linalg.norm(ray_vectors, axis=1))
    assert cosines.min() >= 0.99999


def test_a_stop_asked_by_the_report_callback_ends_the_workers_and_leaves_no_model(ray_local, tmp_path):
    class Stop(Exception):
        pass

    def report(row):
        raise Stop("cancelled")

    pairs = pairs_from_judgments(JUDGMENTS, CATALOG, 2.5)
    # A log row (and a validation) every 2 steps: the stop is found a log row or two after it is asked.
    config = FinetuneConfig.from_dict({**_config().to_dict(), "max_steps": 30, "eval_steps": 2})
    with pytest.raises(Stop):
        finetune(pairs, pairs.head(4), CATALOG, config, tmp_path / "stopped", report=report,
                 scaling=RayScaling(workers=1, cpus_per_worker=1))
    assert not (tmp_path / "stopped").exists() and not (tmp_path / "stopped.partial").exists()
    assert not list(tmp_path.glob("checkpoints-stopped-*"))


def test_a_two_worker_ray_finetune_job_registers_a_model_that_loads_and_encodes(
        judged_shop, ray_local, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("RAY_ADDRESS", ray_local)
    monkeypatch.setattr(registry, "model_dir", lambda kind, name: tmp_path / kind / str(name))
    spec = FinetuneSpec.from_dict({"source": "judgments", "config": CONFIG, "start_from": "shipped",
                                   "validation": 0.25, "test": 0.25, "engine": "ray", "workers": 2})
    # RAY_ADDRESS is set, so the job itself runs as a Ray task (recsys.jobs) that drives the trainer:
    # it holds no CPU, so two 1-CPU workers fit the 2 CPUs of the tests' Ray beside it
    job_id = jobs.submit(spec, "olga", spawn=False)
    assert jobs.run_job(job_id) == "succeeded", jobs.get_job(job_id).message
    result = jobs.get_job(job_id).result
    assert result.steps == 2 and result.device == "cpu x 2 workers (Ray Train)"
    model = registry.get_model(result.model_id)
    assert model.training_data["engine"] == "ray" and model.training_data["scaling"]["workers"] == 2
    assert registry.active_model("embedding") is None
    logs = jobs.job_logs(job_id)
    assert any("Ray Train worker" in row["message"] for row in logs)
    assert any(row["step"] == 2 and row["metrics"].get("loss") is not None for row in logs)
    vectors = SentenceTransformer(model.artifact_path, device="cpu").encode(["red mug", "garden hose"])
    assert vectors.shape == (2, 384) and np.isfinite(vectors).all()


def test_engine_ray_with_no_cluster_named_fails_with_the_fix(judged_shop, monkeypatch):  # noqa: F811
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    job_id = jobs.submit(FinetuneSpec.from_dict({"source": "judgments", "config": CONFIG, "engine": "ray"}),
                         "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    message = jobs.get_job(job_id).message
    assert "no Ray cluster is named" in message and "RAY_ADDRESS" in message
    assert registry.list_models("embedding").empty


def test_ray_settings_of_a_spec_are_checked():
    with pytest.raises(ValueError, match="engine is one of local, ray"):
        FinetuneSpec(engine="spark")
    with pytest.raises(ValueError, match="need engine 'ray'"):
        FinetuneSpec(workers=2)
    with pytest.raises(ValueError, match="workers must be a whole number"):
        FinetuneSpec(engine="ray", workers=0)
    with pytest.raises(ValueError, match="cpus_per_worker must be positive"):
        FinetuneSpec(engine="ray", cpus_per_worker=0)
    spec = FinetuneSpec.from_dict(FinetuneSpec(engine="ray", workers=3, use_gpu=True).to_dict())
    assert spec.scaling() == RayScaling(workers=3, use_gpu=True)


def test_cli_engine_ray_with_no_cluster_named_says_how_to_name_one(db_url, tmp_path, capsys, monkeypatch):
    from recsys.cli import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    CATALOG.to_csv(tmp_path / "catalog.csv", index=False)
    pd.DataFrame(JUDGMENTS).to_csv(tmp_path / "j.csv", index=False)
    arguments = ["finetune", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "product_id",
                 "--text-col", "title", "--judgments", str(tmp_path / "j.csv"), "--item-col", "product_id",
                 "--grade-col", "grade", "--out", str(tmp_path / "m")]
    assert main([*arguments, "--engine", "ray", "--workers", "2"]) == 1
    assert "no Ray cluster is named: set RAY_ADDRESS" in capsys.readouterr().err
    assert main([*arguments, "--workers", "2"]) == 1
    assert "add --engine ray" in capsys.readouterr().err
