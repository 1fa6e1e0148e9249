"""A database with an active catalog of four products, and who acts on the campaigns."""

from __future__ import annotations

import pandas as pd
import pytest

from db import queries
from db.engine import session_scope
from recsys.accounts import Identity
from recsys.data import IngestOptions, ingest_file
from tests.serving.conftest import CATALOG
from tests.serving.conftest import api_key, client, engine  # noqa: F401 (the REST tests' tiny shop, served)

OPERATOR = Identity("olga", "operator")
ACME = Identity("ann", "advertiser", "Acme")  # acts for the advertiser Acme
GLOBEX = Identity("gus", "advertiser", "Globex")
PRODUCTS = pd.DataFrame({"product_id": ["P1", "P2", "P3", "P4"],
                         "title": ["Red mug", "Blue mug", "Green teapot", "Garden chair"],
                         "category": ["kitchen", "kitchen", "kitchen", "garden"]})


def add_catalog(url: str) -> None:
    with session_scope(url) as session:
        queries.store_version(session, kind="catalog", frame=PRODUCTS, source="catalog.csv", actor="test",
                              report={}, mapping={})


@pytest.fixture
def shop(db_url) -> str:
    """A migrated SQLite database (DATABASE_URL) whose active catalog holds P1 to P4."""
    add_catalog(db_url)
    return db_url


@pytest.fixture
def pg_shop(pg_url) -> str:
    """The same on a PostgreSQL database of its own (skipped when PostgreSQL is not installed)."""
    add_catalog(pg_url)
    return pg_url


@pytest.fixture
def served_shop(db_url, tmp_path) -> str:
    """The serving tests' catalog, active in the database (campaigns promote its products)."""
    path = tmp_path / "catalog.csv"
    CATALOG.to_csv(path, index=False)
    ingest_file(path, IngestOptions("catalog"), actor="test")
    return db_url
