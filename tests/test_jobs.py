"""Background jobs: state in SQL, failures and dead workers marked, cancellation, locks."""

from __future__ import annotations

import subprocess
import sys
import time

from dataclasses import dataclass

import pytest

from recsys import jobs
from recsys.jobs import JobBusy, JobContext, JobResult, JobSpec, runner


@dataclass
class Double(JobSpec):
    kind = "test_ok"
    n: int = 0
    name: str | None = None  # what it works on: one job per name at a time

    def lock(self) -> str | None:
        return self.name


@dataclass
class Doubled(JobResult):
    doubled: int


@dataclass
class Nothing(JobResult):
    pass


@runner(Double, Doubled)
def _ok(context: JobContext) -> Doubled:
    context.progress(0.5, "half way")
    return Doubled(context.spec.n * 2)


@dataclass
class Boom(JobSpec):
    kind = "test_boom"


@runner(Boom, Nothing)
def _boom(context: JobContext) -> Nothing:
    raise ValueError("the data was bad")


@dataclass
class Cancel(JobSpec):
    kind = "test_cancel"


@runner(Cancel, Nothing)
def _cancellable(context: JobContext) -> Nothing:
    jobs.cancel(context.job_id, "someone", url=context.url)
    context.progress(0.1, "checking")
    return Nothing()


@dataclass
class Untyped(JobSpec):
    kind = "test_untyped"


@runner(Untyped, Nothing)
def _untyped(context: JobContext) -> dict:
    return {"a": "dict"}


def test_a_job_runs_and_stores_its_typed_result(db_url):
    job_id = jobs.submit(Double(n=21), "olga", spawn=False)
    queued = jobs.get_job(job_id)
    assert queued.status == "queued" and queued.spec == Double(n=21) and queued.result is None
    assert jobs.run_job(job_id) == "succeeded"
    job = jobs.get_job(job_id)
    assert job.result == Doubled(42) and job.progress == 1.0 and job.finished_at
    assert job.to_dict()["spec"] == {"n": 21, "name": None} and job.to_dict()["result"] == {"doubled": 42}


def test_a_stored_spec_with_an_unknown_field_is_named(db_url):
    with pytest.raises(ValueError, match=r"Double has no parameter\(s\) \['m'\]"):
        jobs.read_spec("test_ok", {"n": 1, "m": 2})
    from recsys.training.jobs import FinetuneSpec

    with pytest.raises(ValueError, match=r"FinetuneConfig has no parameter\(s\) \['steps'\]"):
        FinetuneSpec.from_dict({"source": "judgments", "config": {"steps": 3}})
    with pytest.raises(ValueError, match="unknown training data 'clicks'"):
        FinetuneSpec(source="clicks")
    with pytest.raises(LookupError, match="no runner for jobs of kind 'nope'"):
        jobs.read_spec("nope", {})


def test_a_spec_that_is_not_registered_is_refused(db_url):
    @dataclass
    class Stray(JobSpec):
        kind = "test_stray"

    with pytest.raises(LookupError, match="Stray is not the registered spec"):
        jobs.submit(Stray(), "olga", spawn=False)


def test_a_runner_that_returns_the_wrong_type_fails_its_job(db_url):
    job_id = jobs.submit(Untyped(), "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    assert "returned a dict, not a Nothing" in jobs.get_job(job_id).message


def test_a_training_result_round_trips_and_reads_earlier_versions(db_url):
    from recsys.training.jobs import TrainedModel

    result = TrainedModel(model_id=3, version=2, kind="ranker", source="judgments", pairs={"train": 40}, steps=12,
                          train_s=1.5, device="cpu", val_ndcg_before=0.4, val_ndcg_after=0.5, top_n=7,
                          full_catalog={"test": {"before": {"ndcg@10": 0.3}, "after": {"ndcg@10": 0.35}}})
    assert TrainedModel.from_dict(result.to_dict()) == result
    earlier = TrainedModel.from_dict({"model_id": 1, "version": 1, "source": "co_purchases", "pairs": {"train": 9},
                                      "steps": 4, "train_s": 2.0, "device": "cpu", "val_ndcg@10_before": 0.2,
                                      "val_ndcg@10_after": 0.25})
    assert earlier.kind == "embedding" and earlier.val_ndcg_after == 0.25
    assert earlier.headline() == {"validation": {"before": {"ndcg@10": 0.2}, "after": {"ndcg@10": 0.25}}}


def test_a_failing_job_is_marked_failed_with_the_reason(db_url):
    job_id = jobs.submit(Boom(), "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    job = jobs.get_job(job_id)
    assert job.message == "ValueError: the data was bad" and job.error == "the data was bad" and job.result is None


def test_cancel_is_seen_at_the_next_progress_report(db_url):
    job_id = jobs.submit(Cancel(), "olga", spawn=False)
    assert jobs.run_job(job_id) == "cancelled"
    queued = jobs.submit(Double(n=1), "olga", spawn=False)
    jobs.cancel(queued, "olga")
    assert jobs.get_job(queued).status == "cancelled"
    assert jobs.run_job(queued) == "cancelled"


def test_a_killed_worker_of_this_machine_fails_its_job_at_once(db_url):
    import os
    import signal

    job_id = jobs.submit(Double(n=1), "olga", spawn=False)
    # A worker that claims the job and is then killed (kill -9: no chance to say anything).
    code = ("import sys, time; from recsys import jobs; "
            f"assert jobs.claim({db_url!r}, {job_id}) == {job_id}; print('claimed', flush=True); time.sleep(60)")
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "DATABASE_URL": db_url})
    assert worker.stdout.readline().strip() == "claimed"
    assert jobs.get_job(job_id).status == "running"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert jobs.list_jobs("test_ok")[0].status == "failed"  # whoever looks marks it
    assert "stopped without finishing" in jobs.get_job(job_id).message


def test_a_job_whose_lease_ran_out_on_another_machine_is_failed(db_url):
    from datetime import timedelta

    from db.engine import session_scope
    from db.models import Job, utc_now

    job_id = jobs.submit(Double(n=1), "olga", spawn=False)
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.status, job.worker = "running", "another-host:4242"
        job.heartbeat_at, job.lease_until = utc_now() - timedelta(seconds=70), utc_now() - timedelta(seconds=10)
    assert jobs.refresh() == 1
    job = jobs.get_job(job_id)
    assert job.status == "failed" and "another-host:4242" in job.message and "lease" in job.message


@dataclass
class Sleep(JobSpec):
    kind = "test_slow"
    seconds: float = 0.0


@runner(Sleep, Nothing)
def _slow(context: JobContext) -> Nothing:
    time.sleep(context.spec.seconds)
    return Nothing()


def test_a_running_job_renews_its_lease_and_only_one_worker_claims_it(db_url, monkeypatch):
    import threading

    monkeypatch.setenv("WORKBENCH_JOB_LEASE_S", "0.4")  # a heartbeat every 0.1 s
    job_id = jobs.submit(Sleep(seconds=1.2), "olga", spawn=False)
    seen = []
    running = threading.Thread(target=lambda: seen.append(jobs.run_job(job_id)))
    running.start()
    leases = []
    for _ in range(8):
        time.sleep(0.15)
        leases.append(jobs.get_job(job_id).lease_until)
        assert jobs.refresh() == 0  # three times the lease has passed: renewed, never expired
    assert jobs.claim(db_url, job_id) is None  # a second worker does not get it
    running.join()
    assert seen == ["succeeded"] and len(set(leases)) > 3


def test_a_standing_worker_runs_what_is_queued_in_order(db_url):
    first = jobs.submit(Double(n=1), "olga", spawn=False)
    second = jobs.submit(Boom(), "olga", spawn=False)
    assert jobs.work(db_url, once=True) == 2
    assert [jobs.get_job(job_id).status for job_id in (first, second)] == ["succeeded", "failed"]
    again = jobs.retry(second, "olga", spawn=False)
    assert jobs.get_job(again).kind == "test_boom" and jobs.get_job(again).status == "queued"
    with pytest.raises(ValueError, match="is still queued"):
        jobs.retry(again, "olga", spawn=False)


def test_a_failed_training_job_leaves_no_folders(db_url, tmp_path, monkeypatch):
    from recsys.training import jobs as training_jobs
    from recsys import model_registry as registry

    monkeypatch.setattr(registry, "MODELS_DIR", tmp_path)
    job_id = jobs.submit(training_jobs.FinetuneSpec(), "olga", spawn=False)
    left = [tmp_path / "embedding" / f"job{job_id}", tmp_path / "embedding" / f"job{job_id}.partial",
            tmp_path / "embedding" / f"checkpoints-job{job_id}-x1y2"]
    kept = tmp_path / "embedding" / f"job{job_id + 1}"  # another job's
    for folder in (*left, kept):
        folder.mkdir(parents=True)
    assert sorted(training_jobs.remove_job_folders("finetune", job_id)) == sorted(left)
    assert not any(folder.exists() for folder in left) and kept.exists()


def test_one_job_per_lock(db_url):
    jobs.submit(Double(n=1, name="model-a"), "olga", spawn=False)
    with pytest.raises(JobBusy, match="still queued"):
        jobs.submit(Double(n=2, name="model-a"), "olga", spawn=False)
    jobs.submit(Double(n=3, name="model-b"), "olga", spawn=False)


def test_the_worker_process_runs_an_evaluation(db_url, catalog_file, events_file):
    """The real path: a spawned worker evaluates the active data and stores the scores."""
    from db import queries
    from db.engine import session_scope
    from recsys.data import IngestOptions, ingest_file

    ingest_file(catalog_file, IngestOptions("catalog"), actor="t")
    ingest_file(events_file, IngestOptions("events"), actor="t")
    from recsys.evaluation.jobs import EvaluateSpec, EvaluationRun
    from recsys.evaluation.splits import SplitConfig

    job_id = jobs.submit(EvaluateSpec(algorithms=["popularity", "item_knn"], k=2,
                                      split=SplitConfig(kind="stratified", test_frac=0.5)), "olga")
    job = jobs.wait(job_id, timeout_s=180)
    assert job.status == "succeeded", job.message
    assert isinstance(job.result, EvaluationRun) and job.result.skipped == {}
    assert sorted(row["algo"] for row in job.result.results) == ["item_knn", "popularity"]
    with session_scope() as session:
        stored = queries.evaluation_results(session)
    assert sorted(stored["algorithm"]) == ["item_knn", "popularity"]
    assert set(stored["run"]) == {job_id} and "ndcg@2" in stored


@dataclass
class Log(JobSpec):
    kind = "test_log"


@runner(Log, Nothing)
def _logging(context: JobContext) -> Nothing:
    context.log("loaded 3 pairs", pairs=3)
    jobs.cancel(context.job_id, "someone", url=context.url)
    context.log("step 1", step=1, loss=0.5, val_ndcg=None)  # logging does not stop a cancelled job
    return Nothing()


def test_a_job_log_keeps_messages_steps_and_metrics_in_order(db_url):
    job_id = jobs.submit(Log(), "olga", spawn=False)
    assert jobs.run_job(job_id) == "succeeded"
    logs = jobs.job_logs(job_id)
    assert [(line["message"], line["step"], line["metrics"]) for line in logs] == [
        ("loaded 3 pairs", None, {"pairs": 3}), ("step 1", 1, {"loss": 0.5, "val_ndcg": None})]
    assert logs[0]["at"] <= logs[1]["at"]
    assert jobs.job_logs(job_id + 1) == []


def test_jobs_stored_by_earlier_versions_are_listed(db_url):
    from db.engine import session_scope
    from db.models import Job
    from recsys.training.jobs import RerankerSpec

    earlier = {"source": "judgments", "start_from": "active", "min_grade": None, "_lock": "reranker",
               "config": {"max_steps": 10, "batch_size": 4}}  # what the Fine-tune page sent a reranker
    with session_scope() as session:
        session.add(Job(kind="train_reranker", params=earlier, created_by="olga", status="failed"))
    job = jobs.list_jobs("train_reranker")[0]
    assert job.spec == RerankerSpec.from_dict({"config": {"max_steps": 10, "batch_size": 4}})
