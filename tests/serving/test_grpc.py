"""The gRPC service against the REST service: the same answers, key errors, limits and metrics.

The server runs in this process on 127.0.0.1 (a free port), over the tiny shop of conftest.py;
each call is compared with the REST answer (TestClient) to the same request.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pandas as pd
import pytest
from google.protobuf.json_format import MessageToDict

from tests.conftest import pseudonym, until
from tests.experiments.test_api import shop  # noqa: F401 - a fitted shop in SQL, for serve-grpc
from tests.serving.test_request_metrics import metric_rows

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "recsys" / "serving" / "protos"


@pytest.fixture
def grpc_server(db_url, engine, api_key):  # the key first: the server reads the keys as it starts
    from recsys.serving.grpc_service import ServerThread

    server = ServerThread(url=db_url, engine=engine, metrics_interval_s=0.05, alerts_interval_s=None).start()
    yield server
    server.stop()


@pytest.fixture
def stub(grpc_server):
    from recsys.serving.protos import workbench_pb2_grpc as rpc

    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        yield rpc.WorkbenchStub(channel)


@pytest.fixture
def pb():
    from recsys.serving.protos import workbench_pb2

    return workbench_pb2


def as_rest(reply) -> dict:
    """A gRPC reply in the shape of REST's JSON (absent optional fields as null)."""
    body = MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    for item in body.get("items", []):
        item.setdefault("explanation", None)
        item.setdefault("team", None)
        item.setdefault("campaign_id", None)
        if "campaign_id" in item and item["campaign_id"] is not None:
            item["campaign_id"] = int(item["campaign_id"])  # int64 travels as a JSON string
    for field in ("searched_query", "experiment", "fallback"):
        if field in type(reply).DESCRIPTOR.fields_by_name:
            body.setdefault(field, None)
    if isinstance(body.get("experiment"), dict):
        body["experiment"]["id"] = int(body["experiment"]["id"])  # int64 travels as a JSON string
    return body


def same(grpc_body: dict, rest_body: dict) -> None:
    """Equal but for the request ids (each call has its own); scores are doubles in both."""
    grpc_body, rest_body = dict(grpc_body), dict(rest_body)
    assert grpc_body.pop("request_id") and rest_body.pop("request_id")
    assert grpc_body == rest_body


def call(stub_method, request, key: str | None, request_id: str | None = None):
    metadata = [("x-api-key", key)] if key is not None else []
    if request_id:
        metadata.append(("x-request-id", request_id))
    return stub_method(request, metadata=metadata, timeout=30)


def failure(stub_method, request, key: str | None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(stub_method, request, key)
    return raised.value


# --- the generated code ------------------------------------------------------------------------

def test_the_generated_modules_are_those_of_the_proto(tmp_path):
    """Committed workbench_pb2*.py must be what grpc_tools.protoc makes of workbench.proto now."""
    (tmp_path / "recsys" / "serving" / "protos").mkdir(parents=True)
    proto = "recsys/serving/protos/workbench.proto"
    (tmp_path / proto).write_text((ROOT / proto).read_text())
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", ".", "--python_out=.",
                    "--grpc_python_out=.", proto], cwd=tmp_path, check=True)
    for name in ("workbench_pb2.py", "workbench_pb2_grpc.py"):
        fresh = (tmp_path / "recsys" / "serving" / "protos" / name).read_text()
        assert (PROTOS / name).read_text() == fresh, (
            f"{name} is out of date with workbench.proto: regenerate it "
            "(the command is in recsys/serving/protos/__init__.py)")


# --- the same answers as REST --------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    {"q": "red mug", "k": 3}, {"q": "red ceramic mugg", "k": 1, "explain": True},
    {"q": "garden", "k": 5, "category": "garden"}, {"q": "xyzzy qqq"}, {"q": "mug", "session": "s-1"},
    {"q": "mug teapot kettle garden drill bulb"},  # k absent: 10, so all 8 products
])
def test_search_answers_as_rest_does(client, stub, pb, api_key, params):
    rest = client.get("/search", params=params).json()
    reply = call(stub.Search, pb.SearchRequest(**params), api_key)
    same(as_rest(reply), rest)


@pytest.mark.parametrize("user, params", [
    ("u1", {"k": 3}), ("nobody", {"k": 2}), ("nobody", {"k": 1, "history": ["P05"]}),
    ("u4", {"k": 1, "explain": True}), ("nobody", {"history": ["NOPE"]}),
])
def test_recommend_answers_as_rest_does(client, stub, pb, api_key, user, params):
    rest = client.get(f"/recommend/{user}", params=params).json()
    reply = call(stub.Recommend, pb.RecommendRequest(user_id=user, **params), api_key)
    same(as_rest(reply), rest)
    assert reply.user_id == pseudonym(user)


def test_an_unknown_user_gets_the_popular_fallback_as_over_rest(stub, pb, api_key):
    reply = call(stub.Recommend, pb.RecommendRequest(user_id="nobody", k=2), api_key)
    assert reply.fallback == "popular" and reply.items[0].product_id == "P01"
    known = call(stub.Recommend, pb.RecommendRequest(user_id="u1", k=3), api_key)
    assert not known.HasField("fallback") and not {"P01", "P03"} & {item.product_id for item in known.items}


@pytest.mark.parametrize("product, k", [("P05", 2), ("P01", 10)])
def test_similar_answers_as_rest_does(client, stub, pb, api_key, product, k):
    rest = client.get(f"/similar/{product}", params={"k": k}).json()
    reply = call(stub.Similar, pb.SimilarRequest(product_id=product, k=k), api_key)
    same(as_rest(reply), rest)


def test_answers_equal_the_engines_own(stub, pb, api_key, engine):
    reply = call(stub.Search, pb.SearchRequest(q="coffee mug", k=4), api_key)
    direct = engine.search("coffee mug", 4)
    assert ([(i.product_id, i.title) for i in reply.items]
            == [(i["product_id"], i["title"]) for i in direct.items])
    assert [i.score for i in reply.items] == pytest.approx([i["score"] for i in direct.items])
    assert reply.model_version == engine.model_version and reply.preset_version == "default"


def test_k_defaults_to_ten_when_absent(stub, pb, api_key):
    assert len(call(stub.Similar, pb.SimilarRequest(product_id="P01"), api_key).items) == 7  # all others


# --- errors --------------------------------------------------------------------------------------

def test_an_unknown_product_is_not_found_with_rests_message(client, stub, pb, api_key):
    error = failure(stub.Similar, pb.SimilarRequest(product_id="NOPE"), api_key)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == client.get("/similar/NOPE").json()["detail"]


@pytest.mark.parametrize("method, request_of", [
    ("Search", lambda pb: pb.SearchRequest(q="mug")),
    ("Recommend", lambda pb: pb.RecommendRequest(user_id="u1")),
    ("Similar", lambda pb: pb.SimilarRequest(product_id="P01")),
])
def test_calls_without_a_key_or_with_a_wrong_one_are_unauthenticated(stub, pb, api_key, method, request_of):
    missing = failure(getattr(stub, method), request_of(pb), None)
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED and "x-api-key" in missing.details()
    wrong = api_key[:-1] + ("A" if api_key[-1] != "A" else "B")
    for bad in (wrong, "rk_nonsense", "", "x" * 300):
        error = failure(getattr(stub, method), request_of(pb), bad)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, bad
        assert ("not valid" in error.details()) if bad else ("x-api-key" in error.details())


@pytest.mark.parametrize("method, path, request_of, params", [
    ("Search", "/search", lambda pb: pb.SearchRequest(q="mug", k=0), {"q": "mug", "k": 0}),
    ("Search", "/search", lambda pb: pb.SearchRequest(q="mug", k=101), {"q": "mug", "k": 101}),
    ("Search", "/search", lambda pb: pb.SearchRequest(q="mug", k=-1), {"q": "mug", "k": -1}),
    ("Search", "/search", lambda pb: pb.SearchRequest(q="   "), {"q": "   "}),
    ("Search", "/search", lambda pb: pb.SearchRequest(q=""), {"q": ""}),
    ("Search", "/search", lambda pb: pb.SearchRequest(q="m" * 501), {"q": "m" * 501}),
    ("Search", "/search", lambda pb: pb.SearchRequest(q="mug", session="a\tb"),
     {"q": "mug", "session": "a\tb"}),
    ("Recommend", "/recommend/u1", lambda pb: pb.RecommendRequest(user_id="u1", k=101), {"k": 101}),
    ("Recommend", "/recommend/u1", lambda pb: pb.RecommendRequest(user_id="u1", history=["P01"] * 201),
     {"history": ["P01"] * 201}),
    ("Similar", "/similar/P01", lambda pb: pb.SimilarRequest(product_id="P01", k=0), {"k": 0}),
])
def test_out_of_range_parameters_are_invalid_with_rests_message(client, stub, pb, api_key, method, path,
                                                                  request_of, params):
    rest = client.get(path, params=params)
    assert rest.status_code == 422
    error = failure(getattr(stub, method), request_of(pb), api_key)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == rest.json()["detail"]


def test_an_empty_id_is_invalid(stub, pb, api_key):
    for method, request in (("Recommend", pb.RecommendRequest(user_id="")),
                            ("Similar", pb.SimilarRequest(product_id=""))):
        error = failure(getattr(stub, method), request, api_key)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "at least 1 character" in error.details()


# --- request metrics -----------------------------------------------------------------------------

def test_every_call_writes_the_rest_metrics_row(db_url, engine, api_key, pb):
    from recsys.serving.grpc_service import ServerThread
    from recsys.serving.protos import workbench_pb2_grpc as rpc

    # An interval far longer than the test: the rows come from the flush when the server stops.
    server = ServerThread(url=db_url, engine=engine, metrics_interval_s=3600, alerts_interval_s=None).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = rpc.WorkbenchStub(channel)
            reply = call(stub.Search, pb.SearchRequest(q="mug", k=2), api_key, "s0")
            assert reply.request_id == "s0"
            call(stub.Recommend, pb.RecommendRequest(user_id="u1", k=3), api_key, "r0")
            call(stub.Similar, pb.SimilarRequest(product_id="P05", k=2), api_key, "m0")
            for request_id, method, request, key in (
                    ("n0", stub.Similar, pb.SimilarRequest(product_id="NOPE"), api_key),
                    ("k0", stub.Search, pb.SearchRequest(q="mug", k=0), api_key),
                    ("bad", stub.Search, pb.SearchRequest(q="mug"), "no")):
                with pytest.raises(grpc.RpcError) as raised:
                    call(method, request, key, request_id)
                assert dict(raised.value.trailing_metadata())["x-request-id"] == request_id
            fresh = call(stub.Search.with_call, pb.SearchRequest(q="teapot"), api_key)
            made_up = dict(fresh[1].trailing_metadata())["x-request-id"]
            assert len(made_up) == 32 and fresh[0].request_id == made_up
            assert metric_rows(db_url).empty
    finally:
        server.stop()
    rows = metric_rows(db_url).set_index("request_id")
    assert sorted(rows.index) == sorted(["s0", "r0", "m0", "n0", "k0", "bad", made_up])
    search = rows.loc["s0"]
    assert search["endpoint"] == "/search" and search["status"] == 200 and search["result_count"] == 2
    assert search["retrieve_ms"] > 0 and search["latency_ms"] >= search["retrieve_ms"]
    assert search["model_version"] == engine.model_version and search["preset_version"] == "default"
    assert not pd.isna(search["api_key_id"])
    assert rows.loc["r0", "endpoint"] == "/recommend" and rows.loc["r0", "result_count"] == 3
    assert rows.loc["m0", "endpoint"] == "/similar" and rows.loc["m0", "status"] == 200
    assert rows.loc["n0", "status"] == 404 and rows.loc["k0", "status"] == 422
    assert rows.loc["bad", "status"] == 401 and pd.isna(rows.loc["bad", "api_key_id"])


def test_answers_are_remembered_for_the_events_that_follow(grpc_server, stub, pb, api_key, client):
    """A list answered over gRPC can be clicked by request id through POST /events, as over REST
    (the served list is kept by the same code)."""
    reply = call(stub.Search, pb.SearchRequest(q="mug", k=2, session="s-9"), api_key, "grpc-list-1")
    click = {"type": "click", "product_id": reply.items[0].product_id, "session": "s-9",
             "request_id": "grpc-list-1", "position": 1, "event_id": "grpc-click-1"}
    response = client.post("/events", json=[click])
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1


# --- python -m recsys serve-grpc -------------------------------------------------------------------

def test_serve_grpc_serves_the_active_state_and_flushes_at_sigterm(shop, pb):  # noqa: F811
    import os
    import signal
    import socket

    from recsys.serving.keys import issue_key
    from recsys.serving.protos import workbench_pb2_grpc as rpc

    key = issue_key("cli", actor="test", url=shop).key
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "recsys", "serve-grpc", "--port", str(port),
                                "--alerts-interval", "0", "--follow", "0"], cwd=ROOT,
                               env={**os.environ, "DATABASE_URL": shop}, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
            stub = rpc.WorkbenchStub(channel)
            reply = until(lambda: stub.Search(pb.SearchRequest(q="mug", k=2), metadata=[("x-api-key", key)],
                                              timeout=60), 120)
            assert reply.items[0].product_id in {"P1", "P2", "P7"} and reply.model_version
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    assert f"serving gRPC on 127.0.0.1:{port}" in errors
    assert list(metric_rows(shop)["request_id"]) == [reply.request_id]  # written at shutdown at the latest
