"""Fixtures of the REST service tests: a tiny shop with known answers, fitted once per
session, served by a TestClient whose lifespan runs (engine, key check, metrics writer)."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.conftest import pseudonym

CATALOG = pd.DataFrame({
    "product_id": ["P01", "P02", "P03", "P04", "P05", "P06", "P07", "P08"],
    "title": ["Red ceramic coffee mug", "Blue ceramic coffee mug", "Green glass teapot",
              "Stainless steel electric kettle", "Oak garden chair", "Folding garden table",
              "20-Volt cordless drill", "60-Watt LED light bulb"],
    "category": ["kitchen", "kitchen", "kitchen", "kitchen", "garden", "garden", "tools", "lighting"],
})
# Mug buyers also buy teapots; garden buyers buy both garden products. P01 is the most popular.
# Customers are stored pseudonymised, as ingestion stores them; requests name them as the shop does.
INTERACTIONS = pd.DataFrame(
    [(pseudonym(user), product) for user, products in {
        "u1": ["P01", "P03"], "u2": ["P01", "P03", "P04"], "u3": ["P01", "P02"],
        "u4": ["P05", "P06"], "u5": ["P05", "P06", "P01"], "u6": ["P02", "P03"],
    }.items() for product in products], columns=["user_id", "product_id"]).assign(weight=1.0)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    from recsys import embeddings
    from recsys.serving.engine import ServingEngine

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embeddings, "CACHE_DIR", tmp_path_factory.mktemp("embeddings"))
        return ServingEngine.from_frames(CATALOG, INTERACTIONS, data_versions={"catalog": 1, "events": 2})


@pytest.fixture
def api_key(db_url) -> str:
    from recsys.serving.keys import issue_key

    return issue_key("tests", actor="test", url=db_url).key


@pytest.fixture
def client(db_url, engine, api_key):
    """A client of the app (lifespan started), sending a valid key."""
    from recsys.serving.app import create_app

    app = create_app(db_url, engine, metrics_interval_s=0.05, alerts_interval_s=None)
    with TestClient(app, headers={"X-API-Key": api_key}) as test_client:
        yield test_client
