"""pages/monitoring.py: empty state, charts of injected request metrics, alerts, the rule editor."""

from __future__ import annotations

from datetime import timedelta

from streamlit.testing.v1 import AppTest

from db import monitoring
from db.engine import session_scope
from db.models import utc_now
from recsys.alerts import evaluate_alert_rules
from tests.pages.conftest import app_as

PAGE = "pages/monitoring.py"


def inject_traffic(minutes: int = 10) -> None:
    """Two endpoints, a request on each every 2 s; every 10th a 503, every other 5th empty (11.1%)."""
    now = utc_now()
    rows = [{"at": now - timedelta(seconds=2 * i), "request_id": f"{endpoint}-{i}", "endpoint": endpoint,
             "status": 503 if i % 10 == 0 else 200, "latency_ms": 20.0 + i % 30, "encode_ms": 5.0,
             "retrieve_ms": 8.0, "fuse_ms": 1.0, "rules_ms": 0.5, "rerank_ms": None,
             "result_count": 0 if i % 5 == 0 else 10}
            for i in range(minutes * 30) for endpoint in ("/search", "/recommend")]
    with session_scope() as session:
        monitoring.insert_request_metrics(session, rows)


def table(app, column: str):
    """The dataframe with this column (AppTest does not expose a dataframe's key)."""
    return next(d.value for d in app.dataframe if column in d.value.columns)


def metrics(app) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_empty_state_tells_how_to_start_the_service(shop):
    app = app_as("viewer", PAGE)
    assert not app.exception
    assert any("python -m recsys serve" in i.value for i in app.info)
    assert metrics(app)["Requests"] == "0" and not app.get("plotly_chart")


def test_charts_and_a_firing_alert_marked_on_them(shop):
    inject_traffic()
    with session_scope() as session:
        monitoring.create_alert_rule(session, name="errors on search", metric="error_rate",
                                     endpoint="/search", threshold=0.05, window_s=300, actor="test")
        [check] = evaluate_alert_rules(session)
    assert check.state == "fired"
    app = app_as("viewer", PAGE)
    assert not app.exception
    shown = metrics(app)
    assert shown["Requests"] == "600" and shown["Alerts firing"] == "1"
    assert shown["Errors (5xx)"] == "10.0%" and shown["Empty results"] == "11.1%"
    assert len(app.get("plotly_chart")) == 5
    assert any("errors on search" in w.value for w in app.warning)
    history = table(app, "resolved_at")
    assert history["rule"].tolist() == ["errors on search"] and history["firing"].tolist() == [True]
    per_endpoint = table(app, "p99_ms")
    assert sorted(per_endpoint["endpoint"]) == ["/recommend", "/search"]

    # Over 15 minutes every chart still renders; an old custom range has no requests.
    app.selectbox(key="mon_range").select("Last 15 minutes").run()
    assert not app.exception and len(app.get("plotly_chart")) == 5
    app.selectbox(key="mon_range").select("Custom").run()
    app.date_input(key="mon_days").set_value((utc_now().date() - timedelta(days=30),
                                              utc_now().date() - timedelta(days=29))).run()
    assert not app.exception
    assert any("No requests in this range" in i.value for i in app.info)


def test_operator_adds_disables_and_deletes_a_rule(shop):
    app = app_as("operator", PAGE)
    app.text_input(key="rule_name").input("slow search")
    app.selectbox(key="rule_metric").select("p95_latency_ms")
    app.text_input(key="rule_endpoint").input("/search")
    app.number_input(key="rule_threshold").set_value(300.0)
    app.number_input(key="rule_window").set_value(60)
    app.selectbox(key="rule_severity").select("critical")
    next(b for b in app.button if b.label == "Add rule").click().run()
    assert not app.exception
    assert [s.value for s in app.success] == ["Added the rule 'slow search'."]
    rules = table(app, "window_s")
    assert rules[["name", "metric", "endpoint", "window_s", "threshold", "severity", "enabled"]] \
        .iloc[0].tolist() == ["slow search", "p95_latency_ms", "/search", 60, 300.0, "critical", True]

    app.text_input(key="rule_name").input("bad")
    app.selectbox(key="rule_metric").select("error_rate")
    app.number_input(key="rule_threshold").set_value(5.0)
    next(b for b in app.button if b.label == "Add rule").click().run()
    assert any("share between 0 and 1" in e.value for e in app.error)
    assert len(table(app, "window_s")) == 1

    app.button(key="rule_evaluate").click().run()
    assert not app.exception and not app.warning  # no requests: nothing fires

    app.button(key="rule_toggle").click().run()
    assert table(app, "window_s")["enabled"].tolist() == [False]
    assert app.button(key="rule_toggle").label == "Enable"
    app.button(key="rule_delete").click().run()
    assert not app.exception
    assert any("No alert rules yet" in c.value for c in app.caption)


def test_viewer_sees_rules_but_no_editor(shop):
    with session_scope() as session:
        monitoring.create_alert_rule(session, name="quiet", metric="qps", comparison="<", threshold=1,
                                     actor="test")
    app = app_as("viewer", PAGE)
    assert not app.exception
    assert table(app, "window_s")["name"].tolist() == ["quiet"]
    assert not [t for t in app.text_input if t.key == "rule_name"]
    assert not [b for b in app.button if b.key in ("rule_toggle", "rule_delete")]
    assert any("operators and admins edit them" in c.value for c in app.caption)


def _notice_app():
    from ui.monitoring import firing_alerts_notice

    firing_alerts_notice()


def test_firing_alerts_show_in_the_sidebar(shop):
    app = AppTest.from_function(_notice_app, default_timeout=30).run()
    assert not app.sidebar.warning
    with session_scope() as session:
        monitoring.create_alert_rule(session, name="quiet", metric="qps", comparison="<", threshold=1,
                                     actor="test")
        evaluate_alert_rules(session)
    app.run()
    assert [w.value for w in app.sidebar.warning] == ["1 alert firing: quiet"]


def test_one_bucket_of_requests_is_drawn_as_points_not_an_invisible_line():
    import pandas as pd

    from ui.monitoring import latency_figure, rate_figure

    one = pd.DataFrame({"bucket": [pd.Timestamp("2026-11-29 10:00")], "endpoint": ["search"], "p50_ms": [12.0],
                        "p95_ms": [20.0], "p99_ms": [25.0], "qps": [3.0]})
    for figure in (latency_figure(one), rate_figure(one, "qps", "Requests per second")):
        assert figure.data and all("markers" in trace.mode for trace in figure.data)


def test_requests_per_replica_and_the_replica_filter(shop):
    """Two replicas behind a load balancer and rows from before replicas were named: one line each,
    and choosing a replica shows its requests alone."""
    now = utc_now()
    rows = [{"at": now - timedelta(seconds=i), "request_id": f"r-{i}", "endpoint": "/search",
             "status": 503 if replica == "web-2:8000" and i % 4 == 0 else 200,
             "latency_ms": 10.0 if replica == "web-1:8000" else 40.0, "result_count": 10, "replica": replica}
            for i in range(60) for replica in ("web-1:8000", "web-2:8000")]
    rows += [{"at": now - timedelta(seconds=i), "request_id": f"old-{i}", "endpoint": "/search",
              "status": 200, "latency_ms": 5.0, "result_count": 10} for i in range(6)]
    with session_scope() as session:
        monitoring.insert_request_metrics(session, rows)
    app = app_as("viewer", PAGE)
    assert not app.exception
    per_replica = table(app, "replica").set_index("replica")
    assert per_replica["requests"].to_dict() == {"web-1:8000": 60, "web-2:8000": 60, "(unnamed)": 6}
    assert per_replica.loc["web-1:8000", "p50_ms"] == 10.0 and per_replica.loc["web-2:8000", "p95_ms"] == 40.0
    assert per_replica["error_rate"].to_dict() == {"web-1:8000": 0.0, "web-2:8000": 0.25, "(unnamed)": 0.0}
    assert app.selectbox(key="mon_replica").options == ["All replicas", "web-1:8000", "web-2:8000"]
    assert metrics(app)["Requests"] == "126"

    app.selectbox(key="mon_replica").select("web-2:8000").run()
    assert not app.exception
    assert metrics(app)["Requests"] == "60" and metrics(app)["Errors (5xx)"] == "25.0%"
    assert table(app, "replica")["replica"].tolist() == ["web-2:8000"]
