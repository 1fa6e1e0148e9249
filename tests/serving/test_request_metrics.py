"""Request metrics: one SQL row per API request, written in batches and flushed at shutdown."""

from __future__ import annotations

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import select


def metric_rows(url: str) -> pd.DataFrame:
    from db.engine import session_scope
    from db.models import RequestMetric

    with session_scope(url) as session:
        rows = session.scalars(select(RequestMetric).order_by(RequestMetric.id)).all()
        return pd.DataFrame([{c.name: getattr(r, c.name) for c in RequestMetric.__table__.columns}
                             for r in rows])


def test_every_api_request_is_written_and_flushed_at_shutdown(db_url, engine, api_key):
    from recsys.serving.app import create_app

    # An interval far longer than the test: the rows can only come from the shutdown flush.
    app = create_app(db_url, engine, metrics_interval_s=3600, alerts_interval_s=None, replica="web-1:8000")
    with TestClient(app, headers={"X-API-Key": api_key}) as client:
        for i in range(5):
            client.get("/search", params={"q": "mug", "k": 2}, headers={"X-Request-ID": f"s{i}"})
        client.get("/recommend/u1", params={"k": 3}, headers={"X-Request-ID": "r0"})
        client.get("/similar/NOPE", headers={"X-Request-ID": "n0"})
        client.get("/search", params={"q": "mug"}, headers={"X-Request-ID": "bad", "X-API-Key": "no"})
        client.get("/health")
        client.get("/metrics")
        assert metric_rows(db_url).empty
    rows = metric_rows(db_url).set_index("request_id")
    assert sorted(rows.index) == sorted(["s0", "s1", "s2", "s3", "s4", "r0", "n0", "bad"])
    search = rows.loc["s0"]
    assert search["endpoint"] == "/search" and search["status"] == 200
    assert search["result_count"] == 2 and search["latency_ms"] > 0
    assert search["retrieve_ms"] > 0 and search["latency_ms"] >= search["retrieve_ms"]
    assert search["preset_version"] == "default" and search["model_version"] == engine.model_version
    assert search["api_key_id"] is not None and not pd.isna(search["api_key_id"])
    assert rows.loc["r0", "endpoint"] == "/recommend" and rows.loc["r0", "result_count"] == 3
    assert rows.loc["n0", "status"] == 404 and rows.loc["n0", "result_count"] == 0
    assert rows.loc["bad", "status"] == 401 and pd.isna(rows.loc["bad", "api_key_id"])
    assert set(rows["replica"]) == {"web-1:8000"}  # every row names the process that answered


def test_rows_are_written_while_the_service_runs(db_url, engine, api_key):
    import time

    from recsys.serving.app import create_app

    app = create_app(db_url, engine, metrics_interval_s=0.05, alerts_interval_s=None)
    with TestClient(app, headers={"X-API-Key": api_key}) as client:
        client.get("/search", params={"q": "teapot"})
        deadline = time.monotonic() + 5
        while metric_rows(db_url).empty and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(metric_rows(db_url)) == 1
