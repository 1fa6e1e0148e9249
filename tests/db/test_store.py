"""The SQL store: migrations match the models, on SQLite and PostgreSQL, and data round-trips."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from db import queries
from db.engine import get_engine, session_scope, upgrade
from db.models import Base, DatasetVersion

TABLES = {"dataset_versions", "products", "users", "events", "search_logs", "judgments",
          "accounts", "audit_log", "settings"}


def _check_schema(url: str) -> None:
    engine = get_engine(url)
    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"the migrations and db/models.py disagree: {diff}"


def _round_trip(url: str) -> None:
    products = pd.DataFrame({"product_id": ["A", "B"], "title": ["Mug", "Tea pot"],
                             "category": ["kitchen", None], "price": [2.5, None],
                             "in_stock": [True, None]})
    events = pd.DataFrame({"user_id": ["u1", "u2"], "product_id": ["A", "B"],
                           "event_type": ["view", "rating"], "value": [1.0, 4.5],
                           "timestamp": [datetime(2024, 1, 1, 8), datetime(2024, 2, 1, 9, 30)],
                           "session_id": ["s1", None]})
    users = pd.DataFrame({"user_id": ["u1", "u2"], "country": ["France", None]})
    with session_scope(url) as session:
        catalog = queries.store_version(session, kind="catalog", frame=products, source="p.csv",
                                        actor="t", report={"ok": True}, mapping={"sku": "product_id"})
        stored = queries.store_version(session, kind="events", frame=events, source="e.csv",
                                       actor="t", report={}, mapping={}, users=users,
                                       catalog_version_id=catalog.id)
    with session_scope(url) as session:
        back = queries.products_frame(session, catalog.id)
        assert back["description"].isna().all()
        pd.testing.assert_frame_equal(back[products.columns], products, check_dtype=False)
        back = queries.events_frame(session, stored.id)
        pd.testing.assert_frame_equal(back, events, check_dtype=False)
        assert queries.users_frame(session, stored.id).to_dict("records") == users.to_dict("records")
        assert queries.active_version(session, "events").id == stored.id
        assert session.get(DatasetVersion, catalog.id).mapping == {"sku": "product_id"}
        per_day = queries.events_per_day(session, stored.id)
        assert per_day["events"].tolist() == [1, 1]
        popularity = queries.product_popularity(session, stored.id, catalog.id)
        assert set(popularity["title"]) == {"Mug", "Tea pot"}
        log = queries.audit_log(session)
        assert {"upload", "activate"} <= set(log["action"])


def test_sqlite_schema_matches_models(db_url):
    _check_schema(db_url)


def test_upgrade_twice_is_harmless(db_url):
    upgrade(db_url)
    _check_schema(db_url)


def test_sqlite_round_trip(db_url):
    _round_trip(db_url)


@pytest.mark.postgres
def test_postgres_schema_and_round_trip(pg_url):
    assert get_engine(pg_url).dialect.name == "postgresql"
    _check_schema(pg_url)
    _round_trip(pg_url)


def test_settings_round_trip_and_audit(db_url):
    with session_scope() as session:
        assert queries.get_setting(session, "implicit_weights") is None
        queries.set_setting(session, "implicit_weights", {"view": 1.0}, "olga")
    with session_scope() as session:
        queries.set_setting(session, "implicit_weights", {"view": 2.0}, "olga")
    with session_scope() as session:
        assert queries.get_setting(session, "implicit_weights") == {"view": 2.0}
        assert list(queries.audit_log(session)["action"]) == ["setting", "setting"]
