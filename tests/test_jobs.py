"""Background jobs: state in SQL, failures and dead workers marked, cancellation, locks."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from recsys import jobs
from recsys.jobs import JobBusy, JobContext, runner


@runner("test_ok")
def _ok(context: JobContext) -> dict:
    context.progress(0.5, "half way")
    return {"doubled": context.params["n"] * 2}


@runner("test_boom")
def _boom(context: JobContext) -> dict:
    raise ValueError("the data was bad")


@runner("test_cancel")
def _cancellable(context: JobContext) -> dict:
    jobs.cancel(context.job_id, "someone", url=context.url)
    context.progress(0.1, "checking")
    return {"unreachable": True}


def test_a_job_runs_and_stores_its_result(db_url):
    job_id = jobs.submit("test_ok", {"n": 21}, "olga", spawn=False)
    assert jobs.get_job(job_id)["status"] == "queued"
    assert jobs.run_job(job_id) == "succeeded"
    job = jobs.get_job(job_id)
    assert job["result"] == {"doubled": 42} and job["progress"] == 1.0 and job["finished_at"]


def test_a_failing_job_is_marked_failed_with_the_reason(db_url):
    job_id = jobs.submit("test_boom", {}, "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    assert jobs.get_job(job_id)["message"] == "ValueError: the data was bad"


def test_cancel_is_seen_at_the_next_progress_report(db_url):
    job_id = jobs.submit("test_cancel", {}, "olga", spawn=False)
    assert jobs.run_job(job_id) == "cancelled"
    queued = jobs.submit("test_ok", {"n": 1}, "olga", spawn=False)
    jobs.cancel(queued, "olga")
    assert jobs.get_job(queued)["status"] == "cancelled"
    assert jobs.run_job(queued) == "cancelled"


def test_a_dead_worker_marks_its_job_failed(db_url):
    from db.engine import session_scope
    from db.models import Job

    job_id = jobs.submit("test_ok", {"n": 1}, "olga", spawn=False)
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.status, job.pid = "running", process.pid
    assert jobs.refresh() == 1
    job = jobs.get_job(job_id)
    assert job["status"] == "failed" and "stopped without finishing" in job["message"]


def test_one_job_per_lock(db_url):
    jobs.submit("test_ok", {"n": 1}, "olga", spawn=False, lock="model-a")
    with pytest.raises(JobBusy, match="still queued"):
        jobs.submit("test_ok", {"n": 2}, "olga", spawn=False, lock="model-a")
    jobs.submit("test_ok", {"n": 3}, "olga", spawn=False, lock="model-b")


def test_the_worker_process_runs_an_evaluation(db_url, catalog_file, events_file):
    """The real path: a spawned worker evaluates the active data and stores the scores."""
    from db import queries
    from db.engine import session_scope
    from recsys.data import IngestOptions, ingest_file

    ingest_file(catalog_file, IngestOptions("catalog"), actor="t")
    ingest_file(events_file, IngestOptions("events"), actor="t")
    job_id = jobs.submit("evaluate", {"algorithms": ["popularity", "item_knn"], "k": 2,
                                      "split": {"kind": "stratified", "test_frac": 0.5}}, "olga")
    deadline = time.time() + 180
    while jobs.get_job(job_id)["status"] in jobs.ACTIVE and time.time() < deadline:
        time.sleep(0.5)
    job = jobs.get_job(job_id)
    assert job["status"] == "succeeded", job["message"]
    with session_scope() as session:
        stored = queries.evaluation_results(session)
    assert sorted(stored["algorithm"]) == ["item_knn", "popularity"]
    assert set(stored["run"]) == {job_id} and "ndcg@2" in stored


@runner("test_log")
def _logging(context: JobContext) -> dict:
    context.log("loaded 3 pairs", pairs=3)
    jobs.cancel(context.job_id, "someone", url=context.url)
    context.log("step 1", step=1, loss=0.5, val_ndcg=None)  # logging does not stop a cancelled job
    return {}


def test_a_job_log_keeps_messages_steps_and_metrics_in_order(db_url):
    job_id = jobs.submit("test_log", {}, "olga", spawn=False)
    assert jobs.run_job(job_id) == "succeeded"
    logs = jobs.job_logs(job_id)
    assert [(line["message"], line["step"], line["metrics"]) for line in logs] == [
        ("loaded 3 pairs", None, {"pairs": 3}), ("step 1", 1, {"loss": 0.5, "val_ndcg": None})]
    assert logs[0]["at"] <= logs[1]["at"]
    assert jobs.job_logs(job_id + 1) == []
