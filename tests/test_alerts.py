"""recsys.alerts: rules fire on injected request metrics and resolve when they clear."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from db import monitoring, queries
from db.engine import session_scope
from db.models import AlertEvent
from recsys.alerts import AlertScheduler, add_parser, evaluate_alert_rules, metric_value
from recsys.alerts import run as run_cli

T0 = datetime(2024, 5, 1, 12, 0, 0)


def requests(start: datetime, count: int, *, latency: float = 20.0, endpoint: str = "/search",
             status: int = 200, results: int = 10, spacing_s: float = 1.0) -> list[dict]:
    """`count` requests one `spacing_s` apart from `start`."""
    return [{"at": start + timedelta(seconds=i * spacing_s), "request_id": f"r{start:%H%M%S}-{i}",
             "endpoint": endpoint, "status": status, "latency_ms": latency, "retrieve_ms": latency / 2,
             "result_count": results} for i in range(count)]


def inject(url: str, rows: list[dict]) -> None:
    with session_scope(url) as session:
        monitoring.insert_request_metrics(session, rows)


def add_rule(url: str, **fields) -> int:
    fields = {"name": "slow search", "metric": "p95_latency_ms", "threshold": 200.0, "window_s": 60,
              "actor": "ops", **fields}
    with session_scope(url) as session:
        return monitoring.create_alert_rule(session, **fields).id


def evaluate(url: str, now: datetime) -> dict:
    with session_scope(url) as session:
        return {check.rule: check for check in evaluate_alert_rules(session, now=now)}


def events(url: str) -> list[AlertEvent]:
    with session_scope(url) as session:
        return list(session.scalars(select(AlertEvent).order_by(AlertEvent.id)))


def test_p95_latency_fires_on_slow_requests_and_resolves_after_fast_ones(db_url):
    fire_and_resolve(db_url)


@pytest.mark.postgres
def test_alerts_on_postgres(pg_url):
    fire_and_resolve(pg_url)
    add_rule(pg_url, name="errors", metric="error_rate", threshold=0.1)
    inject(pg_url, requests(T0 + timedelta(seconds=200), 5, status=503, results=0))
    check = evaluate(pg_url, T0 + timedelta(seconds=205))["errors"]
    assert check.state == "fired" and check.value == 1.0
    with session_scope(pg_url) as session:
        assert monitoring.alert_rules(session)["firing"].tolist() == [False, True]
        assert monitoring.alert_events(session)["rule"].tolist() == ["errors", "slow search"]


@pytest.mark.postgres
def test_two_replicas_evaluating_at_once_open_one_event(pg_url):
    """Every replica of the service evaluates the rules: the second waits for the first's transaction
    and sees its event (without the rules' row lock it opened a second one)."""
    import threading

    add_rule(pg_url)
    inject(pg_url, requests(T0, 30, latency=500.0))
    now = T0 + timedelta(seconds=30)
    second: dict = {}
    with session_scope(pg_url) as first:
        assert {check.state for check in evaluate_alert_rules(first, now=now)} == {"fired"}
        other = threading.Thread(target=lambda: second.update(evaluate(pg_url, now)))
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive()  # waiting for the first replica's transaction
    other.join(timeout=30)
    assert second["slow search"].state == "firing"
    assert [event.resolved_at for event in events(pg_url)] == [None]


def fire_and_resolve(db_url: str) -> None:
    add_rule(db_url)
    inject(db_url, requests(T0, 30, latency=20.0))
    assert evaluate(db_url, T0 + timedelta(seconds=30))["slow search"].state == "ok"

    inject(db_url, requests(T0 + timedelta(seconds=30), 10, latency=800.0))
    check = evaluate(db_url, T0 + timedelta(seconds=40))["slow search"]
    assert check.state == "fired" and check.value > 200
    [event] = events(db_url)
    assert event.fired_at == T0 + timedelta(seconds=40) and event.resolved_at is None
    assert "p95_latency_ms" in event.message and "/search" not in event.message

    inject(db_url, requests(T0 + timedelta(seconds=40), 10, latency=900.0))
    assert evaluate(db_url, T0 + timedelta(seconds=50))["slow search"].state == "firing"
    [event] = events(db_url)
    assert event.last_value > event.value

    # A minute of fast requests pushes the slow ones out of the 60 s window.
    inject(db_url, requests(T0 + timedelta(seconds=51), 60, latency=15.0))
    check = evaluate(db_url, T0 + timedelta(seconds=111))["slow search"]
    assert check.state == "resolved" and check.value == pytest.approx(15.0)
    [event] = events(db_url)
    assert event.resolved_at == T0 + timedelta(seconds=111)

    assert evaluate(db_url, T0 + timedelta(seconds=112))["slow search"].state == "ok"
    assert len(events(db_url)) == 1


def test_error_rate_counts_server_errors_only(db_url):
    add_rule(db_url, name="errors", metric="error_rate", threshold=0.1)
    inject(db_url, requests(T0, 8) + requests(T0, 2, status=404))
    assert evaluate(db_url, T0 + timedelta(seconds=10))["errors"].value == 0.0
    inject(db_url, requests(T0 + timedelta(seconds=10), 5, status=503))
    check = evaluate(db_url, T0 + timedelta(seconds=15))["errors"]
    assert check.state == "fired" and check.value == pytest.approx(5 / 15)


def test_empty_rate_is_a_share_of_successful_requests(db_url):
    add_rule(db_url, name="empty", metric="empty_rate", comparison=">=", threshold=0.5)
    inject(db_url, requests(T0, 2, results=0) + requests(T0, 2, results=5)
           + requests(T0, 4, status=500, results=0))
    check = evaluate(db_url, T0 + timedelta(seconds=5))["empty"]
    assert check.state == "fired" and check.value == pytest.approx(0.5)


def test_qps_fires_when_traffic_drops_and_no_data_resolves_latency_rules(db_url):
    add_rule(db_url, name="quiet", metric="qps", comparison="<", threshold=0.5)
    add_rule(db_url, name="slow", threshold=100.0)
    inject(db_url, requests(T0, 60, latency=500.0))
    checks = evaluate(db_url, T0 + timedelta(seconds=59))
    assert checks["quiet"].state == "ok" and checks["quiet"].value == pytest.approx(1.0)
    assert checks["slow"].state == "fired"

    checks = evaluate(db_url, T0 + timedelta(seconds=600))
    assert checks["quiet"].state == "fired" and checks["quiet"].value == 0.0
    assert checks["slow"].state == "resolved" and checks["slow"].value is None
    assert evaluate(db_url, T0 + timedelta(seconds=601))["slow"].state == "no data"


def test_endpoint_filter_and_disabled_rules(db_url):
    rule_id = add_rule(db_url, name="slow recommend", endpoint="/recommend")
    add_rule(db_url, name="off", enabled=False)
    inject(db_url, requests(T0, 10, latency=900.0, endpoint="/search")
           + requests(T0, 10, latency=10.0, endpoint="/recommend"))
    checks = evaluate(db_url, T0 + timedelta(seconds=10))
    assert set(checks) == {"slow recommend"} and checks["slow recommend"].state == "ok"

    inject(db_url, requests(T0 + timedelta(seconds=10), 10, latency=900.0, endpoint="/recommend"))
    assert evaluate(db_url, T0 + timedelta(seconds=20))["slow recommend"].state == "fired"
    with session_scope(db_url) as session:
        monitoring.set_alert_rule_enabled(session, rule_id, False, "ops")
    assert evaluate(db_url, T0 + timedelta(seconds=21)) == {}
    [event] = events(db_url)
    assert event.resolved_at is not None


def test_metric_value_of_an_empty_window(db_url):
    with session_scope(db_url) as session:
        assert metric_value(session, "p50_latency_ms", 60, now=T0) is None
        assert metric_value(session, "error_rate", 60, now=T0) is None
        assert metric_value(session, "qps", 60, now=T0) == 0.0


@pytest.mark.parametrize("fields,message", [
    ({"metric": "p99"}, "unknown metric 'p99'"),
    ({"comparison": "=="}, "unknown comparison"),
    ({"severity": "panic"}, "unknown severity"),
    ({"window_s": 0}, "window must be a positive"),
    ({"threshold": -1}, "threshold must be a number >= 0"),
    ({"metric": "error_rate", "threshold": 5}, "share between 0 and 1"),
    ({"name": "  "}, "needs a name"),
    ({"endpoint": "search"}, "a path such as /search"),
])
def test_invalid_rules_are_refused_with_the_reason(db_url, fields, message):
    with pytest.raises(monitoring.AlertRuleError, match=message):
        add_rule(db_url, **fields)


def test_rule_changes_are_audited_and_names_unique(db_url):
    rule_id = add_rule(db_url)
    with pytest.raises(monitoring.AlertRuleError, match="exists already"):
        add_rule(db_url)
    with session_scope(db_url) as session:
        monitoring.update_alert_rule(session, rule_id, "ops", threshold=300, severity="critical")
        with pytest.raises(monitoring.AlertRuleError, match="unknown comparison"):
            monitoring.update_alert_rule(session, rule_id, "ops", comparison="!")
        monitoring.set_alert_rule_enabled(session, rule_id, False, "ops")
    with session_scope(db_url) as session:
        rules = monitoring.alert_rules(session)
        assert rules.loc[0, ["threshold", "severity", "enabled"]].tolist() == [300.0, "critical", False]
        monitoring.delete_alert_rule(session, rule_id, "ops")
        with pytest.raises(LookupError):
            monitoring.delete_alert_rule(session, rule_id, "ops")
    with session_scope(db_url) as session:
        assert monitoring.alert_rules(session).empty
        log = queries.audit_log(session)
    assert list(log["action"])[:4] == ["delete_alert_rule", "disable_alert_rule", "update_alert_rule",
                                       "create_alert_rule"]
    assert log.loc[2, "details"] == {"threshold": 300.0, "severity": "critical"}


def test_scheduler_evaluates_in_the_background_and_stops(db_url):
    add_rule(db_url, name="quiet", metric="qps", comparison="<", threshold=1.0)
    scheduler = AlertScheduler(interval_s=0.05, url=db_url).start()
    try:
        deadline = time.time() + 10
        while scheduler.evaluations < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert scheduler.running and scheduler.evaluations >= 2 and scheduler.last_error is None
    finally:
        scheduler.stop()
    assert not scheduler.running
    assert [check.state for check in scheduler.last_checks] == ["firing"]
    assert len(events(db_url)) == 1
    with pytest.raises(ValueError):
        AlertScheduler(interval_s=0)


def test_cli_evaluate_and_list(db_url, capsys):
    import argparse

    add_rule(db_url, name="quiet", metric="qps", comparison="<", threshold=1.0)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    assert run_cli(parser.parse_args(["alerts", "evaluate"])) == 0
    assert json.loads(capsys.readouterr().out)["checks"][0]["state"] == "fired"
    assert run_cli(parser.parse_args(["alerts", "list"])) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["rules"][0]["firing"] is True
    assert listed["events"][0]["rule"] == "quiet" and listed["events"][0]["resolved_at"] is None
