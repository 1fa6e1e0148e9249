"""Engines, sessions and migrations.

`DATABASE_URL` chooses the database; without it the workbench keeps a SQLite
file in the ignored folder `var/`. Migrations are Alembic's, applied with
`upgrade()` at every start (`python -m recsys db upgrade` does the same).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "workbench.db"


def database_url() -> str:
    """The URL in `DATABASE_URL`, or the default SQLite file under `var/`."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def busy_timeout_ms() -> int:
    """`$WORKBENCH_SQLITE_BUSY_MS` (default 30,000): how long a SQLite writer waits for the lock."""
    raw = os.environ.get("WORKBENCH_SQLITE_BUSY_MS", "").strip()
    if raw and not raw.isdigit():
        raise ValueError(f"WORKBENCH_SQLITE_BUSY_MS is a whole number of milliseconds, not {raw!r}")
    return int(raw or 30_000)


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; WAL lets the app read while an
    # upload writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # How long a writer waits for another's transaction; uploads write in bounded transactions
    # (recsys.data.ingest.transaction_bound), so none waits much longer than a second.
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    cursor.close()


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """One engine per URL for the life of the process."""
    url = url or database_url()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


@lru_cache(maxsize=8)
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session whose work is committed at the end, or rolled back on error."""
    session = _session_factory(url or database_url())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "db" / "migrations"))
    # ConfigParser treats % as interpolation; escape it for URLs with passwords.
    config.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return config


def upgrade(url: str | None = None) -> None:
    """Apply every Alembic migration that the database does not have yet."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
