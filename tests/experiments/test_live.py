"""The live view follows stored events, including ids that commit after larger ones (PostgreSQL
with several workers)."""

from __future__ import annotations

from sqlalchemy import insert

from db.engine import session_scope
from db.models import LiveEvent, utc_now
from recsys.experiments.live import EventFeed, LiveView


def _event(id_: int, product: str, session: str) -> dict:
    now = utc_now()
    return {"id": id_, "type": "click", "product_id": product, "session": session, "at": now, "received_at": now}


def test_an_id_committed_after_a_larger_one_is_still_applied(db_url):
    view = LiveView()
    feed = EventFeed(db_url, view)
    with session_scope(db_url) as session:
        session.execute(insert(LiveEvent), [_event(1, "A", "s"), _event(3, "C", "s")])  # 2 not committed yet
    assert feed.step() == 2 and feed.last_id == 3 and 2 in feed.gaps
    with session_scope(db_url) as session:
        session.execute(insert(LiveEvent), [_event(2, "B", "s")])
    feed.step()
    assert view.history("session:s") == ["A", "C", "B"] and not feed.gaps
    assert view.trending() == {"A": 1.0, "B": 1.0, "C": 1.0}
