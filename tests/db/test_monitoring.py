"""db.monitoring: request metrics bucketed over time, stages, and alert events by range."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd
import pytest

from db import monitoring
from recsys.services import monitoring as analytics
from db.engine import session_scope
from db.models import AlertEvent

T0 = datetime(2024, 5, 1, 12, 0, 0)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """(seconds after T0, endpoint, status, latency_ms, retrieve_ms, result_count) rows."""
    frame = pd.DataFrame(rows, columns=["second", "endpoint", "status", "latency_ms", "retrieve_ms",
                                        "result_count"])
    frame["at"] = T0 + pd.to_timedelta(frame.pop("second"), unit="s")
    for stage in monitoring.STAGES:
        frame[stage] = frame.get(stage, float("nan"))
    return frame.astype({"latency_ms": float})


def test_over_time_fills_every_bucket_and_computes_rates():
    frame = _frame([(1, "/search", 200, 10, 4, 5), (2, "/search", 200, 30, 4, 0),
                    (3, "/search", 500, 50, None, 0), (25, "/search", 200, 20, 4, 1)])
    table = analytics.over_time(frame, T0, T0 + timedelta(seconds=30), bucket_s=10)
    assert table["bucket"].tolist() == [T0 + timedelta(seconds=s) for s in (0, 10, 20, 30)]
    first = table.iloc[0]
    assert first["requests"] == 3 and first["qps"] == pytest.approx(0.3)
    assert first["p50_ms"] == 30 and first["error_rate"] == pytest.approx(1 / 3)
    assert first["empty_rate"] == pytest.approx(0.5)  # one of the two successes was empty
    gap = table.iloc[1]
    assert gap["requests"] == 0 and gap["qps"] == 0 and math.isnan(gap["p95_ms"])


def test_stage_breakdown_counts_the_unexplained_rest_as_other():
    frame = _frame([(1, "/search", 200, 10, 4, 5), (2, "/search", 200, 30, 8, 5)])
    stages = analytics.stage_breakdown(frame).set_index("stage")["mean_ms"]
    assert stages["retrieve"] == 6 and stages["encode"] == 0 and stages["other"] == 14


def test_summary_of_no_requests_is_undefined_not_zero():
    numbers = analytics.summarize(_frame([]), 60)
    assert numbers["requests"] == 0 and numbers["qps"] == 0
    assert math.isnan(numbers["p95_ms"]) and math.isnan(numbers["error_rate"])


def test_alert_events_overlapping_a_range_open_ones_first(db_url):
    with session_scope(db_url) as session:
        rules = [monitoring.create_alert_rule(session, name=name, metric="qps", threshold=1,
                                              severity=severity, actor="t")
                 for name, severity in (("old", "info"), ("open", "warning"), ("recent", "critical"))]
        session.add_all([
            AlertEvent(rule_id=rules[0].id, fired_at=T0, resolved_at=T0 + timedelta(minutes=5),
                       value=1, last_value=1),
            AlertEvent(rule_id=rules[1].id, fired_at=T0 + timedelta(minutes=1), value=1, last_value=1),
            AlertEvent(rule_id=rules[2].id, fired_at=T0 + timedelta(minutes=50), value=1, last_value=1,
                       resolved_at=T0 + timedelta(minutes=55)),
        ])
    with session_scope(db_url) as session:
        within = monitoring.alert_events(session, T0 + timedelta(minutes=30), T0 + timedelta(hours=1))
        assert within["rule"].tolist() == ["open", "recent"]
        assert within["firing"].tolist() == [True, False]
        assert monitoring.alert_events(session)["rule"].tolist() == ["open", "recent", "old"]
        assert monitoring.firing_alerts(session)["rule"].tolist() == ["open"]
        assert monitoring.alert_rules(session)["firing"].tolist() == [False, True, False]


def test_a_long_range_is_sampled_and_counts_scaled(db_url):
    rows = [{"at": T0 + timedelta(seconds=i), "endpoint": "/search", "status": 200, "latency_ms": 10.0,
             "result_count": 1} for i in range(1, 51)]
    with session_scope(db_url) as session:
        monitoring.insert_request_metrics(session, rows)
        full = monitoring.request_metrics(session, T0, T0 + timedelta(minutes=1))
        sampled = monitoring.request_metrics(session, T0, T0 + timedelta(minutes=1), max_rows=10)
    assert len(full) == 50 and full.attrs["sample_step"] == 1
    assert len(sampled) == 10 and sampled.attrs["sample_step"] == 5
    assert analytics.summarize(sampled, 60)["requests"] == 50
    assert analytics.by_endpoint(sampled, 60)["requests"].tolist() == [50]
    assert analytics.over_time(sampled, T0, T0 + timedelta(minutes=1), 60)["requests"].sum() == 50
