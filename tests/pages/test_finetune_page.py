"""pages/finetune.py: start a fine-tune, watch it, see before/after, activate and roll back."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from recsys import jobs
from recsys.accounts import create_account
from recsys.data import IngestOptions, ingest_file
from recsys.engines import fit_active
from recsys import model_registry as registry
from tests.pages.conftest import PASSWORD, app_as
from tests.training.test_finetune import CATALOG, JUDGMENTS, QUERIES


@pytest.fixture
def judged_shop(db_url, write):
    """A catalog of 12 products, 48 judgments, an operator, a merchandiser and a viewer."""
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    judgments = pd.concat([JUDGMENTS.assign(query=[f"{q} {n}" for q in QUERIES]) for n in range(4)])
    ingest_file(write("judgments.csv", judgments), IngestOptions("judgments"), actor="test")
    for role in ("operator", "merchandiser", "viewer"):
        create_account(role + "1", PASSWORD, role, actor="test")
    fit_active(db_url)
    return db_url


def _finished_job(app) -> dict:
    """The job the page said it started, once it has ended (at most 5 minutes)."""
    started = [s.value for s in app.success if s.value.startswith("Started fine-tune")]
    job_id = int(started[0].split()[2].rstrip(";"))
    deadline = time.time() + 300
    while jobs.get_job(job_id).status in jobs.ACTIVE and time.time() < deadline:
        time.sleep(1)
    return jobs.get_job(job_id)


def _button(app, label):
    return next(b for b in app.button if b.label == label)


def test_viewer_sees_the_page_but_cannot_start_or_activate(judged_shop):
    app = app_as("viewer", "pages/finetune.py")
    assert not app.exception
    assert _button(app, "Start fine-tuning").disabled
    assert "shipped all-MiniLM-L6-v2" in app.caption[0].value
    assert any("No fine-tuned model yet" in info.value for info in app.info)


def test_operator_fine_tunes_compares_and_activates(judged_shop):
    app = app_as("operator", "pages/finetune.py")
    app.radio(key="ft_source").set_value("judgments")
    app.number_input(key="ft_steps").set_value(10)
    app.number_input(key="ft_batch").set_value(4)
    app.radio(key="ft_start").set_value("shipped")
    _button(app, "Start fine-tuning").click().run()
    assert not app.exception
    started = [s.value for s in app.success if s.value.startswith("Started fine-tune")]
    assert started
    job_id = int(started[0].split()[2].rstrip(";"))
    # A second fine-tune of the same model is refused while the first runs.
    _button(app, "Start fine-tuning").click().run()
    assert any("still" in warning.value for warning in app.warning)
    deadline = time.time() + 300
    while jobs.get_job(job_id).status in jobs.ACTIVE and time.time() < deadline:
        time.sleep(1)
    assert jobs.get_job(job_id).status == "succeeded", jobs.get_job(job_id).message
    assert any(row["step"] for row in jobs.job_logs(job_id))

    app.run()
    assert not app.exception
    metrics = next(d.value for d in app.dataframe if "before" in d.value.columns)
    assert set(metrics["part"]) == {"validation", "test"}
    assert set(metrics["metric"]) == {"ndcg@10", "recall@100"}
    models = next(d.value for d in app.dataframe if "version" in d.value.columns)
    assert list(models["version"]) == [1] and not models["is_active"].any()

    _button(app, "Activate").click().run()
    assert any("Activated embedding model v1" in s.value for s in app.success)
    assert registry.active_model("embedding").version == 1
    _button(app, "Roll back").click().run()
    assert registry.active_model("embedding") is None
    assert any("Rolled back to the shipped all-MiniLM-L6-v2" in s.value for s in app.success)


def test_operator_trains_a_reranker_and_merchandisers_can_turn_it_on(judged_shop):
    app = app_as("operator", "pages/finetune.py")
    app.radio(key="ft_kind").set_value("reranker")
    app.number_input(key="ft_steps").set_value(10)
    app.number_input(key="ft_batch").set_value(4)
    _button(app, "Start fine-tuning").click().run()
    job = _finished_job(app)
    assert job.kind == "train_reranker" and job.status == "succeeded", job.message

    app.run()
    assert not app.exception
    app.radio(key="ft_model_kind").set_value("reranker").run()
    _button(app, "Activate").click().run()
    assert any("Activated reranker model v1" in s.value for s in app.success)
    assert registry.active_model_path("reranker") is not None
    assert registry.active_model("embedding") is None

    fusion = app_as("merchandiser", "pages/fusion.py")
    assert not fusion.exception
    assert not fusion.checkbox(key="fusion_search_rerank").disabled


def test_operator_trains_a_learned_ranker_and_sees_search_before_and_after(judged_shop):
    app = app_as("operator", "pages/finetune.py")
    app.radio(key="ft_kind").set_value("ranker")
    _button(app, "Start fine-tuning").click().run()
    assert not app.exception
    job = _finished_job(app)
    assert job.kind == "train_ranker" and job.status == "succeeded", job.message

    app.run()
    assert not app.exception
    assert any("A learned ranker of" in caption.value and "fused top 100" in caption.value
               for caption in app.caption)
    metrics = next(d.value for d in app.dataframe if "before" in d.value.columns)
    assert set(metrics["part"]) == {"validation", "test"}
    app.radio(key="ft_model_kind").set_value("reranker").run()
    _button(app, "Activate").click().run()
    assert any("Activated reranker model v1" in s.value for s in app.success)
    assert registry.active_model("reranker").base_model.startswith("learned ranker")

    fusion = app_as("merchandiser", "pages/fusion.py")
    assert not fusion.exception
    assert any(c.value.startswith("with the active reranker, now the learned ranker v1") for c in fusion.caption)
    assert fusion.number_input(key="fusion_search_rerank_top").value == 100  # the N it was trained with


def test_run_on_a_ray_cluster_is_offered_only_when_one_is_named(judged_shop, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    app = app_as("operator", "pages/finetune.py")
    assert not app.exception
    assert not [radio for radio in app.radio if radio.key == "ft_engine"]
    assert any("set RAY_ADDRESS" in caption.value for caption in app.caption)

    # A named cluster that cannot be reached: offered, and the job fails with the reason.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    app = app_as("operator", "pages/finetune.py")
    app.radio(key="ft_source").set_value("judgments")
    app.number_input(key="ft_batch").set_value(4)
    app.radio(key="ft_engine").set_value("ray")
    app.number_input(key="ft_workers").set_value(2)
    _button(app, "Start fine-tuning").click().run()
    assert not app.exception
    job = _finished_job(app)
    assert job.spec.engine == "ray" and job.spec.workers == 2 and not job.spec.use_gpu
    assert job.status == "failed" and "cannot reach the Ray cluster at 127.0.0.1:9" in job.message
    assert registry.active_model("embedding") is None and registry.list_models("embedding").empty
