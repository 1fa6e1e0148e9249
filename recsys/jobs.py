"""Background jobs: long work run by worker processes, with its state in SQL.

A page (or the CLI) calls `submit(spec, actor)` with the typed spec of a kind of job: a `jobs`
row is written, queued. A worker claims it (`claim`: one UPDATE that only one worker can win,
on this machine or another sharing the database), runs the runner registered for its kind with
a `JobContext` (the spec, progress, log lines, cancellation) and stores its result as JSON.
While it runs, the worker renews the job's lease every `heartbeat_s()`; a job whose lease runs
out (its worker was killed, its machine went away) is marked failed by whoever looks next
(`refresh`, called by every listing), so no job stays "running" for ever, and its half-written
artifacts are removed (`cleaner`).

Workers: `python -m recsys worker` runs queued jobs as they come (what `make run` starts beside
the app and the service); `submit` also starts a worker for the one job (`python -m recsys
worker JOB_ID`) unless ``$WORKBENCH_JOB_WORKERS`` says standing workers claim them ("external").

Each kind of job is a pair of dataclasses registered with its runner: a `JobSpec` (what the job
is asked to do; pages and the CLI build it, `submit` stores it, the runner receives it as
`context.spec`; an unknown field is named in the error) and a `JobResult` (what the runner
returns; stored as JSON, read back typed by `get_job`). Runners register with
``@runner(SpecClass, ResultClass)`` in the modules listed in RUNNER_MODULES, which the worker
imports; `@cleaner("kind")` registers what removes a failed job's files.

On a Ray cluster: when the settings name one (``$RAY_ADDRESS`` or the ``ray`` setting, see
`recsys.cluster`), the worker that claimed a job runs its runner as a Ray task with the resources
the spec asks for (`JobSpec.resources`: a GPU for fine-tuning when the cluster has one), instead of
in its own process. The worker keeps the lease and watches for a cancel (the task is stopped within
about a second); the task writes progress and log lines to the same job row, and its result comes
back to the worker, which stores it. An unreachable cluster fails the job with the reason; a task
whose Ray worker or node is lost fails it, saying so (it is not retried: Retry starts it again).
With no cluster named nothing here imports Ray.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any, ClassVar, Self

from sqlalchemy import select, update

from db import queries
from db.engine import PROJECT_ROOT, database_url, session_scope
from db.models import Job, JobLog, utc_now
from recsys import cluster
from recsys.config import JsonConfig

logger = logging.getLogger(__name__)

RUNNER_MODULES = ("recsys.evaluation.jobs", "recsys.training.jobs", "recsys.engines", "recsys.erasure")
CLEANERS: dict[str, Callable[[int], None]] = {}
LOG_DIR = PROJECT_ROOT / "var" / "jobs"
ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")


class JobCancelled(Exception):
    pass


class JobBusy(RuntimeError):
    pass


def lease_s() -> float:
    """How long a claimed job is a worker's without a heartbeat (``$WORKBENCH_JOB_LEASE_S``, 60)."""
    return float(os.environ.get("WORKBENCH_JOB_LEASE_S", 60))


def heartbeat_s() -> float:
    return lease_s() / 4


@dataclass
class JobSpec(JsonConfig):
    """What a job is asked to do: one subclass per kind, with the kind's name and, where two
    jobs of the kind must not run at once, what they work on (`lock`)."""

    kind: ClassVar[str] = ""

    def lock(self) -> str | None:
        """What the job works on: a second job of its kind with the same lock is refused while
        the first is queued or running. None: any number may run."""
        return None

    def resources(self, cluster_gpus: float = 0.0) -> dict[str, float]:
        """What the job asks of a Ray cluster with `cluster_gpus` GPUs in all, as ``ray.remote``
        takes it: one CPU by default; kinds that train a model ask a GPU (`gpu_resources`)."""
        return {"num_cpus": 1, "num_gpus": 0}


def gpu_resources(device: str | None, cluster_gpus: float) -> dict[str, float]:
    """The Ray resources of a job that runs on `device` ("cuda", "cpu", or None: a GPU when
    there is one): one GPU when it wants one and the cluster has one. ValueError when it asks
    for "cuda" on a cluster without GPUs, where the task would wait for ever."""
    if device == "cuda" and cluster_gpus < 1:
        raise ValueError("the job asks for a GPU (device cuda) but the Ray cluster has none; "
                         "add a GPU worker to the cluster, or run it with device cpu or automatic")
    wants = device == "cuda" or (device is None and cluster_gpus >= 1)
    return {"num_cpus": 1, "num_gpus": 1 if wants else 0}


@dataclass
class JobResult(JsonConfig):
    """What a job of a kind returns; stored as JSON in `jobs.result`, read back by `get_job`."""


@dataclass(frozen=True)
class JobKind:
    spec: type[JobSpec]
    result: type[JobResult]
    run: Callable[[JobContext], JobResult]


RUNNERS: dict[str, JobKind] = {}
# Jobs a standing worker submits by itself when they are due: {kind: due(url) -> spec or None}.
SCHEDULES: dict[str, Callable[[str], JobSpec | None]] = {}
SCHEDULE_CHECK_S = 60.0


def scheduled(kind: str):
    """Register `due(url) -> JobSpec | None`: what a standing worker should submit now, if anything
    (it asks at its start and every `SCHEDULE_CHECK_S`)."""
    def decorate(function: Callable[[str], JobSpec | None]):
        SCHEDULES[kind] = function
        return function

    return decorate


def run_schedules(url: str) -> list[int]:
    """Submit the scheduled jobs that are due (queued for a standing worker); their ids."""
    _load_runners()
    submitted = []
    for kind, due in SCHEDULES.items():
        try:
            spec = due(url)
            if spec is not None:
                submitted.append(submit(spec, "schedule", url=url, spawn=False))
        except JobBusy:
            pass
        except Exception:  # a bad setting must not stop the worker; the log says why
            logger.exception("the scheduled %s job could not be submitted", kind)
    return submitted


def runner(spec: type[JobSpec], result: type[JobResult]):
    """Register `function(context) -> result` as the runner of jobs of `spec.kind`."""
    if not spec.kind:
        raise ValueError(f"{spec.__name__} names no kind")

    def decorate(function: Callable[[JobContext], JobResult]):
        RUNNERS[spec.kind] = JobKind(spec, result, function)
        return function

    return decorate


def job_kind(kind: str) -> JobKind:
    _load_runners()
    if kind not in RUNNERS:
        raise LookupError(f"no runner for jobs of kind {kind!r}; there are {', '.join(sorted(RUNNERS))}")
    return RUNNERS[kind]


def read_spec(kind: str, params: dict) -> JobSpec:
    """The spec stored as `params` (ValueError naming a field the kind's spec does not have)."""
    return job_kind(kind).spec.from_dict({key: value for key, value in params.items() if key != "_lock"})


def cleaner(kind: str):
    """Register `function(job_id)`, which removes what a failed or killed job of `kind` left on disk."""

    def decorate(function):
        CLEANERS[kind] = function
        return function

    return decorate


def _load_runners() -> None:
    for module in RUNNER_MODULES:
        import_module(module)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class JobContext:
    job_id: int
    spec: JobSpec
    url: str
    actor: str

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress (0..1); raises JobCancelled when a cancel was requested."""
        with session_scope(self.url) as session:
            job = session.get(Job, self.job_id)
            job.progress = max(0.0, min(1.0, float(fraction)))
            if message:
                job.message = message
            cancelled = job.cancel_requested
        if cancelled:
            raise JobCancelled()

    def log(self, message: str = "", step: int | None = None, **metrics) -> None:
        """Add a line to the job's log, e.g. ``log("step 50", step=50, loss=0.41)``.

        Unlike `progress` it never raises JobCancelled, so it is safe in cleanup code.
        """
        with session_scope(self.url) as session:
            session.add(JobLog(job_id=self.job_id, step=step, message=message, metrics=metrics))


def standing_workers() -> bool:
    """Whether standing workers (`python -m recsys worker`) claim the jobs, so `submit` starts none."""
    return os.environ.get("WORKBENCH_JOB_WORKERS", "").strip().lower() == "external"


def submit(spec: JobSpec, actor: str, *, url: str | None = None, spawn: bool = True) -> int:
    """Queue the job `spec` asks for and, unless standing workers claim jobs, start a worker
    for it; returns its id. JobBusy while a job of its kind with its `lock()` is queued or running.
    """
    if type(spec).kind not in RUNNERS or RUNNERS[type(spec).kind].spec is not type(spec):
        raise LookupError(f"{type(spec).__name__} is not the registered spec of any kind of job")
    kind, params, lock = spec.kind, spec.to_dict(), spec.lock()
    url = url or database_url()
    refresh(url)
    with session_scope(url) as session:
        if lock is not None:
            for other in session.scalars(select(Job).where(Job.kind == kind, Job.status.in_(ACTIVE))):
                if other.params.get("_lock") == lock:
                    raise JobBusy(f"job {other.id} ({kind} of {lock}) is still {other.status}; "
                                  "wait for it or cancel it")
        job = Job(kind=kind, params={**params, "_lock": lock}, created_by=actor, status="queued")
        session.add(job)
        session.flush()
        job_id = job.id
        queries.audit(session, actor, "job_submit", f"{kind} job {job_id}", params=params)
    if spawn and not standing_workers():
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / f"job-{job_id}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "recsys", "worker", str(job_id)], cwd=PROJECT_ROOT,
            env={**os.environ, "DATABASE_URL": url}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        with session_scope(url) as session:
            session.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(pid=process.pid))
    return job_id


def claim(url: str, job_id: int | None = None, kinds: tuple[str, ...] | None = None) -> int | None:
    """Take a queued job (`job_id`, or the oldest of `kinds`, default any) for this process;
    its id, or None when there is none or another worker took it first."""
    with session_scope(url) as session:
        if job_id is None:
            query = select(Job.id).where(Job.status == "queued").order_by(Job.id).limit(1)
            if kinds:
                query = query.where(Job.kind.in_(kinds))
            job_id = session.scalar(query)
            if job_id is None:
                return None
        now = utc_now()
        won = session.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(
            status="running", started_at=now, worker=worker_name(), pid=os.getpid(), heartbeat_at=now,
            lease_until=now + timedelta(seconds=lease_s()))).rowcount
    return job_id if won else None


class _Heartbeat:
    """Renews a running job's lease until stopped."""

    def __init__(self, job_id: int, url: str):
        self.job_id, self.url = job_id, url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(heartbeat_s()):
            try:
                with session_scope(self.url) as session:
                    now = utc_now()
                    session.execute(update(Job).where(Job.id == self.job_id, Job.status == "running").values(
                        heartbeat_at=now, lease_until=now + timedelta(seconds=lease_s())))
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease allows several
                traceback.print_exc()


def run_job(job_id: int, url: str | None = None) -> str:
    """Claim job `job_id` and run it in this process; returns its final status (or the status it
    has when another worker claimed it, or it is no longer queued)."""
    url = url or database_url()
    _load_runners()
    if claim(url, job_id) is None:
        return get_job(job_id, url=url).status
    return _run_claimed(job_id, url)


def _run_claimed(job_id: int, url: str) -> str:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        kind, params, actor = job.kind, dict(job.params), job.created_by
    with _Heartbeat(job_id, url):
        try:
            registered = job_kind(kind)
            spec = read_spec(kind, params)
            context, address = JobContext(job_id, spec, url, actor), cluster.ray_address(url)
            if address is None:
                result, status, message = _execute(registered, context)
            else:
                result, status, message = _run_on_ray(address, registered, context)
        except Exception as error:  # the job fails; the worker reports why
            traceback.print_exc()
            result, status, message = {"error": str(error)}, "failed", f"{type(error).__name__}: {error}"
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        job.status, job.result, job.message, job.finished_at = status, result, message, utc_now()
        job.lease_until = None
        if status == "succeeded":
            job.progress = 1.0
    if status != "succeeded":
        _clean(kind, job_id)
    return status


def _execute(registered: JobKind, context: JobContext) -> tuple[dict, str, str]:
    """Run `context`'s job here: (result as a dict, status, message)."""
    try:
        outcome = registered.run(context)
        if not isinstance(outcome, registered.result):
            raise TypeError(f"the runner of {registered.spec.kind} jobs returned a {type(outcome).__name__}, "
                            f"not a {registered.result.__name__}")
        return outcome.to_dict(), "succeeded", "done"
    except JobCancelled:
        return {}, "cancelled", "cancelled"
    except Exception as error:  # the job fails; the worker reports why
        traceback.print_exc()
        return {"error": str(error)}, "failed", f"{type(error).__name__}: {error}"


def _execute_on_node(registered: JobKind, context: JobContext) -> tuple[dict, str, str]:
    """What a Ray task runs: the job, on whichever node Ray chose, after a log line naming it."""
    import ray

    runtime = ray.get_runtime_context()
    gpus = runtime.get_accelerator_ids().get("GPU") or []
    context.log(f"running on the Ray cluster: node {socket.gethostname()} ({runtime.get_node_id()[:12]}), "
                f"{'GPU ' + ', '.join(map(str, gpus)) if gpus else 'no GPU'}")
    return _execute(registered, context)


# Ray's errors for a task whose process or machine went away (killed, out of memory, node lost).
LOST_WORKER_ERRORS = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "OutOfMemoryError",
                      "ObjectLostError", "OwnerDiedError", "RaySystemError")
CANCEL_POLL_S = 1.0


def _run_on_ray(address: str, registered: JobKind, context: JobContext) -> tuple[dict, str, str]:
    """Run the job as a Ray task on the cluster at `address` and wait for it here, stopping it
    when a cancel is requested: (result as a dict, status, message), as `_execute` gives them.

    ClusterUnavailable (with the reason) when the cluster cannot be reached; ValueError when the
    job asks for what the cluster lacks, or the cluster cannot reach this machine's SQLite file.
    """
    _check_database_reachable(address, context.url)
    cluster.connect(address)
    import ray

    resources = context.spec.resources(float(ray.cluster_resources().get("GPU", 0)))
    # This process's settings as they are now (they may have changed since Ray was joined).
    environment = {"env_vars": cluster.runtime_env()["env_vars"]}
    task = ray.remote(max_retries=0, runtime_env=environment, **resources)(_execute_on_node)
    reference = task.remote(registered, context)
    gpus = resources.get("num_gpus", 0)
    asked = f"{resources.get('num_cpus', 1):g} CPU and {f'{gpus:g} GPU' if gpus else 'no GPU'}"
    context.log(f"submitted to the Ray cluster at {address}, asking for {asked}")
    cancelled = False
    while not ray.wait([reference], timeout=CANCEL_POLL_S)[0]:
        if not cancelled and _cancel_requested(context):
            ray.cancel(reference, force=True)
            cancelled = True
    try:
        return ray.get(reference)
    except ray.exceptions.TaskCancelledError:
        return {}, "cancelled", "cancelled (the Ray task was stopped)"
    except ray.exceptions.RayError as error:
        if cancelled:
            return {}, "cancelled", "cancelled (the Ray task was stopped)"
        if type(error).__name__ not in LOST_WORKER_ERRORS:
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        message = (f"the Ray worker running the job was lost ({type(error).__name__}: {reason}); the job was "
                   "not retried: retry it from the Jobs page once the cluster is sound")
        return {"error": message}, "failed", message


def _cancel_requested(context: JobContext) -> bool:
    with session_scope(context.url) as session:
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == context.job_id)))


def _check_database_reachable(address: str, url: str) -> None:
    """A SQLite file is this machine's: a cluster whose head is on another machine cannot write
    the job's progress to it (ValueError saying what to do)."""
    head = cluster.parse_address(address)
    if not url.startswith("sqlite") or head is None:
        return
    host = head[0]
    if host in ("localhost", socket.gethostname(), socket.getfqdn()) or host.startswith("127."):
        return
    raise ValueError(f"the Ray cluster at {address} runs on other machines, which cannot reach this "
                     "machine's SQLite database; set DATABASE_URL to a PostgreSQL server they reach")


def work(url: str | None = None, *, poll_s: float = 1.0, once: bool = False,
         stop: threading.Event | None = None) -> int:
    """A standing worker: claim queued jobs one at a time and run them until stopped (`once`:
    until none is queued); returns how many it ran. It first removes what killed jobs left."""
    url = url or database_url()
    _load_runners()
    stop = stop or threading.Event()
    refresh(url)
    clean_orphans(url)
    ran = 0
    checked = None
    while not stop.is_set():
        if checked is None or time.monotonic() - checked >= SCHEDULE_CHECK_S:
            run_schedules(url)
            checked = time.monotonic()
        job_id = claim(url)
        if job_id is None:
            if once:
                break
            refresh(url)
            stop.wait(poll_s)
            continue
        _run_claimed(job_id, url)
        ran += 1
    return ran


def alive_here(pid: int | None) -> bool:
    """Whether process `pid` of this machine still runs (a zombie child has exited too)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


def _died_here(worker: str | None) -> bool:
    """Whether `worker` ("host:pid") ran on this machine and has exited."""
    host, _, pid = (worker or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not alive_here(int(pid))


def refresh(url: str | None = None) -> int:
    """Mark failed the running jobs whose lease ran out, and the queued jobs whose own worker
    (started by `submit` on this machine) died before claiming them; returns how many."""
    now = utc_now()
    failed: list[tuple[str, int]] = []
    with session_scope(url) as session:
        for job in session.scalars(select(Job).where(Job.status.in_(ACTIVE))):
            if job.status == "running" and job.lease_until is not None and job.lease_until < now:
                job.message = (f"the worker ({job.worker}) stopped renewing the job's lease at "
                               f"{job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC: it was killed, or its machine went away")
            elif job.status == "running" and _died_here(job.worker):  # no need to wait for its lease
                job.message = f"the worker ({job.worker}) stopped without finishing the job"
            elif (job.status == "queued" and job.pid is not None and not alive_here(job.pid)
                  and job.created_at < now - timedelta(seconds=lease_s())):
                job.message = f"its worker (pid {job.pid}) stopped before it started the job"
            else:
                continue
            job.status, job.finished_at, job.lease_until = "failed", now, None
            failed.append((job.kind, job.id))
    for kind, job_id in failed:
        _clean(kind, job_id)
    return len(failed)


def _clean(kind: str, job_id: int) -> None:
    if kind in CLEANERS:
        try:
            CLEANERS[kind](job_id)
        except Exception:  # noqa: BLE001 - cleaning is best effort; the job's status is what counts
            traceback.print_exc()


def clean_orphans(url: str | None = None) -> None:
    """Remove what jobs that are no longer running left on disk (`cleaner`s), e.g. after a kill."""
    _load_runners()
    with session_scope(url) as session:
        ended = session.execute(select(Job.kind, Job.id).where(Job.status.in_(("failed", "cancelled")))).all()
    for kind, job_id in ended:
        _clean(kind, job_id)


def cancel(job_id: int, actor: str, url: str | None = None) -> None:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"there is no job {job_id}")
        if job.status == "queued":
            job.status, job.finished_at, job.message = "cancelled", utc_now(), "cancelled"
        elif job.status == "running":
            job.cancel_requested = True
        queries.audit(session, actor, "job_cancel", f"{job.kind} job {job.id}")


def retry(job_id: int, actor: str, url: str | None = None, spawn: bool = True) -> int:
    """Queue a new job with the spec of job `job_id` (which must have ended)."""
    job = get_job(job_id, url=url)
    if job.status not in FINISHED:
        raise ValueError(f"job {job_id} is still {job.status}: cancel it first, or wait for it")
    return submit(job.spec, actor, url=url, spawn=spawn)


@dataclass(frozen=True)
class JobRecord:
    """A job as stored: its typed spec and, once it succeeded, its typed result."""

    id: int
    kind: str
    status: str
    spec: JobSpec
    result: JobResult | None
    error: str | None
    progress: float
    message: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    pid: int | None
    cancel_requested: bool
    lease_until: datetime | None
    heartbeat_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> Self:
        registered = job_kind(job.kind)
        stored = job.result or {}
        result = registered.result.from_dict(stored) if job.status == "succeeded" else None
        columns = {f.name for f in fields(cls)} - {"spec", "result", "error"}
        return cls(spec=read_spec(job.kind, job.params or {}), result=result,
                   error=stored.get("error") if job.status == "failed" else None,
                   **{name: getattr(job, name) for name in columns})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready but for the datetimes), the spec and result as dicts."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "spec": self.spec.to_dict(),
                "result": None if self.result is None else self.result.to_dict()}


def get_job(job_id: int, url: str | None = None) -> JobRecord:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"there is no job {job_id}")
        return JobRecord.of(job)


def job_logs(job_id: int, url: str | None = None) -> list[dict]:
    """The log of job `job_id`, oldest first: [{"at", "step", "message", "metrics"}, ...]."""
    with session_scope(url) as session:
        rows = session.execute(select(JobLog.at, JobLog.step, JobLog.message, JobLog.metrics)
                               .where(JobLog.job_id == job_id).order_by(JobLog.id)).all()
    return [{"at": at, "step": step, "message": message, "metrics": metrics}
            for at, step, message, metrics in rows]


def list_jobs(kind: str | None = None, url: str | None = None, limit: int = 50) -> list[JobRecord]:
    refresh(url)
    with session_scope(url) as session:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if kind:
            query = query.where(Job.kind == kind)
        return [JobRecord.of(job) for job in session.scalars(query)]


def wait(job_id: int, url: str | None = None, timeout_s: float = 600, poll_s: float = 0.5) -> JobRecord:
    """Job `job_id` once it has ended (TimeoutError after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        refresh(url)
        job = get_job(job_id, url=url)
        if job.status in FINISHED:
            return job
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} did not end within {timeout_s:.0f} s")
