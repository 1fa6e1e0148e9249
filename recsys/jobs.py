"""Background jobs: long work run by a worker process, with its state in SQL.

A page (or the CLI) calls `submit(kind, params, actor)`: a `jobs` row is
written and `python -m recsys worker JOB_ID` is started as a process of its own,
so the work never runs in Streamlit's script thread and survives a page
reload. The worker calls the runner registered for the job's kind with a
`JobContext`, through which it reports progress and learns of cancellation;
its result is stored as JSON. A worker that dies is noticed by its pid and its
job marked failed, so a crash never leaves a job "running" for ever.

Runners register with `@runner("kind")` in the modules listed in
RUNNER_MODULES, which the worker imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from sqlalchemy import select

from db import queries
from db.engine import PROJECT_ROOT, database_url, session_scope
from db.models import Job, JobLog, utc_now

RUNNER_MODULES = ("recsys.evaluation.jobs", "recsys.training.jobs", "recsys.engines")
RUNNERS: dict[str, Callable[[JobContext], dict]] = {}
LOG_DIR = PROJECT_ROOT / "var" / "jobs"
ACTIVE = ("queued", "running")


class JobCancelled(Exception):
    pass


class JobBusy(RuntimeError):
    pass


def runner(kind: str):
    """Register `function(context) -> result dict` as the runner of jobs of `kind`."""

    def decorate(function):
        RUNNERS[kind] = function
        return function

    return decorate


@dataclass
class JobContext:
    job_id: int
    params: dict
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


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process has exited too.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return status != "Z"
    except OSError:
        return True


def submit(kind: str, params: dict, actor: str, *, url: str | None = None, spawn: bool = True,
           lock: str | None = None) -> int:
    """Queue a job and start its worker; returns the job id.

    `lock` names what the job works on (e.g. a model); a second job with the
    same kind and lock is refused while the first is queued or running.
    """
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
    if spawn:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / f"job-{job_id}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "recsys", "worker", str(job_id)], cwd=PROJECT_ROOT,
            env={**os.environ, "DATABASE_URL": url}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        with session_scope(url) as session:
            job = session.get(Job, job_id)
            if job.status == "queued":
                job.pid = process.pid
    return job_id


def run_job(job_id: int, url: str | None = None) -> str:
    """Run one queued job in this process; returns its final status."""
    url = url or database_url()
    for module in RUNNER_MODULES:
        import_module(module)
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"there is no job {job_id}")
        if job.status != "queued":
            return job.status
        job.status, job.started_at, job.pid = "running", utc_now(), os.getpid()
        kind, params, actor = job.kind, dict(job.params), job.created_by
    context = JobContext(job_id, params, url, actor)
    try:
        if kind not in RUNNERS:
            raise LookupError(f"no runner for jobs of kind {kind!r}")
        result, status, message = RUNNERS[kind](context), "succeeded", "done"
    except JobCancelled:
        result, status, message = {}, "cancelled", "cancelled"
    except Exception as error:  # the job fails; the worker reports why
        traceback.print_exc()
        result, status, message = {"error": str(error)}, "failed", f"{type(error).__name__}: {error}"
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        job.status, job.result, job.message, job.finished_at = status, result, message, utc_now()
        if status == "succeeded":
            job.progress = 1.0
    return status


def refresh(url: str | None = None) -> int:
    """Mark jobs whose worker has died as failed; returns how many."""
    dead = 0
    with session_scope(url) as session:
        for job in session.scalars(select(Job).where(Job.status.in_(ACTIVE))):
            if job.pid is not None and not _alive(job.pid):
                job.status, job.finished_at = "failed", utc_now()
                job.message = f"the worker (pid {job.pid}) stopped without finishing the job"
                dead += 1
    return dead


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


def get_job(job_id: int, url: str | None = None) -> dict:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"there is no job {job_id}")
        return {c.name: getattr(job, c.name) for c in Job.__table__.columns}


def job_logs(job_id: int, url: str | None = None) -> list[dict]:
    """The log of job `job_id`, oldest first: [{"at", "step", "message", "metrics"}, ...]."""
    with session_scope(url) as session:
        rows = session.execute(select(JobLog.at, JobLog.step, JobLog.message, JobLog.metrics)
                               .where(JobLog.job_id == job_id).order_by(JobLog.id)).all()
    return [{"at": at, "step": step, "message": message, "metrics": metrics}
            for at, step, message, metrics in rows]


def list_jobs(kind: str | None = None, url: str | None = None, limit: int = 50) -> list[dict]:
    refresh(url)
    with session_scope(url) as session:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if kind:
            query = query.where(Job.kind == kind)
        return [{c.name: getattr(job, c.name) for c in Job.__table__.columns}
                for job in session.scalars(query)]
