"""Uploads on SQLite write in bounded transactions: other writers (request metrics, job progress,
the login audit) get in within about a second instead of waiting out the whole upload, and an
upload is still all or nothing, invisible until it is ready."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from sqlalchemy import func, select

from db import queries
from db.engine import session_scope, upgrade
from db.models import DatasetVersion, Event, Job, utc_now
from db.monitoring import insert_request_metrics
from recsys.data import IngestOptions, ingest_file
from recsys.data import ingest as ingest_module
from recsys.data.clean import CleaningConfig
from recsys.jobs import JobContext

CATALOG = "product_id,title\n" + "".join(f"P{n},Product {n}\n" for n in range(200))


def _events(rows: int) -> bytes:
    frame = pd.DataFrame({"user_id": [f"u{n % 5000}" for n in range(rows)],
                          "product_id": [f"P{n % 200}" for n in range(rows)],
                          "event_type": "view",
                          "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(range(rows), unit="s")})
    return frame.to_csv(index=False).encode()


def _ingest(data: bytes, url: str):
    return ingest_file(data, IngestOptions("events", cleaning=CleaningConfig()), actor="test",
                       filename="events.csv", url=url)


@pytest.fixture
def locked_db(tmp_path, monkeypatch, write):
    """A SQLite database whose writers give up after 1 s of waiting (not 30), with a catalog."""
    monkeypatch.setenv("WORKBENCH_SQLITE_BUSY_MS", "1000")
    url = f"sqlite:///{tmp_path / 'locks.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    upgrade(url)
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test", url=url)
    return url


def test_other_writers_get_in_while_an_upload_is_stored(locked_db, monkeypatch):
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 2_000)
    monkeypatch.setenv(ingest_module.TRANSACTION_ENV, "0.1")
    with session_scope(locked_db) as session:
        job = Job(kind="fit_engines", created_by="test", status="running")
        session.add(job)
        session.flush()
        job_id = job.id
    progress = JobContext(job_id, None, locked_db, "test")
    writes = {"metrics": lambda: _metric(locked_db),
              "job progress": lambda: progress.progress(0.5, "fitting"),
              "login audit": lambda: _audit(locked_db)}
    waits: dict[str, list[float]] = {name: [] for name in writes}
    errors: list[str] = []
    done = threading.Event()

    def keep_writing(name, write):
        while not done.is_set():
            started = time.perf_counter()
            try:
                write()
            except Exception as error:  # "database is locked" after the busy timeout
                errors.append(f"{name}: {error}")
            waits[name].append(time.perf_counter() - started)
            time.sleep(0.02)

    threads = [threading.Thread(target=keep_writing, args=item) for item in writes.items()]
    for thread in threads:
        thread.start()
    try:
        result = _ingest(_events(150_000), locked_db)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert result.ok and not errors, errors[:3]
    assert all(len(times) > 5 for times in waits.values())  # they kept writing during the upload
    with session_scope(locked_db) as session:
        assert queries.active_version(session, "events").row_count == 150_000
        assert session.scalar(select(func.count()).select_from(Event)) == 150_000


def _metric(url: str) -> None:
    with session_scope(url) as session:
        insert_request_metrics(session, [{"at": utc_now(), "endpoint": "search", "status": 200,
                                          "latency_ms": 3.0}])


def _audit(url: str) -> None:
    with session_scope(url) as session:
        queries.audit(session, "someone", "login_failed")


def test_a_staged_store_keeps_what_one_transaction_keeps(locked_db, monkeypatch):
    data = _events(5_000)
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 700)
    monkeypatch.setenv(ingest_module.TRANSACTION_ENV, "0.001")
    staged = _ingest(data, locked_db).version_ids[0]
    monkeypatch.setenv(ingest_module.TRANSACTION_ENV, "0")
    single = _ingest(data, locked_db).version_ids[0]
    with session_scope(locked_db) as session:
        frames = [queries.events_frame(session, version) for version in (staged, single)]
        users = [queries.users_frame(session, version) for version in (staged, single)]
        versions = queries.list_versions(session, "events")
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(users[0], users[1])
    assert versions["version"].tolist() == [single, staged]


def test_a_store_that_fails_half_way_leaves_nothing(locked_db, monkeypatch):
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 500)
    monkeypatch.setenv(ingest_module.TRANSACTION_ENV, "0.001")
    calls = {"n": 0}
    insert = queries.insert_rows

    def failing(session, model, rows):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("the disk is full")
        insert(session, model, rows)

    monkeypatch.setattr(queries, "insert_rows", failing)
    with pytest.raises(RuntimeError, match="disk is full"):
        _ingest(_events(5_000), locked_db)
    with session_scope(locked_db) as session:
        assert queries.active_version(session, "events") is None
        assert queries.list_versions(session, "events").empty
        assert session.scalar(select(func.count()).select_from(Event)) == 0  # 3 chunks were written


def test_a_version_being_stored_is_invisible_and_a_killed_one_is_removed(locked_db):
    with session_scope(locked_db) as session:
        version = queries.begin_version(session, kind="events", rows=1, source="e.csv", actor="test",
                                        report={}, mapping={})
        version_id = version.id
    with session_scope(locked_db) as session:
        assert version_id not in queries.list_versions(session)["version"].tolist()
        with pytest.raises(LookupError, match="still being stored"):
            queries.activate_version(session, version_id, "test")
        assert queries.remove_unfinished_versions(session, utc_now()) == [version_id]
        assert session.get(DatasetVersion, version_id) is None


def test_bad_settings_name_themselves(monkeypatch):
    from db.engine import busy_timeout_ms

    monkeypatch.setenv(ingest_module.TRANSACTION_ENV, "a second")
    with pytest.raises(ValueError, match="WORKBENCH_INGEST_TRANSACTION_S is a number of seconds"):
        ingest_module.transaction_bound("sqlite://")
    monkeypatch.setenv("WORKBENCH_SQLITE_BUSY_MS", "30s")
    with pytest.raises(ValueError, match="WORKBENCH_SQLITE_BUSY_MS is a whole number"):
        busy_timeout_ms()
