"""Online experiments and live events through the REST service, as a shop's front end uses them."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from db.engine import session_scope
from recsys.data import IngestOptions, ingest_file
from recsys.data.clean import CleaningConfig
from recsys.engines import fit_active
from recsys.experiments import service
from recsys.fusion import FusionConfig, presets
from recsys.serving.keys import issue_key
from tests.conftest import until

CATALOG = ("product_id,title,category\nP1,Red ceramic mug,kitchen\nP2,Blue ceramic mug,kitchen\n"
           "P3,Green glass teapot,kitchen\nP4,Steel kettle,kitchen\nP5,Oak garden chair,garden\n"
           "P6,Folding garden table,garden\nP7,Mug rack for kitchen walls,kitchen\n")
EVENTS = ("user_id,product_id,event_type,timestamp\nu1,P1,purchase,2024-01-01\nu1,P3,purchase,2024-01-02\n"
          "u2,P1,purchase,2024-01-03\nu2,P2,purchase,2024-01-04\nu3,P5,purchase,2024-01-05\n"
          "u3,P6,purchase,2024-01-06\nu4,P1,purchase,2024-01-07\n")



@pytest.fixture
def shop(db_url, write):
    """A small shop with two search presets: the default and a lexical-only one."""
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    ingest_file(write("events.csv", EVENTS), IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    with session_scope() as session:
        presets.ensure_default_presets(session)
        default = presets.active_preset(session, "search").config.to_dict()
        weights = {name: (1.0 if name == "bm25" else 0.0) for name in default["weights"]}
        presets.save_preset(session, "search", "lexical",
                            FusionConfig.from_dict({**default, "weights": weights}),
                            "test")
    fit_active(db_url)
    return db_url


def _client(db_url, **options) -> TestClient:
    from recsys.serving.app import create_app

    key = issue_key("tests", actor="test", url=db_url).key
    app = create_app(db_url, metrics_interval_s=0.05, alerts_interval_s=None, follow_s=0.1, **options)
    return TestClient(app, headers={"X-API-Key": key})


def _experiment_served(client, experiment_id: int):
    return until(lambda: (client.get("/health").json()["experiment"] or "").startswith(f"{experiment_id} "))


def test_an_interleaving_experiment_is_served_clicked_and_reported(shop):
    created = service.create_experiment(shop, "lexical-vs-default", "default", "lexical", "interleaving",
                                        "test")
    with _client(shop) as client:
        _experiment_served(client, created.id)
        answer = client.get("/search", params={"q": "mug", "k": 4, "session": "s-1"}).json()
        assert answer["experiment"] == {"id": created.id, "name": "lexical-vs-default",
                                        "method": "interleaving",
                                        "arm": "interleaved"}
        assert {item["team"] for item in answer["items"]} <= {"control", "treatment"}
        assert answer["request_id"] and answer["preset_version"] == "default v1 + lexical v1"
        plain = client.get("/search", params={"q": "mug", "k": 4}).json()  # no session: not in the experiment
        assert plain["experiment"] is None and all(item["team"] is None for item in plain["items"])
        # Click the first treatment item of the interleaved list of ten sessions (one without saying
        # where: the position is found in the list).
        clicks = []
        for number in range(10):
            found = client.get("/search", params={"q": "mug", "k": 4, "session": f"s-{number}"}).json()
            position = next(i for i, item in enumerate(found["items"], 1) if item["team"] == "treatment")
            clicks.append({"type": "click", "product_id": found["items"][position - 1]["product_id"],
                           "session": f"s-{number}", "request_id": found["request_id"],
                           "event_id": f"click-{number}", **({"position": position} if number else {})})
        sent = client.post("/events", json=clicks)
        assert sent.status_code == 202, sent.text
        assert sent.json()["accepted"] == 10 and sent.json()["rejected"] == []
        again = client.post("/events", json=clicks).json()  # a re-sent batch is stored once
        assert again["accepted"] == 0 and again["duplicates"] == 10
    result = service.report(shop, created.id)
    assert result["impressions"] == 11 and result["clicks"] == 10 and result["sessions"] == 10
    assert (result["wins_treatment"], result["wins_control"], result["ties"]) == (10, 0, 0)
    assert result["winner"] == "treatment" and result["p_value"] < 0.01
    stopped = service.stop_experiment(shop, created.id, "test", promote=True)
    assert stopped["promoted"] == "lexical v1"
    with session_scope(shop) as session:
        assert presets.active_preset(session, "search").label == "lexical v1"


def test_ab_gives_each_session_one_arm_always(shop):
    created = service.create_experiment(shop, "ab", "default", "lexical:1", "ab", "test", traffic=1.0)
    with _client(shop) as client:
        _experiment_served(client, created.id)
        arms = {}
        for number in range(30):
            for _ in range(2):
                answer = client.get("/search", params={"q": "garden", "session": f"v{number}"}).json()
                arms.setdefault(number, set()).add(answer["experiment"]["arm"])
                assert "team" not in answer["items"][0] or answer["items"][0]["team"] is None
        assert all(len(seen) == 1 for seen in arms.values())
        assert {next(iter(seen)) for seen in arms.values()} == {"control", "treatment"}
    result = service.report(shop, created.id)
    assert result["impressions"] == 60 and result["sessions"] == 30
    assert result["arms"]["control"]["sessions"] + result["arms"]["treatment"]["sessions"] == 30


def test_bad_events_get_a_message_each_and_the_good_ones_are_kept(shop):
    with _client(shop) as client:
        answer = client.get("/search", params={"q": "mug", "k": 2, "session": "s"}).json()
        first = answer["items"][0]["product_id"]
        batch = [
            {"type": "click", "product_id": first, "session": "s", "request_id": answer["request_id"],
             "position": 1, "event_id": "good-1"},
            {"type": "like", "product_id": "P1", "session": "s"},
            {"type": "click", "product_id": "NOPE", "session": "s"},
            {"type": "click", "product_id": "P1", "session": "s", "request_id": "made-up"},
            {"type": "click", "product_id": "P1"},
            {"type": "click", "product_id": first, "session": "s", "request_id": answer["request_id"],
             "position": 9},
            {"type": "cart", "product_id": "P5", "user": "u9", "time": "yesterday"},
            {"type": "purchase", "product_id": "P5", "user": "u9", "time": "2026-01-01T10:00:00Z"},
            "click",
            {"type": "view", "product_id": "P5", "session": "   "},
            {"type": "view", "product_id": "P5", "session": "tab\there"},
            {"type": "view", "product_id": "P5", "session": "s", "time": "0001-01-01T00:00:00+14:00"},
            {"type": "click", "product_id": "P6", "session": "s", "request_id": answer["request_id"]},
        ]
        sent = client.post("/events", json=batch)
        assert sent.status_code == 202
        body = sent.json()
        assert body["accepted"] == 2 and body["request_id"]
        problems = {problem["index"]: problem["detail"] for problem in body["rejected"]}
        assert sorted(problems) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
        assert "'like' is not one of view, click, cart, purchase" in problems[1]
        assert "'NOPE' is not in the served catalog" in problems[2]
        assert "'made-up' is not an answer of this service" in problems[3]
        assert "session or user" in problems[4]
        assert "past the end" in problems[5] and "ISO 8601" in problems[6]
        assert "session or user" in problems[9] and "control character" in problems[10]
        assert "ISO 8601" in problems[11] and "'P6' is not in the answer of request" in problems[12]
        assert all(problem["status"] == 422 for problem in body["rejected"])
        all_bad = client.post("/events", json=[{"type": "click"}])
        assert all_bad.status_code == 422 and "none of the 1 event(s) is valid" in all_bad.json()["detail"]
        assert client.post("/events", json={"type": "click"}).status_code == 422  # not a list
        broken = client.post("/events", content="[{", headers={"Content-Type": "application/json"})
        assert broken.status_code == 422
        assert client.post("/events", json=[], headers={"X-API-Key": "wrong"}).status_code == 401
        until(lambda: client.get("/health").json()["events_written"] == 2)


def test_a_flood_of_events_gets_429_and_loses_nothing_accepted(shop):
    from recsys.serving.app import create_app

    key = issue_key("flood", actor="test", url=shop).key
    app = create_app(shop, metrics_interval_s=0.05, alerts_interval_s=None, follow_s=None,
                     max_pending_events=50)
    with TestClient(app, headers={"X-API-Key": key}) as client:
        writer = app.state.service.event_writer
        writer._stop.set()  # the writer stops draining, as when the database is slow
        writer._wake.set()
        writer._thread.join()
        writer._thread = None
        accepted, refused = 0, 0
        for batch in range(5):
            events = [{"type": "view", "product_id": "P1", "session": f"f{batch}",
                       "event_id": f"f{batch}-{i}"} for i in range(20)]
            response = client.post("/events", json=events)
            if response.status_code == 429:
                refused += 1
                assert response.headers["Retry-After"] == "1" and "send it again" in response.json()["detail"]
            else:
                accepted += response.json()["accepted"]
        assert (accepted, refused) == (40, 3)
    from db.experiments import live_events

    with session_scope(shop) as session:  # what was accepted is stored at shutdown, nothing more
        assert len(live_events(session)) == 40


def test_session_recommendations_follow_clicks_within_a_second_and_popularity_within_a_minute(shop):
    with _client(shop) as client:
        before = client.get("/recommend/visitor-1", params={"session": "new-s", "k": 3}).json()
        assert before["fallback"] == "popular"
        started = time.perf_counter()
        client.post("/events", json=[{"type": "click", "product_id": "P5", "session": "new-s"}])
        after = until(lambda: (lambda answer: answer if answer["fallback"] is None else None)(
            client.get("/recommend/visitor-1", params={"session": "new-s", "k": 3}).json()))
        assert time.perf_counter() - started < 1.0
        assert after["items"][0]["product_id"] == "P6"  # garden chair clickers buy the garden table
        # A product nobody bought, busy now, rises in what new visitors get.
        assert "P4" not in [item["product_id"] for item in before["items"]]
        client.post("/events", json=[{"type": "purchase", "product_id": "P4", "session": f"b{i}"}
                                     for i in range(5)])
        until(lambda: "P4" in [item["product_id"] for item in
                                client.get("/recommend/visitor-2", params={"k": 3}).json()["items"]], 60)


def test_clicks_after_searches_feed_the_search_log(shop):
    with _client(shop) as client:
        answer = client.get("/search", params={"q": "teapot", "k": 2, "session": "s"}).json()
        client.post("/events", json=[{"type": "click", "product_id": answer["items"][0]["product_id"],
                                      "session": "s", "request_id": answer["request_id"], "position": 1}])
        until(lambda: client.get("/health").json()["events_written"] == 1)
    assert service.feed_search_log(shop, "test") is None  # what came in the last minute waits
    until(lambda: service.feed_search_log(shop, "test", settle_s=0) is not None, 10)
    from db import queries

    with session_scope(shop) as session:
        log = queries.search_log_frame(session, queries.active_version(session, "search_log").id)
    assert log[["query", "product_id"]].values.tolist() == [["teapot", "P3"]]
    assert service.feed_search_log(shop, "test", settle_s=0) is None  # fed once


def test_the_experiments_cli(shop, capsys):
    from recsys.cli import main

    assert main(["experiments", "create", "--name", "cli", "--control", "default", "--treatment", "lexical",
                 "--method", "interleaving", "--traffic", "0.5"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["experiment_id"] and created["traffic"] == 0.5 and created["status"] == "running"
    assert main(["experiments", "create", "--name", "second", "--control", "default", "--treatment",
                 "lexical", "--method", "ab"]) != 0
    assert "is running: the service runs one at a time" in capsys.readouterr().err
    assert main(["experiments", "create", "--name", "x", "--control", "nope", "--treatment", "lexical",
                 "--method", "ab"]) != 0
    assert "there is no search preset 'nope'" in capsys.readouterr().err
    assert main(["experiments", "list"]) == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == ["cli"]
    assert main(["experiments", "report", str(created["experiment_id"])]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"impressions", "clicks", "wins_control", "wins_treatment", "ties", "p_value",
            "winner"} <= set(report)
    assert main(["experiments", "report", str(created["experiment_id"]), "--effect", "0.6"]) != 0
    assert "between 0 and 0.5" in capsys.readouterr().err
    assert main(["experiments", "stop", str(created["experiment_id"]), "--promote"]) != 0
    assert "no significant winner yet" in capsys.readouterr().err
    assert main(["experiments", "stop", str(created["experiment_id"])]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "stopped"


def test_an_event_may_name_a_list_another_worker_answered(shop):
    """Workers share SQL, not memory: an event sent to one names a search another answered."""
    with _client(shop) as first, _client(shop) as second:
        answer = first.get("/search", params={"q": "kettle", "k": 1, "session": "w"}).json()
        sent = second.post("/events", json=[{"type": "click", "product_id": answer["items"][0]["product_id"],
                                             "session": "w", "request_id": answer["request_id"],
                                             "position": 1}])
        assert sent.status_code == 202 and sent.json()["accepted"] == 1, sent.text


def test_one_experiment_runs_at_a_time_even_when_two_start_at_once(shop):
    from sqlalchemy.exc import IntegrityError

    from db import experiments as store

    with pytest.raises(IntegrityError), session_scope(shop) as session:  # the database says no too
        for name in ("a", "b"):
            store.add_experiment(session, name, "ab", 1, 2, 1.0, "test")
    created = service.create_experiment(shop, "c", "default", "lexical", "ab", "test")
    service.stop_experiment(shop, created.id, "first")
    with pytest.raises(ValueError, match="stopped already"):
        service.stop_experiment(shop, created.id, "second")


def test_a_forgotten_customer_leaves_the_services_memory_too(shop):
    """The service's live view of recent events (what /recommend follows) is built again from SQL
    after an erasure, so the forgotten customer's recent clicks stop shaping their answers."""
    from recsys.erasure import forget

    with _client(shop) as client:
        assert client.get("/recommend/visitor-9", params={"k": 3}).json()["fallback"] == "popular"
        client.post("/events", json=[{"type": "click", "product_id": "P5", "user": "visitor-9"}])
        until(lambda: client.get("/recommend/visitor-9", params={"k": 3}).json()["fallback"] is None)
        assert forget(shop, "visitor-9", "admin", refit=False).rows["live_events"] == 1
        until(lambda: client.get("/recommend/visitor-9", params={"k": 3}).json()["fallback"] == "popular", 10)


def test_grpc_follows_an_experiment_and_assigns_as_rest_does(shop):
    """The gRPC service serves an experiment created while it runs, through REST's code: each
    session gets the arm REST gives it, and both protocols' answers count in the report."""
    import grpc

    from recsys.serving.grpc_service import ServerThread
    from recsys.serving.protos import workbench_pb2 as pb
    from recsys.serving.protos import workbench_pb2_grpc as rpc

    key = issue_key("grpc", actor="test", url=shop).key
    metadata = [("x-api-key", key)]
    server = ServerThread(url=shop, metrics_interval_s=0.05, alerts_interval_s=None, follow_s=0.1).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, _client(shop) as client:
            stub = rpc.WorkbenchStub(channel)
            assert not stub.Search(pb.SearchRequest(q="garden", session="v0"), metadata=metadata).HasField(
                "experiment")
            created = service.create_experiment(shop, "ab", "default", "lexical:1", "ab", "test", traffic=1.0)
            until(lambda: stub.Search(pb.SearchRequest(q="garden", session="v0"),
                                      metadata=metadata).HasField("experiment"))
            _experiment_served(client, created.id)
            arms = set()
            for number in range(20):
                session = f"v{number}"
                over_grpc = stub.Search(pb.SearchRequest(q="garden", k=4, session=session), metadata=metadata)
                over_rest = client.get("/search", params={"q": "garden", "k": 4, "session": session}).json()
                assert over_grpc.experiment.id == created.id
                assert over_grpc.experiment.arm == over_rest["experiment"]["arm"]
                assert over_grpc.preset_version == over_rest["preset_version"]
                assert [item.product_id for item in over_grpc.items] == [
                    item["product_id"] for item in over_rest["items"]]
                arms.add(over_grpc.experiment.arm)
            assert arms == {"control", "treatment"}
    finally:
        server.stop()
    assert service.report(shop, created.id)["impressions"] == 41  # and the first answer the experiment gave
