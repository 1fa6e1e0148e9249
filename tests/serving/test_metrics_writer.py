"""The batched writer: never fails the caller, keeps rows while the database is down."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from db.engine import session_scope, upgrade
from db.models import RequestMetric
from recsys.serving.metrics import MetricsWriter


def row(i: int) -> dict:
    return {"at": datetime(2026, 1, 1), "request_id": f"r{i}", "endpoint": "/search", "status": 200,
            "latency_ms": 1.0, "result_count": 1}


def count(url: str) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(RequestMetric))


def test_rows_wait_while_the_database_is_down_and_are_written_later(tmp_path):
    url = f"sqlite:///{tmp_path / 'not-migrated-yet.db'}"
    writer = MetricsWriter(url, interval_s=3600)
    for i in range(10):
        writer.record(row(i))
    assert writer.flush() is False  # no table yet: the batch is kept
    assert writer.pending == 10 and writer.failed_batches == 1 and writer.dropped == 0
    upgrade(url)
    writer.close()
    assert count(url) == 10 and writer.written == 10 and writer.pending == 0


def test_when_too_many_rows_wait_the_oldest_are_dropped_and_counted(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    writer = MetricsWriter(url, interval_s=3600, max_pending=5)
    for i in range(8):
        writer.record(row(i))
    assert writer.pending == 5 and writer.dropped == 3
    assert [r["request_id"] for r in writer._queue] == ["r3", "r4", "r5", "r6", "r7"]


def test_batches_are_written_by_the_thread(db_url):
    writer = MetricsWriter(db_url, interval_s=0.05, batch_rows=4).start()
    for i in range(10):
        writer.record(row(i))
    writer.close()
    assert count(db_url) == 10 and writer.written == 10


def test_a_row_the_database_refuses_does_not_hold_back_the_others(db_url):
    from db.experiments import insert_events, live_events

    writer = MetricsWriter(db_url, interval_s=3600, insert=insert_events, what="live events", max_pending=3)
    now = datetime(2026, 1, 1)
    event = {"type": "click", "product_id": "P1", "session": "s", "at": now, "received_at": now}
    assert writer.offer([{**event, "event_id": "a"}, {**event, "event_id": "b", "type": None},
                         {**event, "event_id": "c"}])
    assert not writer.offer([{**event, "event_id": "d"}])  # full: refused whole, never dropped
    assert writer.flush() is True
    assert (writer.written, writer.refused, writer.pending, writer.dropped) == (2, 1, 0, 0)
    with session_scope(db_url) as session:
        assert live_events(session)["event_id"].tolist() == ["a", "c"]
