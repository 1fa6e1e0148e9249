"""Reads and writes of the workbench's tables.

Functions take a Session and leave committing to the caller's `session_scope`. An upload is
either one transaction (`store_version`) or, staged, a version row made "storing"
(`begin_version`), its rows in bounded transactions (`version_chunks`), and one short
transaction that makes it "ready" (`finish_version`); until then no query sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from db.models import (
    Account,
    AuditEntry,
    DatasetVersion,
    Event,
    Judgment,
    LoginSession,
    Product,
    SearchLog,
    Setting,
    User,
    utc_now,
)

CHUNK_ROWS = 50_000
TABLE_OF_KIND = {"catalog": Product, "events": Event, "search_log": SearchLog, "judgments": Judgment}


# --- audit -----------------------------------------------------------------

def audit(session: Session, actor: str, action: str, target: str | None = None, **details) -> None:
    session.add(AuditEntry(actor=actor, action=action, target=target, details=details))


def audit_log(session: Session, limit: int = 200) -> pd.DataFrame:
    rows = session.execute(
        select(AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.target,
               AuditEntry.details).order_by(AuditEntry.id.desc()).limit(limit)).all()
    return pd.DataFrame(rows, columns=["at", "actor", "action", "target", "details"])


# --- dataset versions --------------------------------------------------------

def _records(frame: pd.DataFrame, columns: list[str], version_id: int,
             chunk_rows: int = CHUNK_ROWS) -> Iterable[list[dict]]:
    """Rows as dicts in chunks, with pandas' missing values turned into None."""
    present = [c for c in columns if c in frame.columns]
    data = frame[present].astype(object).where(frame[present].notna(), None)
    data.insert(0, "dataset_version_id", version_id)
    for start in range(0, len(data), chunk_rows):
        yield data.iloc[start:start + chunk_rows].to_dict("records")


def _bulk_insert(session: Session, model, frame: pd.DataFrame, version_id: int) -> None:
    columns = [c.name for c in model.__table__.columns if c.name not in ("id", "dataset_version_id")]
    for chunk in _records(frame, columns, version_id):
        session.execute(insert(model), chunk)


def begin_version(session: Session, *, kind: str, rows: int, source: str, actor: str, report: dict,
                  mapping: dict, catalog_version_id: int | None = None) -> DatasetVersion:
    """A new version of `kind`, "storing": its rows come in later transactions."""
    version = DatasetVersion(kind=kind, source=source, created_by=actor, row_count=rows, report=report,
                             mapping=mapping, catalog_version_id=catalog_version_id, status="storing")
    session.add(version)
    session.flush()
    return version


def version_chunks(kind: str, frame: pd.DataFrame, users: pd.DataFrame | None, version_id: int,
                   chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[type, list[dict]]]:
    """(table, rows) to insert for a version, `chunk_rows` at a time."""
    for model, data in ((TABLE_OF_KIND[kind], frame), (User, users)):
        if data is None:
            continue
        columns = [c.name for c in model.__table__.columns if c.name not in ("id", "dataset_version_id")]
        for chunk in _records(data, columns, version_id, chunk_rows):
            yield model, chunk


def insert_rows(session: Session, model: type, rows: list[dict]) -> None:
    session.execute(insert(model), rows)


def finish_version(session: Session, version_id: int, actor: str, activate: bool) -> DatasetVersion:
    """Make a "storing" version ready (and active, when asked); audited as the upload."""
    version = session.get(DatasetVersion, version_id)
    version.status = "ready"
    audit(session, actor, "upload", f"{version.kind} v{version.id}", source=version.source,
          rows=version.row_count)
    if activate:
        activate_version(session, version.id, actor)
    return version


def remove_unfinished_versions(session: Session, before: datetime) -> list[int]:
    """Delete versions left "storing" since before `before` (an upload that was killed), with
    their rows; their ids."""
    stale = list(session.scalars(select(DatasetVersion.id).where(
        DatasetVersion.status == "storing", DatasetVersion.created_at < before)))
    for version_id in stale:
        delete_version(session, version_id)
    return stale


def store_version(
    session: Session,
    *,
    kind: str,
    frame: pd.DataFrame,
    source: str,
    actor: str,
    report: dict,
    mapping: dict,
    users: pd.DataFrame | None = None,
    catalog_version_id: int | None = None,
    activate: bool = True,
) -> DatasetVersion:
    """Store a cleaned frame as a new dataset version of `kind`."""
    version = DatasetVersion(kind=kind, source=source, created_by=actor, row_count=len(frame),
                             report=report, mapping=mapping, catalog_version_id=catalog_version_id)
    session.add(version)
    session.flush()
    _bulk_insert(session, TABLE_OF_KIND[kind], frame, version.id)
    if users is not None:
        _bulk_insert(session, User, users, version.id)
    audit(session, actor, "upload", f"{kind} v{version.id}", source=source, rows=len(frame))
    if activate:
        activate_version(session, version.id, actor)
    return version


def activate_version(session: Session, version_id: int, actor: str, action: str = "activate") -> DatasetVersion:
    version = session.get(DatasetVersion, version_id)
    if version is None or version.status != "ready":
        raise LookupError(f"there is no dataset version {version_id}"
                          + (" yet: it is still being stored" if version is not None else ""))
    session.execute(update(DatasetVersion).where(DatasetVersion.kind == version.kind)
                    .values(is_active=False))
    version.is_active = True
    version.activated_at = utc_now()
    audit(session, actor, action, f"{version.kind} v{version.id}")
    session.flush()
    return version


def rollback(session: Session, kind: str, actor: str) -> DatasetVersion:
    """Activate the newest version of `kind` older than the active one."""
    current = active_version(session, kind)
    if current is None:
        raise LookupError(f"no {kind} version is active, so there is nothing to roll back")
    previous = session.scalars(
        select(DatasetVersion).where(DatasetVersion.kind == kind, DatasetVersion.id < current.id,
                                     DatasetVersion.status == "ready")
        .order_by(DatasetVersion.id.desc()).limit(1)).first()
    if previous is None:
        raise LookupError(f"{kind} v{current.id} is the oldest version; there is nothing older")
    return activate_version(session, previous.id, actor, action="rollback")


def active_version(session: Session, kind: str) -> DatasetVersion | None:
    return session.scalars(select(DatasetVersion).where(
        DatasetVersion.kind == kind, DatasetVersion.is_active.is_(True))).first()


def list_versions(session: Session, kind: str | None = None) -> pd.DataFrame:
    query = select(DatasetVersion.id, DatasetVersion.kind, DatasetVersion.source,
                   DatasetVersion.row_count, DatasetVersion.is_active, DatasetVersion.created_by,
                   DatasetVersion.created_at, DatasetVersion.activated_at)
    query = query.where(DatasetVersion.status == "ready")
    if kind:
        query = query.where(DatasetVersion.kind == kind)
    rows = session.execute(query.order_by(DatasetVersion.id.desc())).all()
    return pd.DataFrame(rows, columns=["version", "kind", "source", "rows", "active",
                                       "created_by", "created_at", "activated_at"])


def has_data(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(DatasetVersion)
                          .where(DatasetVersion.status == "ready")) > 0


def delete_version(session: Session, version_id: int) -> None:
    for model in (Product, User, Event, SearchLog, Judgment):
        session.execute(delete(model).where(model.dataset_version_id == version_id))
    session.execute(delete(DatasetVersion).where(DatasetVersion.id == version_id))


# --- reading shop data -------------------------------------------------------

def _frame(session: Session, model, version_id: int) -> pd.DataFrame:
    columns = [c for c in model.__table__.columns if c.name not in ("id", "dataset_version_id")]
    rows = session.execute(select(*columns).where(model.dataset_version_id == version_id)
                           .order_by(model.id)).all()
    return pd.DataFrame(rows, columns=[c.name for c in columns])


def products_frame(session: Session, version_id: int) -> pd.DataFrame:
    return _frame(session, Product, version_id)


def events_frame(session: Session, version_id: int) -> pd.DataFrame:
    return _frame(session, Event, version_id)


def users_frame(session: Session, version_id: int) -> pd.DataFrame:
    return _frame(session, User, version_id)


def judgments_frame(session: Session, version_id: int) -> pd.DataFrame:
    return _frame(session, Judgment, version_id)


def search_log_frame(session: Session, version_id: int) -> pd.DataFrame:
    return _frame(session, SearchLog, version_id)


def product_ids(session: Session, version_id: int) -> set[str]:
    return set(session.scalars(select(Product.product_id).where(
        Product.dataset_version_id == version_id)))


def event_product_ids(session: Session, version_id: int) -> set[str]:
    """The products that events version `version_id` refers to."""
    return set(session.scalars(select(Event.product_id).where(Event.dataset_version_id == version_id)
                               .distinct()))


def events_per_day(session: Session, version_id: int) -> pd.DataFrame:
    day = func.date(Event.timestamp)
    rows = session.execute(select(day, Event.event_type, func.count()).where(
        Event.dataset_version_id == version_id).group_by(day, Event.event_type).order_by(day)).all()
    frame = pd.DataFrame(rows, columns=["day", "event_type", "events"])
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


def product_popularity(session: Session, events_version_id: int, catalog_version_id: int | None) -> pd.DataFrame:
    """Events and distinct users per product, most popular first, with titles."""
    query = (select(Event.product_id, func.count().label("events"),
                    func.count(func.distinct(Event.user_id)).label("users"))
             .where(Event.dataset_version_id == events_version_id)
             .group_by(Event.product_id).order_by(func.count().desc()))
    frame = pd.DataFrame(session.execute(query).all(), columns=["product_id", "events", "users"])
    if catalog_version_id is not None and len(frame):
        titles = dict(session.execute(select(Product.product_id, Product.title).where(
            Product.dataset_version_id == catalog_version_id)).all())
        frame["title"] = frame["product_id"].map(titles)
    return frame


def users_by_country(session: Session, version_id: int) -> pd.DataFrame:
    rows = session.execute(select(func.coalesce(User.country, "(unknown)"), func.count())
                           .where(User.dataset_version_id == version_id)
                           .group_by(User.country).order_by(func.count().desc())).all()
    return pd.DataFrame(rows, columns=["country", "users"])


# --- settings ----------------------------------------------------------------

def get_setting(session: Session, key: str, default: dict | None = None) -> dict | None:
    setting = session.get(Setting, key)
    return dict(setting.value) if setting else default


def set_setting(session: Session, key: str, value: dict, actor: str) -> None:
    setting = session.get(Setting, key)
    if setting is None:
        session.add(Setting(key=key, value=value, updated_by=actor, updated_at=utc_now()))
    else:
        setting.value, setting.updated_by, setting.updated_at = value, actor, utc_now()
    audit(session, actor, "setting", key, value=value)


# --- accounts ----------------------------------------------------------------

def account_by_name(session: Session, username: str) -> Account | None:
    return session.scalars(select(Account).where(Account.username == username)).first()


def account_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Account))


def list_accounts(session: Session) -> pd.DataFrame:
    rows = session.execute(select(Account.username, Account.role, Account.advertiser, Account.is_active,
                                  Account.locked_until, Account.created_at).order_by(Account.username)).all()
    return pd.DataFrame(rows, columns=["username", "role", "advertiser", "active", "locked_until", "created_at"])


def add_account(session: Session, username: str, password_hash: str, role: str,
                advertiser: str | None = None) -> Account:
    account = Account(username=username, password_hash=password_hash, role=role, advertiser=advertiser,
                      created_at=datetime.now())
    session.add(account)
    session.flush()
    return account


def add_login_session(session: Session, token_sha256: str, username: str, expires_at: datetime) -> None:
    session.add(LoginSession(token_sha256=token_sha256, username=username, expires_at=expires_at))


def login_session_account(session: Session, token_sha256: str, now: datetime) -> Account | None:
    """The account of a login session that has neither expired nor ended, or None."""
    return session.scalars(select(Account).join(LoginSession, LoginSession.username == Account.username).where(
        LoginSession.token_sha256 == token_sha256, LoginSession.ended_at.is_(None),
        LoginSession.expires_at > now)).first()


def count_login_attempt(session: Session, account_id: int, now: datetime, limit: int,
                        lock_for: timedelta) -> int | None:
    """Count one login attempt on the account in one statement; its attempts in a row so far, or
    None when it is locked (a lock that has run out is lifted first, with a fresh count). The
    attempt that reaches `limit` locks the account until `now + lock_for` unless it succeeds."""
    session.execute(update(Account).where(Account.id == account_id, Account.locked_until <= now)
                    .values(failed_logins=0, locked_until=None))
    counted = session.execute(
        update(Account).where(Account.id == account_id, Account.locked_until.is_(None),
                              Account.failed_logins < limit)
        .values(failed_logins=Account.failed_logins + 1,
                locked_until=case((Account.failed_logins + 1 >= limit, now + lock_for), else_=None))
        .returning(Account.failed_logins)).scalar()
    return counted


def end_login_sessions(session: Session, now: datetime, *, token_sha256: str | None = None,
                       username: str | None = None, keep_sha256: str | None = None) -> int:
    """End one login session (by its token's hash) or all of an account's (but `keep_sha256`'s);
    returns how many ended."""
    query = update(LoginSession).where(LoginSession.ended_at.is_(None))
    if token_sha256 is not None:
        query = query.where(LoginSession.token_sha256 == token_sha256)
    if keep_sha256 is not None:
        query = query.where(LoginSession.token_sha256 != keep_sha256)
    if username is not None:
        query = query.where(LoginSession.username == username)
    return session.execute(query.values(ended_at=now)).rowcount


# --- evaluation ----------------------------------------------------------------

def evaluation_results(session: Session, limit: int = 500) -> pd.DataFrame:
    """Stored evaluation scores, newest first, one row per algorithm and run."""
    from db.models import EvaluationResult

    rows = session.scalars(select(EvaluationResult).order_by(EvaluationResult.id.desc()).limit(limit))
    records = []
    for row in rows:
        metrics = {k: v for k, v in row.metrics.items() if isinstance(v, (int, float)) and k != "k"}
        records.append({"run": row.job_id, "algorithm": row.algorithm, "split": row.split, "k": row.k,
                        "events_version": row.events_version_id, "created_at": row.created_at,
                        "created_by": row.created_by, **metrics, "config": row.config})
    return pd.DataFrame(records)
