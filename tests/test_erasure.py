"""Forgetting a customer: every row naming them goes, what was built from them is marked, the audit
log keeps counts and a fingerprint, never the id. Customers are stored pseudonymised; the shop's id
and the pseudonym both name them."""

from __future__ import annotations

import json

from db import experiments as live_store
from db import queries
from db.engine import session_scope
from db.models import ModelVersion, utc_now
from recsys.data import IngestOptions, ingest_file
from recsys.data.clean import CleaningConfig
from recsys.erasure import forget
from tests.conftest import pseudonym

CATALOG = "product_id,title\nP1,Red mug\nP2,Blue mug\nP3,Teapot\n"
EVENTS = ("user_id,product_id,event_type,timestamp\n17,P1,purchase,2024-01-01\n"
          "17,P2,purchase,2024-01-02\n99,P1,purchase,2024-01-03\n99,P3,purchase,2024-01-04\n")
SEARCH_LOG = "query,user_id,product_id\nmug,17,P1\nteapot,99,P3\n"


def _shop(db_url, write, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_ENGINES_DIR", str(tmp_path / "engines"))
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    events = ingest_file(write("events.csv", EVENTS), IngestOptions("events", cleaning=CleaningConfig()),
                         actor="test").version_ids[0]
    ingest_file(write("log.csv", SEARCH_LOG), IngestOptions("search_log"), actor="test")
    now = utc_now()
    with session_scope(db_url) as session:
        live_store.insert_served(session, [
            {"request_id": "r1", "endpoint": "/search", "query": "mug", "unit": "session:s-17",
             "products": ["P1"], "at": now},
            {"request_id": "r2", "endpoint": "/search", "query": "pot", "unit": "session:s-99",
             "products": ["P3"], "at": now}])
        live_store.insert_events(session, [
            {"type": "click", "product_id": "P1", "session": "s-17", "user_id": pseudonym("17"),
             "request_id": "r1",
             "position": 1, "at": now, "received_at": now},
            {"type": "view", "product_id": "P2", "session": "s-17", "user_id": None, "at": now,
             "received_at": now},
            {"type": "click", "product_id": "P3", "session": "s-99", "user_id": pseudonym("99"),
             "request_id": "r2",
             "position": 1, "at": now, "received_at": now}])
        session.add(ModelVersion(kind="embedding", version=1, base_model="base", artifact_path="x",
                                 training_data={"dataset_version_ids": {"catalog": 1, "events": events}},
                                 created_by="test"))
    folder = tmp_path / "engines" / "recommendations-catalog1-events2-abc"
    folder.mkdir(parents=True)
    from recsys.engines import database_identity

    (folder / "spec.json").write_text(json.dumps({"kind": "recommendations", "events_version": events,
                                                  "database": database_identity(db_url)}))
    return events, folder


def test_forgetting_a_customer_removes_their_rows_and_marks_what_learned_from_them(db_url, write, monkeypatch,
                                                                                     tmp_path):
    events_version, folder = _shop(db_url, write, monkeypatch, tmp_path)
    erased = forget(db_url, " 17 ", "admin", refit=False)
    assert erased.rows == {"events": 2, "users": 1, "search_logs": 1, "live_events": 2, "served_lists": 1}
    assert events_version in erased.dataset_versions and erased.models == ["embedding v1"]
    assert not folder.exists()  # the fitted recommender remembered the customer
    with session_scope(db_url) as session:
        events = queries.events_frame(session, events_version)
        assert set(events["user_id"]) == {pseudonym("99")}  # the other customer is untouched
        version = session.get(type(queries.active_version(session, "events")), events_version)
        assert version.row_count == 2 and version.report["erasures"][0]["rows"] == 2
        assert version.report["erasures"][0]["what"] == erased.fingerprint
        assert "train again to forget it" in session.query(ModelVersion).one().note
        log = queries.audit_log(session)
        assert set(live_store.live_events(session)["user_id"].dropna()) == {pseudonym("99")}
    entry = log[log["action"] == "forget_customer"].iloc[0]
    assert entry["target"] == erased.fingerprint and erased.fingerprint.startswith("erasure-")
    assert pseudonym("17") not in json.dumps(entry["details"])
    assert forget(db_url, "17", "admin", refit=False).total == 0  # nothing left to forget
    # The pseudonym the workbench shows names the customer too.
    assert forget(db_url, pseudonym("99"), "admin", refit=False).rows["events"] == 2


def test_the_forget_cli_prints_counts(db_url, write, monkeypatch, tmp_path, capsys):
    from recsys.cli import main

    _shop(db_url, write, monkeypatch, tmp_path)
    assert main(["forget", "--customer", "99", "--no-refit"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["erased"].startswith("erasure-") and printed["rows"]["events"] == 2
    assert printed["total_rows"] == 6 and pseudonym("99") not in json.dumps(printed)
    assert main(["forget", "--customer", "  "]) != 0
    assert "give the id of the customer" in capsys.readouterr().err


def test_retention_deletes_behaviour_older_than_the_setting(db_url, write, monkeypatch, tmp_path, capsys):
    from recsys.cli import main

    events_version, folder = _shop(db_url, write, monkeypatch, tmp_path)  # events of January 2024
    monkeypatch.setenv("WORKBENCH_RETENTION_DAYS", "30")
    assert main(["retention", "--no-refit"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"]["events"] == 4 and printed["rows"]["live_events"] == 0  # today's traffic stays
    assert printed["rows"]["users"] == 2  # customers left without behaviour go too
    assert printed["erased"].startswith("retention: before") and not folder.exists()
    with session_scope(db_url) as session:
        assert queries.events_frame(session, events_version).empty
    monkeypatch.setenv("WORKBENCH_RETENTION_DAYS", "a month")
    assert main(["retention"]) != 0
    assert "whole number of days" in capsys.readouterr().err


def test_an_erasure_changes_the_engines_asked_for(db_url, write, monkeypatch, tmp_path):
    """Engines fitted before an erasure are not taken for engines fitted after it (the service and
    the pages fit and load again)."""
    from recsys.engines import active_specs

    _shop(db_url, write, monkeypatch, tmp_path)
    before = active_specs(db_url)
    forget(db_url, "17", "admin", refit=False)
    after = active_specs(db_url)
    assert before["recommendations"].key != after["recommendations"].key
    assert before["search"].key == after["search"].key  # the catalog was not touched


def test_the_standing_worker_runs_retention_once_a_day_by_itself(db_url, write, monkeypatch, tmp_path):
    from recsys import jobs

    events_version, _ = _shop(db_url, write, monkeypatch, tmp_path)  # events of January 2024
    assert jobs.run_schedules(db_url) == []  # no retention setting, no job
    monkeypatch.setenv("WORKBENCH_RETENTION_DAYS", "30")
    monkeypatch.setenv("WORKBENCH_FIT_ON_ACTIVATE", "0")
    assert jobs.work(db_url, once=True) == 1  # the worker submitted it and ran it
    job = jobs.list_jobs("retention", url=db_url)[0]
    assert job.status == "succeeded" and job.created_by == "schedule"
    assert job.result.rows["events"] == 4 and job.result.erased.startswith("retention: before")
    with session_scope(db_url) as session:
        assert queries.events_frame(session, events_version).empty
    assert jobs.run_schedules(db_url) == []  # not again within the day
