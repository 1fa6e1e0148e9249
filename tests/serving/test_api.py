"""The REST service's endpoints, answers and errors, through FastAPI's TestClient."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from recsys.serving.service import replica_name
from tests.conftest import pseudonym


def ids(response) -> list[str]:
    return [item["product_id"] for item in response.json()["items"]]


# --- search ---------------------------------------------------------------------------

def test_search_answers_with_items_scores_and_versions(client):
    response = client.get("/search", params={"q": "red mug", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert ids(response) == ["P01", "P02"]  # what matched "red mug": no padding with other products
    first = body["items"][0]
    assert first["title"] == "Red ceramic coffee mug" and first["score"] > 0
    assert first["explanation"] is None
    assert body["model_version"].endswith("@catalog-v1.events-v2")
    assert body["preset_version"] == "default"
    assert body["searched_query"] is None


def test_a_query_nothing_matches_gets_no_items(client):
    body = client.get("/search", params={"q": "xyzzy qqq", "k": 10}).json()
    assert body["items"] == []


def test_search_corrects_misspelled_words_and_says_so(client):
    body = client.get("/search", params={"q": "red ceramic mugg", "k": 1, "explain": True}).json()
    assert body["searched_query"] == "red ceramic mug"
    assert body["items"][0]["product_id"] == "P01"
    kinds = [reason["kind"] for reason in body["items"][0]["explanation"]["reasons"]]
    assert "spelling" in kinds


def test_search_explains_on_request(client):
    explanation = client.get("/search", params={"q": "red mug", "k": 1, "explain": True}).json()[
        "items"][0]["explanation"]
    assert {"reasons", "sources", "effects"} <= set(explanation)
    assert explanation["reasons"] and explanation["reasons"][0]["text"]
    assert set(explanation["sources"]) == {"bm25", "semantic"}
    assert explanation["sources"]["bm25"]["rank"] == 1


@pytest.mark.parametrize("params, where", [
    ({"q": ""}, "q"), ({"q": "   "}, "q"), ({}, "q"),
    ({"q": "mug", "k": 0}, "k"), ({"q": "mug", "k": 101}, "k"), ({"q": "mug", "k": "ten"}, "k"),
])
def test_search_rejects_bad_parameters_with_a_message(client, params, where):
    response = client.get("/search", params=params)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert response.json()["detail"].startswith(f"{where}:")


# --- keys -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/search?q=mug", "/recommend/u1", "/similar/P01"])
def test_requests_without_a_key_get_401(client, path):
    response = client.get(path, headers={"X-API-Key": ""})
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]


def test_a_wrong_key_gets_401(client, api_key):
    for wrong in (api_key[:-1] + ("A" if api_key[-1] != "A" else "B"), "rk_nonsense", "x" * 300):
        response = client.get("/search", params={"q": "mug"}, headers={"X-API-Key": wrong})
        assert response.status_code == 401
        assert "not valid" in response.json()["detail"]


def test_a_revoked_key_stops_working(db_url, engine, api_key):
    from db.models import ApiKey
    from db.engine import session_scope
    from recsys.serving.app import create_app
    from recsys.serving.keys import revoke_key

    app = create_app(db_url, engine, key_refresh_s=0, alerts_interval_s=None)
    with TestClient(app, headers={"X-API-Key": api_key}) as client:
        assert client.get("/search", params={"q": "mug"}).status_code == 200
        with session_scope(db_url) as session:
            key_id = session.scalars(select(ApiKey.id)).one()
        revoke_key(key_id, actor="test", url=db_url)
        assert client.get("/search", params={"q": "mug"}).status_code == 401


# --- recommendations --------------------------------------------------------------------

def test_recommend_a_known_user_leaves_out_what_they_have(client):
    response = client.get("/recommend/u1", params={"k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == pseudonym("u1") and body["fallback"] is None  # the shop's id is not answered
    assert not {"P01", "P03"} & set(ids(response))
    assert len(body["items"]) == 3


def test_an_unknown_user_without_history_gets_the_most_popular(client):
    body = client.get("/recommend/nobody", params={"k": 2}).json()
    assert body["fallback"] == "popular"
    assert body["items"][0]["product_id"] == "P01"


def test_history_of_the_session_updates_recommendations(client):
    response = client.get("/recommend/nobody", params={"k": 1, "history": ["P05"]})
    assert response.json()["fallback"] is None
    assert ids(response) == ["P06"]
    # Unknown products in the history are ignored: still the popular fallback.
    assert client.get("/recommend/nobody", params={"history": ["NOPE"]}).json()["fallback"] == "popular"


def test_recommend_explains_on_request(client):
    item = client.get("/recommend/u4", params={"k": 1, "explain": True}).json()["items"][0]
    assert item["explanation"]["reasons"]


def test_recommend_rejects_a_bad_k(client):
    assert client.get("/recommend/u1", params={"k": -1}).status_code == 422


# --- similar items ------------------------------------------------------------------------

def test_similar_items(client):
    response = client.get("/similar/P05", params={"k": 2})
    assert response.status_code == 200
    assert ids(response)[0] == "P06" and "P05" not in ids(response)


def test_similar_items_of_an_unknown_product_is_404(client):
    response = client.get("/similar/NOPE")
    assert response.status_code == 404
    assert "NOPE" in response.json()["detail"]


# --- health, metrics, schema ----------------------------------------------------------------

def test_health_needs_no_key(client):
    response = client.get("/health", headers={"X-API-Key": ""})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    body = response.json()
    assert body["presets"] == {scope: {"name": "default", "version": None, "label": "default"}
                               for scope in ("search", "recommendations")}
    assert body["data_versions"] == {"catalog": 1, "events": 2} and body["embedding_model"] == "embedding-base"
    assert body["following"] is False  # an engine handed to the app is served as it is
    assert body["replica"] == replica_name()  # $WORKBENCH_REPLICA, or the host name


def test_metrics_are_prometheus_text(client):
    client.get("/search", params={"q": "mug"})
    client.get("/search", params={"q": "mug"}, headers={"X-API-Key": "wrong"})
    response = client.get("/metrics", headers={"X-API-Key": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'recsys_requests_total{endpoint="/search",status="200"} 1.0' in text
    assert 'recsys_requests_total{endpoint="/search",status="401"} 1.0' in text
    assert 'recsys_request_latency_seconds_bucket{endpoint="/search",le="0.005"}' in text
    assert 'recsys_stage_latency_seconds_count{endpoint="/search",stage="retrieve"} 1.0' in text


def test_openapi_lists_the_endpoints_and_the_key(client):
    schema = client.get("/openapi.json").json()
    assert {"/search", "/recommend/{user_id}", "/similar/{product_id}", "/health",
            "/metrics"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert "401" in schema["paths"]["/search"]["get"]["responses"]
    assert "404" in schema["paths"]["/similar/{product_id}"]["get"]["responses"]
    assert client.get("/docs").status_code == 200


def test_the_request_id_is_echoed_in_the_header_and_the_body(client):
    response = client.get("/search", params={"q": "mug"}, headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123" and response.json()["request_id"] == "abc-123"
    fresh = client.get("/search", params={"q": "mug"})
    assert len(fresh.headers["x-request-id"]) == 32 and fresh.json()["request_id"] == fresh.headers["x-request-id"]
    for path in ("/recommend/u1", "/similar/P05"):
        answer = client.get(path, headers={"X-Request-ID": f"id{path}"})
        assert answer.json()["request_id"] == f"id{path}", answer.json()
