"""SQL of erasing one customer: every row that names them, and the marks on what was built from it.

Each function works inside the caller's session; `recsys.erasure` holds the rules.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from db.models import (DatasetVersion, Event, LiveEvent, ModelVersion, SearchLog, ServedList, Setting, User,
                       utc_now)


def _delete_counted(session: Session, model, condition, by_version: bool) -> tuple[int, dict[int, int]]:
    per_version: dict[int, int] = {}
    if by_version:
        per_version = dict(session.execute(select(model.dataset_version_id, func.count())
                                           .where(condition).group_by(model.dataset_version_id)).all())
    removed = session.execute(delete(model).where(condition)).rowcount
    return removed, per_version


def erase_customer(session: Session, customer_id: str) -> dict:
    """Delete the customer's rows everywhere; {table: rows} and {dataset_version_id: rows}."""
    sessions = [row for row in session.scalars(select(LiveEvent.session).where(
        LiveEvent.user_id == customer_id, LiveEvent.session.is_not(None)).distinct())]
    counts, versions = {}, {}
    for name, model, condition in (("events", Event, Event.user_id == customer_id),
                                   ("users", User, User.user_id == customer_id),
                                   ("search_logs", SearchLog, SearchLog.user_id == customer_id)):
        counts[name], per_version = _delete_counted(session, model, condition, by_version=True)
        for version_id, rows in per_version.items():  # a version's rows are its events or log lines
            versions[version_id] = versions.get(version_id, 0) + (0 if model is User else rows)
    # Live traffic: the customer's events, the events of the sessions they were signed in to, and
    # the lists served to them or to those sessions.
    # A session's events without a user are theirs too; another signed-in customer's are not.
    anonymous = and_(LiveEvent.session.in_(sessions), LiveEvent.user_id.is_(None))
    live = or_(LiveEvent.user_id == customer_id, anonymous) if sessions else LiveEvent.user_id == customer_id
    counts["live_events"] = session.execute(delete(LiveEvent).where(live)).rowcount
    units = [f"user:{customer_id}", *(f"session:{value}" for value in sessions)]
    counts["served_lists"] = session.execute(delete(ServedList).where(ServedList.unit.in_(units))).rowcount
    return {"rows": counts, "dataset_versions": versions}


def erase_older_than(session: Session, cutoff: datetime) -> dict:
    """Delete behaviour from before `cutoff` (events and search-log lines by their time, live events
    and served lists by when they were received); {table: rows} and {dataset_version_id: rows}."""
    counts, versions = {}, {}
    for name, model, condition in (("events", Event, Event.timestamp < cutoff),
                                   ("search_logs", SearchLog, SearchLog.timestamp < cutoff)):
        counts[name], per_version = _delete_counted(session, model, condition, by_version=True)
        for version_id, rows in per_version.items():
            versions[version_id] = versions.get(version_id, 0) + rows
    # Customers left without behaviour in a version are gone from it too.
    counts["users"] = 0
    for version_id in versions:
        remaining = select(Event.user_id).where(Event.dataset_version_id == version_id).distinct()
        counts["users"] += session.execute(delete(User).where(User.dataset_version_id == version_id,
                                                              User.user_id.not_in(remaining))).rowcount
    counts["live_events"] = session.execute(delete(LiveEvent).where(LiveEvent.received_at < cutoff)).rowcount
    counts["served_lists"] = session.execute(delete(ServedList).where(ServedList.at < cutoff)).rowcount
    return {"rows": counts, "dataset_versions": versions}


def mark_versions(session: Session, rows_by_version: dict[int, int], fingerprint: str) -> list[int]:
    """Note the erasure in each dataset version's report and row count; the ids marked.
    `fingerprint` says whose rows went ("sha256:..."), or why ("retention: before 2026-01-01")."""
    marked = []
    chosen = select(DatasetVersion).where(DatasetVersion.id.in_(list(rows_by_version)))
    for version in session.scalars(chosen):
        removed = rows_by_version[version.id]
        report = dict(version.report or {})
        report["erasures"] = [*report.get("erasures", []),
                              {"at": utc_now().isoformat(timespec="seconds"), "what": fingerprint,
                               "rows": removed}]
        version.report = report
        version.row_count = max(0, (version.row_count or 0) - removed)
        marked.append(version.id)
    return marked


def mark_models(session: Session, dataset_version_ids: set[int], fingerprint: str) -> list[str]:
    """Note on each model trained on one of these versions that it learned from erased data."""
    marked = []
    for model in session.scalars(select(ModelVersion)):
        used = (model.training_data or {}).get("dataset_version_ids") or {}
        ids = set(used.values()) if isinstance(used, dict) else set(used)
        if ids & dataset_version_ids:
            note = f"[trained on data erased {utc_now():%Y-%m-%d} ({fingerprint}): train again to forget it]"
            model.note = f"{model.note} {note}" if model.note else note
            marked.append(f"{model.kind} v{model.version}")
    return marked


ERASURES_SETTING = "erasures"


def note_erasure(session: Session) -> int:
    """Count one more erasure (a customer forgotten, a retention run): what processes holding
    behaviour in memory (the REST service's live view) watch. The new count."""
    setting = session.get(Setting, ERASURES_SETTING)
    count = (setting.value.get("count", 0) if setting else 0) + 1
    if setting is None:
        session.add(Setting(key=ERASURES_SETTING, value={"count": count}, updated_by="erasure",
                            updated_at=utc_now()))
    else:
        setting.value, setting.updated_at = {"count": count}, utc_now()
    return count


def erasure_count(session: Session) -> int:
    setting = session.get(Setting, ERASURES_SETTING)
    return setting.value.get("count", 0) if setting else 0
