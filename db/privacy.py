"""SQL of protecting what was stored before customer ids were pseudonymised and typed text masked
(an upgrade, run by `python -m recsys init`). Each function works inside the caller's session;
`recsys.privacy.stored` holds the rules and passes the pseudonymiser and the masker in."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from db.models import Event, Judgment, LiveEvent, SearchLog, ServedList, User

Rename = Callable[[str], str | None]  # a stored value, or None to keep it


def _rename(session: Session, model, column: str, rename: Rename,
            by_version: bool) -> tuple[int, dict[int, int]]:
    """Replace each stored value of `column` that `rename` changes; (rows, {dataset version: rows})."""
    table = model.__table__
    target = table.c[column]
    keys = [table.c.dataset_version_id, target] if by_version else [target]
    found = session.execute(select(*keys, func.count()).where(target.is_not(None)).group_by(*keys)).all()
    changes, rows, per_version = [], 0, {}
    for row in found:
        version, value, count = (row[0], row[1], row[2]) if by_version else (None, row[0], row[1])
        new = rename(value)
        if new is None or new == value:
            continue
        changes.append({"b_version": version, "b_old": value, "b_new": new})
        rows += count
        if version is not None:
            per_version[version] = per_version.get(version, 0) + count
    if changes:
        condition = target == bindparam("b_old")
        if by_version:
            condition &= table.c.dataset_version_id == bindparam("b_version")
        session.execute(update(table).where(condition).values({column: bindparam("b_new")}), changes)
    return rows, per_version


def protect_stored(session: Session, pseudonymise: Rename, mask: Rename) -> dict:
    """Pseudonymise stored customer ids and mask stored typed text that are not yet; {"rows":
    {what: rows}, "dataset_versions": {id: rows}} (`pseudonymise` and `mask` return None for a
    value that is already protected)."""
    counts, versions = {}, {}
    for name, model, column, rename, by_version in (
            ("events", Event, "user_id", pseudonymise, True),
            ("users", User, "user_id", pseudonymise, True),
            ("search_logs", SearchLog, "user_id", pseudonymise, True),
            ("search_log_queries", SearchLog, "query", mask, True),
            ("judgment_queries", Judgment, "query", mask, True),
            ("live_events", LiveEvent, "user_id", pseudonymise, False),
            ("served_list_queries", ServedList, "query", mask, False)):
        counts[name], per_version = _rename(session, model, column, rename, by_version)
        for version, rows in per_version.items():
            versions[version] = versions.get(version, 0) + rows

    def unit(value: str) -> str | None:
        if not value.startswith("user:"):
            return None
        new = pseudonymise(value.removeprefix("user:"))
        return None if new is None else f"user:{new}"

    counts["served_list_units"], _ = _rename(session, ServedList, "unit", unit, False)
    return {"rows": counts, "dataset_versions": versions}
