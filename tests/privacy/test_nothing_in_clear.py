"""The shop's customer ids and the personal data in typed text reach no table, log or answer:
uploads, the REST service (requests, live events, served lists) and the search log fed from live
clicks keep pseudonyms and masked text only, and the bytes of the database file say so."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from db import queries
from db.engine import session_scope
from recsys.data import IngestOptions, ingest_file
from recsys.data.clean import CleaningConfig
from recsys.engines import fit_active
from recsys.experiments import service
from recsys.serving.keys import issue_key
from tests.conftest import pseudonym, until

RAW = ["cust-7f3a-alpha", "98765431", "cust-2b9c-bravo"]
CATALOG = ("product_id,title\nP1,Red ceramic mug\nP2,Blue ceramic mug\nP3,Green glass teapot\n"
           "P4,Steel kettle\n")
EVENTS = ("user_id,product_id,event_type,timestamp\n"
          f"{RAW[0]},P1,purchase,2024-01-01\n{RAW[0]},P3,purchase,2024-01-02\n"
          f"{RAW[1]},P1,purchase,2024-01-03\n{RAW[1]},P2,purchase,2024-01-04\n"
          f" {RAW[2]} ,P4,purchase,2024-01-05\n")
SEARCH_LOG = ("query,user_id,product_id\nteapot,cust-7f3a-alpha,P3\n"
              "mug for jo.private@example.org,98765431,P1\ncall 020 7946 0958 about kettles,,P4\n")
SECRETS = [*RAW, "jo.private@example.org", "020 7946 0958", "7946"]


def _database_bytes(url: str) -> bytes:
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_uploads_store_pseudonyms_and_masked_text_only(db_url, write):
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    events = ingest_file(write("events.csv", EVENTS), IngestOptions("events", cleaning=CleaningConfig()),
                         actor="test")
    log = ingest_file(write("log.csv", SEARCH_LOG), IngestOptions("search_log"), actor="test")
    assert events.reports[0].privacy["pseudonymised"]["user_id"] == {"rows": 5, "customers": 3}
    assert log.reports[0].privacy["masked"]["query"] == {"rows": 2, "kinds": {"email": 1, "phone": 1}}
    assert "3 customer ids pseudonymised" in events.reports[0].message()
    assert "masked in query: 1 email, 1 phone" in log.reports[0].message()
    with session_scope(db_url) as session:
        stored = queries.search_log_frame(session, log.version_ids[0])
        users = set(queries.events_frame(session, events.version_ids[0])["user_id"])
    assert users == {pseudonym(raw) for raw in RAW}  # " cust-2b9c-bravo " is the same customer
    assert stored["query"].tolist() == ["teapot", "mug for [email]", "call [phone] about kettles"]
    content = _database_bytes(db_url)
    for secret in SECRETS:
        assert secret.encode() not in content, secret


def test_the_service_takes_shop_ids_and_keeps_only_pseudonyms(db_url, write):
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    ingest_file(write("events.csv", EVENTS), IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    fit_active(db_url)
    from recsys.serving.app import create_app

    key = issue_key("tests", actor="test", url=db_url).key
    app = create_app(db_url, metrics_interval_s=0.05, alerts_interval_s=None)
    with TestClient(app, headers={"X-API-Key": key}) as client:
        known = client.get(f"/recommend/{RAW[0]}", params={"k": 2}).json()
        assert known["user_id"] == pseudonym(RAW[0]) and known["fallback"] is None  # their history counts
        assert not {"P1", "P3"} & {item["product_id"] for item in known["items"]}
        answer = client.get("/search", params={"q": "mug for jo.private@example.org", "user": RAW[1],
                                               "k": 2}).json()
        clicked = answer["items"][0]["product_id"]
        accepted = client.post("/events", json=[{"type": "click", "product_id": clicked, "user": RAW[1],
                                                 "request_id": answer["request_id"]}]).json()
        assert accepted["accepted"] == 1
        until(lambda: client.get("/health").json()["events_written"] == 1)
    assert service.feed_search_log(db_url, "test", settle_s=0) is not None
    from db import experiments as live_store

    with session_scope(db_url) as session:
        assert live_store.live_events(session)["user_id"].tolist() == [pseudonym(RAW[1])]
        log = queries.search_log_frame(session, queries.active_version(session, "search_log").id)
    # The search log fed from live clicks keeps the pseudonym (not hashed twice) and the masked query.
    assert log[["query", "user_id"]].values.tolist() == [["mug for [email]", pseudonym(RAW[1])]]
    content = _database_bytes(db_url)
    for secret in SECRETS:
        assert secret.encode() not in content, secret
