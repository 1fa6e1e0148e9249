"""Forgetting a customer: `python -m recsys forget --customer ID`, or the Accounts page.

Every row that names the customer is deleted: behaviour events and the customer row of every events
version, search-log rows, live events (theirs, and those of the sessions they were signed in to)
and the lists the REST service served them. What was built from those rows is marked: each dataset
version's report records the erasure (and its row count drops), each fine-tuned model trained on
such a version gets a note to train it again, and the fitted engines of those events versions are
removed, so the active ones are fitted again without the customer (a background job).

The audit log records the erasure with counts under a random erasure id, never the customer's id
(nor a hash of it, which could be traced back). What was deleted is returned as counts.

Retention (`python -m recsys retention --days N`, or `$WORKBENCH_RETENTION_DAYS` for the
command without `--days`) deletes all behaviour older than N days the same way, with the same
marks. With `$WORKBENCH_RETENTION_DAYS` set, the standing job worker (`python -m recsys worker`,
which `make run` starts) runs it as a "retention" job once a day by itself.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta

from db import erasure as store
from db import queries
from db.engine import session_scope
from db.models import utc_now
from recsys import engines, jobs
from recsys.privacy.pseudonyms import pseudonymiser


@dataclass(frozen=True)
class Erasure:
    fingerprint: str  # "erasure-<12 hex>" (random): what the records name instead of the id
    rows: dict[str, int]  # table -> rows deleted
    dataset_versions: list[int]  # versions whose rows changed (their reports say so)
    models: list[str]  # fine-tuned models that learned from them, marked
    engines_removed: list[str]  # fitted engine folders removed
    engines_job: int | None  # the job fitting the active engines again, if one was started

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def to_dict(self) -> dict:
        return {"erased": self.fingerprint, "rows": self.rows, "total_rows": self.total,
                "dataset_versions": self.dataset_versions, "models_marked": self.models,
                "engines_removed": len(self.engines_removed), "engines_job": self.engines_job}


def erasure_id() -> str:
    """What the records say instead of the id: a random name, so it cannot be traced back to the
    customer (a hash of a five-digit customer number could be, by trying them all)."""
    return "erasure-" + secrets.token_hex(6)


def forget(url: str, customer_id: str, actor: str, refit: bool = True) -> Erasure:
    """Erase the customer everywhere (ValueError for a blank id); the counts.

    `customer_id` is the id as the shop knows it (pseudonymised here, as every stored id is) or
    the pseudonym the workbench shows (``c-`` and 20 hex digits)."""
    if not customer_id.strip():
        raise ValueError("give the id of the customer to forget")
    customer_id = pseudonymiser().resolve(customer_id)
    mark = erasure_id()
    with session_scope(url) as session:
        erased = store.erase_customer(session, customer_id)
        versions = store.mark_versions(session, erased["dataset_versions"], mark)
        models = store.mark_models(session, set(versions), mark)
        store.note_erasure(session)
        queries.audit(session, actor, "forget_customer", mark, rows=erased["rows"], dataset_versions=versions,
                      models=models)
    removed = engines.remove_fitted_on(url, set(versions))
    job = engines.request_fit(url, actor) if refit and removed and engines.fit_on_activate() else None
    return Erasure(mark, erased["rows"], versions, models, removed, job)


def erasures(url: str | None = None) -> int:
    """How many erasures (forgotten customers, retention runs) there have been: a process that
    keeps behaviour in memory builds it again from SQL when this changes."""
    with session_scope(url) as session:
        return store.erasure_count(session)


RETENTION_ENV = "WORKBENCH_RETENTION_DAYS"


def retention_days() -> int | None:
    """`$WORKBENCH_RETENTION_DAYS`, if set (ValueError when it is not a whole number of days)."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{RETENTION_ENV} is a whole number of days, 1 or more, not {raw!r}")
    return int(raw)


def apply_retention(url: str, days: int, actor: str, refit: bool = True) -> Erasure:
    """Delete all behaviour older than `days` days, marking what was built from it; the counts."""
    if days < 1:
        raise ValueError(f"keep behaviour for 1 day or more, not {days}")
    cutoff = utc_now() - timedelta(days=days)
    why = f"retention: before {cutoff:%Y-%m-%d %H:%M}"
    with session_scope(url) as session:
        erased = store.erase_older_than(session, cutoff)
        changed = {version: rows for version, rows in erased["dataset_versions"].items() if rows}
        versions = store.mark_versions(session, changed, why)
        models = store.mark_models(session, set(versions), why)
        store.note_erasure(session)
        queries.audit(session, actor, "retention", f"{days} days", rows=erased["rows"],
                      dataset_versions=versions, models=models)
    removed = engines.remove_fitted_on(url, set(versions))
    job = engines.request_fit(url, actor) if refit and removed and engines.fit_on_activate() else None
    return Erasure(why, erased["rows"], versions, models, removed, job)


RETENTION_EVERY = timedelta(days=1)


@dataclass
class RetentionSpec(jobs.JobSpec):
    """Delete behaviour older than `days` days (the scheduled retention)."""

    kind = "retention"
    days: int = 0

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"keep behaviour for 1 day or more, not {self.days}")

    def lock(self) -> str:
        return "retention"


@dataclass
class RetentionRun(jobs.JobResult):
    erased: str
    rows: dict[str, int]
    dataset_versions: list[int]
    engines_job: int | None


@jobs.runner(RetentionSpec, RetentionRun)
def run_retention(context: jobs.JobContext) -> RetentionRun:
    context.progress(0.1, f"deleting behaviour older than {context.spec.days} days")
    done = apply_retention(context.url, context.spec.days, context.actor)
    context.log(done.fingerprint, **done.rows)
    return RetentionRun(done.fingerprint, done.rows, done.dataset_versions, done.engines_job)


@jobs.scheduled("retention")
def retention_due(url: str) -> RetentionSpec | None:
    """A retention job when `$WORKBENCH_RETENTION_DAYS` is set and none ran in the last day."""
    days = retention_days()
    if days is None:
        return None
    last = jobs.list_jobs("retention", url=url, limit=1)
    if last and last[0].created_at > utc_now() - RETENTION_EVERY:
        return None
    return RetentionSpec(days=days)
