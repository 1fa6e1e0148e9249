"""A database from before pseudonymisation and masking is protected in place by `recsys init`."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from db import experiments as live_store
from db import queries
from db.engine import session_scope
from db.models import Judgment, SearchLog, ServedList, utc_now
from recsys.privacy.stored import protect_stored
from tests.conftest import pseudonym


def _old_database(db_url):
    """Rows as an earlier workbench stored them: shop ids and typed text as they came."""
    with session_scope(db_url) as session:
        catalog = queries.store_version(session, kind="catalog", frame=pd.DataFrame(
            {"product_id": ["P1", "P2"], "title": ["Red mug", "Teapot"]}), source="c.csv", actor="t",
            report={}, mapping={})
        events = queries.store_version(
            session, kind="events", frame=pd.DataFrame({
                "user_id": ["17850", "17850", "13047"], "product_id": ["P1", "P2", "P1"],
                "event_type": ["purchase"] * 3, "value": [1.0] * 3,
                "timestamp": pd.to_datetime(["2024-01-01"] * 3)}),
            source="e.csv", actor="t", report={}, mapping={}, catalog_version_id=catalog.id,
            users=pd.DataFrame({"user_id": ["17850", "13047"], "country": ["UK", "France"]}))
        log = queries.store_version(session, kind="search_log", frame=pd.DataFrame({
            "query": ["mug", "mug for jo@example.com"], "user_id": ["17850", None],
            "product_id": ["P1", None]}), source="l.csv", actor="t", report={}, mapping={},
            catalog_version_id=catalog.id)
        now = utc_now()
        live_store.insert_served(session, [{"request_id": "r1", "endpoint": "/search",
                                            "query": "call 020 7946 0958", "unit": "user:13047",
                                            "products": ["P1"], "at": now}])
        live_store.insert_events(session, [{"type": "click", "product_id": "P1", "session": "s",
                                            "user_id": "13047", "at": now, "received_at": now}])
    return events.id, log.id


def test_stored_ids_and_text_are_protected_once(db_url):
    events, log = _old_database(db_url)
    done = protect_stored(db_url)
    assert done["rows"] == {"events": 3, "users": 2, "search_logs": 1, "search_log_queries": 1,
                            "judgment_queries": 0, "live_events": 1, "served_list_queries": 1,
                            "served_list_units": 1}
    assert done["dataset_versions"] == [events, log]
    with session_scope(db_url) as session:
        both = {pseudonym("17850"), pseudonym("13047")}
        assert set(queries.events_frame(session, events)["user_id"]) == both
        assert set(queries.users_frame(session, events)["user_id"]) == both
        assert sorted(session.scalars(select(SearchLog.query))) == ["mug", "mug for [email]"]
        served = session.scalars(select(ServedList)).one()
        assert (served.query, served.unit) == ("call [phone]", f"user:{pseudonym('13047')}")
        assert live_store.live_events(session)["user_id"].tolist() == [pseudonym("13047")]
        assert "privacy_upgrade" in queries.active_version(session, "events").report
        assert session.query(Judgment).count() == 0
    again = protect_stored(db_url)  # a second start changes nothing
    assert not any(again["rows"].values()) and again["dataset_versions"] == []
