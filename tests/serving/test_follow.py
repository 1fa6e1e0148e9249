"""The service follows activations while it runs: no restart, no failed or mixed request."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from db.engine import session_scope
from recsys.data import IngestOptions, ingest_file
from recsys.data.clean import CleaningConfig
from recsys.engines import fit_active
from recsys.fusion import FusionConfig, presets
from recsys.serving.keys import issue_key
from tests.conftest import until

CATALOG = "product_id,title,category\nP1,Red mug,kitchen\nP2,Blue mug,kitchen\nP3,Green teapot,kitchen\n"
EVENTS = ("user_id,product_id,event_type,timestamp\nu1,P1,purchase,2024-01-01\nu1,P3,purchase,2024-01-02\n"
          "u2,P1,purchase,2024-01-03\nu2,P2,purchase,2024-01-04\n")


@pytest.fixture
def served(db_url, write):
    """A service over a small shop, its engines fitted, following activations every 0.1 s."""
    from recsys.serving.app import create_app

    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    ingest_file(write("events.csv", EVENTS), IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    with session_scope() as session:
        presets.ensure_default_presets(session)
    fit_active(db_url)
    key = issue_key("tests", actor="test", url=db_url).key
    app = create_app(db_url, metrics_interval_s=0.05, alerts_interval_s=None, follow_s=0.1)
    with TestClient(app, headers={"X-API-Key": key}) as client:
        yield client



def test_an_activated_preset_and_data_version_are_served_without_a_restart(served, db_url, write):
    health = served.get("/health").json()
    assert health["following"] and health["presets"]["search"]["label"] == "default v1"
    assert health["data_versions"] == {"catalog": 1, "events": 2}
    answers, stop = [], threading.Event()

    def keep_asking():  # a client searching throughout: every answer must come from one engine
        while not stop.is_set():
            answers.append(served.get("/search", params={"q": "mug", "k": 3}))

    asking = threading.Thread(target=keep_asking)
    asking.start()
    try:
        rule = {"kind": "pin", "product_id": "P3", "position": 1, "when_query": "mug"}
        with session_scope() as session:
            presets.save_preset(session, "search", "teapot-first",
                                FusionConfig.from_dict({**presets.default_config("search").to_dict(),
                                                        "rules": [rule]}), "olga", activate=True)
        until(lambda: served.get("/health").json()["presets"]["search"]["label"] == "teapot-first v1")
        assert served.get("/search", params={"q": "mug", "k": 3}).json()["items"][0]["product_id"] == "P3"

        # A data version: served once its engines are fitted (by the fit job, or here by the follower).
        new = ingest_file(write("more.csv", CATALOG + "P4,Striped mug,kitchen\n"), IngestOptions("catalog"),
                          actor="test").version_ids[0]
        until(lambda: served.get("/health").json()["data_versions"]["catalog"] == new)
        found = [item["product_id"] for item in served.get("/search", params={"q": "striped mug"}).json()["items"]]
        assert found[0] == "P4"
    finally:
        stop.set()
        asking.join()
    assert answers and all(answer.status_code == 200 for answer in answers)
    for answer in answers:  # never an old data version with the new preset, or the other way round
        body = answer.json()
        assert (body["preset_version"], body["model_version"].endswith(f"catalog-v{new}.events-v2")) in {
            ("default v1", False), ("teapot-first v1", False), ("teapot-first v1", True)}
