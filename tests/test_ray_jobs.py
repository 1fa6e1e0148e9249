"""Jobs on a Ray cluster: the same result as in the worker's own process, progress and logs in the
same job row, cancel, a lost Ray worker and an unreachable cluster stated in the job's message.

The cluster is the session's local Ray with 2 CPUs (`ray_local`), named by the ``ray`` setting of
each test's database, as an operator names it on the Jobs page.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from recsys import cluster, jobs
from recsys.jobs import JobContext, JobResult, JobSpec, runner
from tests.conftest import until


@dataclass
class Nap(JobSpec):
    """Sleeps in short steps without reporting progress: only stopping its Ray task ends it early."""

    kind = "test_ray_nap"
    seconds: float = 60.0


@dataclass
class Crash(JobSpec):
    """Its process exits mid-job, as a Ray worker killed by the system or a lost node would."""

    kind = "test_ray_crash"


@dataclass
class GpuOnly(JobSpec):
    kind = "test_ray_gpu"

    def resources(self, cluster_gpus: float = 0.0) -> dict[str, float]:
        return jobs.gpu_resources("cuda", cluster_gpus)


@dataclass
class Slept(JobResult):
    seconds: float


@runner(Nap, Slept)
def _nap(context: JobContext) -> Slept:
    started = time.monotonic()
    context.progress(0.1, "napping")
    while time.monotonic() - started < context.spec.seconds:
        time.sleep(0.1)
    return Slept(time.monotonic() - started)


@runner(Crash, Slept)
def _crash(context: JobContext) -> Slept:
    context.progress(0.1, "about to be lost")
    os._exit(1)


@runner(GpuOnly, Slept)
def _gpu(context: JobContext) -> Slept:
    return Slept(0.0)


@pytest.fixture
def on_ray(ray_local, db_url, monkeypatch):
    """The test's database names the local Ray as its cluster; this module's job kinds travel to
    Ray's workers by value (they are not importable there)."""
    import ray

    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV, raising=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster.set_ray_address(ray_local, "admin", db_url)
    yield db_url
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def scores(run) -> list[dict]:
    """An evaluation's scores without its timings (fit seconds, milliseconds per user)."""
    return [{key: value for key, value in result.items() if not key.endswith("_s") and "_ms" not in key}
            for result in run.results]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request) -> str:
    """The test's database: SQLite, and PostgreSQL (what a cluster of several machines shares)."""
    return request.getfixturevalue("db_url" if request.param == "sqlite" else "pg_url")


def test_an_evaluation_on_ray_gives_the_local_result(any_url, catalog_file, events_file, ray_local,
                                                      monkeypatch):
    from recsys.data import IngestOptions, ingest_file
    from recsys.evaluation.jobs import EvaluateSpec
    from recsys.evaluation.splits import SplitConfig

    db_url = any_url
    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV, raising=False)
    ingest_file(catalog_file, IngestOptions("catalog"), actor="t")
    ingest_file(events_file, IngestOptions("events"), actor="t")
    spec = EvaluateSpec(algorithms=["popularity", "item_knn"], k=2,
                        split=SplitConfig(kind="stratified", test_frac=0.5))
    here = jobs.submit(spec, "olga", spawn=False)
    assert jobs.run_job(here) == "succeeded"
    cluster.set_ray_address(ray_local, "admin", db_url)
    there = jobs.submit(spec, "olga", spawn=False)
    assert jobs.run_job(there) == "succeeded", jobs.get_job(there).message

    local, remote = jobs.get_job(here), jobs.get_job(there)
    assert scores(remote.result) == scores(local.result) and remote.progress == 1.0
    assert remote.result.versions == local.result.versions
    assert remote.result.test_pairs == local.result.test_pairs
    assert not any("Ray" in line["message"] for line in jobs.job_logs(here))
    logs = [line["message"] for line in jobs.job_logs(there)]
    assert logs[0] == "submitted to the Ray cluster at local, asking for 1 CPU and no GPU"
    assert logs[1].startswith("running on the Ray cluster: node ") and logs[1].endswith("no GPU")
    # The task wrote the scores to the same database, under its own job.
    from db import queries
    from db.engine import session_scope

    with session_scope(db_url) as session:
        stored = queries.evaluation_results(session)
    assert sorted(stored.loc[stored["run"] == there, "algorithm"]) == ["item_knn", "popularity"]


def _run_in_thread(job_id: int) -> tuple[threading.Thread, list[str]]:
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(jobs.run_job(job_id)))
    thread.start()
    return thread, outcome


def test_a_job_on_ray_is_cancelled_from_its_row(on_ray):
    job_id = jobs.submit(Nap(seconds=60), "olga", spawn=False)
    thread, outcome = _run_in_thread(job_id)
    until(lambda: jobs.get_job(job_id).message == "napping", seconds=60)  # written by the Ray task
    started = time.monotonic()
    jobs.cancel(job_id, "olga")
    thread.join(timeout=30)
    assert outcome == ["cancelled"] and time.monotonic() - started < 30
    assert jobs.get_job(job_id).message == "cancelled (the Ray task was stopped)"


def test_a_lost_ray_worker_fails_the_job_and_says_so(on_ray):
    job_id = jobs.submit(Crash(), "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    job = jobs.get_job(job_id)
    assert job.message.startswith("the Ray worker running the job was lost (WorkerCrashedError")
    assert "not retried" in job.message and job.error == job.message


def test_a_job_asking_for_a_gpu_the_cluster_lacks_fails_with_the_reason(on_ray):
    job_id = jobs.submit(GpuOnly(), "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    assert "asks for a GPU (device cuda) but the Ray cluster has none" in jobs.get_job(job_id).message


def test_an_unreachable_cluster_fails_the_job_with_the_reason(db_url, monkeypatch):
    from recsys import model_registry
    from recsys.training.jobs import FinetuneSpec

    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV, raising=False)
    cluster.set_ray_address("127.0.0.1:9", "admin", db_url)
    job_id = jobs.submit(FinetuneSpec(), "olga", spawn=False)
    assert jobs.run_job(job_id) == "failed"
    message = jobs.get_job(job_id).message
    assert message.startswith("ClusterUnavailable: cannot reach the Ray cluster at 127.0.0.1:9")
    assert jobs.job_logs(job_id) == []  # the runner never started
    # Nothing active changed: no model registered, the shipped one still served.
    assert model_registry.list_models(url=db_url).empty
    assert model_registry.active_model("embedding", db_url) is None


def test_a_remote_cluster_cannot_use_this_machines_sqlite(db_url):
    with pytest.raises(ValueError, match="cannot reach this machine's SQLite database"):
        jobs._check_database_reachable("10.1.2.3:6379", db_url)
    jobs._check_database_reachable("127.0.0.1:6379", db_url)
    jobs._check_database_reachable("local", db_url)
    jobs._check_database_reachable("10.1.2.3:6379", "postgresql+psycopg://u@db.internal/workbench")


def test_fine_tuning_asks_for_a_gpu_when_the_cluster_has_one():
    from recsys.training.finetune import FinetuneConfig
    from recsys.training.jobs import FinetuneSpec, RankerSpec, RerankerSpec

    assert FinetuneSpec().resources(0) == {"num_cpus": 1, "num_gpus": 0}
    assert FinetuneSpec().resources(4) == {"num_cpus": 1, "num_gpus": 1}
    assert FinetuneSpec(config=FinetuneConfig(device="cpu")).resources(4)["num_gpus"] == 0
    # under Ray Train the job only drives the trainer; its workers ask for their own CPUs and GPUs
    assert FinetuneSpec(engine="ray", workers=2, use_gpu=True).resources(4) == {"num_cpus": 0, "num_gpus": 0}
    assert RerankerSpec().resources(1)["num_gpus"] == 1
    assert RankerSpec().resources(4)["num_gpus"] == 0  # LightGBM: CPU only
    with pytest.raises(ValueError, match="asks for a GPU"):
        FinetuneSpec(config=FinetuneConfig(device="cuda")).resources(0)


def test_without_a_cluster_a_job_never_imports_ray(db_url):
    code = f"""
import sys
from dataclasses import dataclass
from recsys import jobs

@dataclass
class Add(jobs.JobSpec):
    kind = "test_add"
    n: int = 0

@dataclass
class Sum(jobs.JobResult):
    total: int

jobs.runner(Add, Sum)(lambda context: Sum(context.spec.n + 1))
job_id = jobs.submit(Add(n=1), "olga", url={db_url!r}, spawn=False)
print(jobs.run_job(job_id, {db_url!r}), jobs.get_job(job_id, url={db_url!r}).result.total, "ray" in sys.modules)
"""
    environment = {key: value for key, value in os.environ.items() if key != cluster.RAY_ADDRESS_ENV}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=environment, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.stdout.split() == ["succeeded", "2", "False"], done.stderr


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from recsys.cli import main

    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_cluster_command_names_checks_and_clears_the_cluster(db_url, ray_local, monkeypatch, capsys):
    import json

    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV, raising=False)
    status, out, _ = cli(["cluster", "check"], capsys)
    assert status == 0 and json.loads(out)["address"] is None
    status, _, error = cli(["cluster", "set", "head:port"], capsys)
    assert status == 1 and "'head:port' is not a Ray address" in error
    status, out, _ = cli(["cluster", "set", "127.0.0.1:9", "--actor", "olga"], capsys)
    assert status == 0 and json.loads(out) == {"setting": "127.0.0.1:9", "in_force": "127.0.0.1:9",
                                               "from": "setting"}
    status, out, error = cli(["cluster", "check"], capsys)
    assert status == 2 and out == ""
    assert error.startswith("error: cannot reach the Ray cluster at 127.0.0.1:9")
    status, out, _ = cli(["cluster", "check", "--address", ray_local], capsys)
    assert status == 0 and json.loads(out)["cpus"] == 2 and json.loads(out)["from"] == "argument"
    monkeypatch.setenv(cluster.RAY_ADDRESS_ENV, ray_local)
    status, out, _ = cli(["cluster", "set", "--clear"], capsys)
    assert json.loads(out) == {"setting": None, "in_force": ray_local, "from": "environment",
                               "note": "$RAY_ADDRESS is set here and wins over the setting"}
    status, _, error = cli(["cluster", "set"], capsys)
    assert status == 1 and "takes an ADDRESS" in error
