"""Charts, alert list and rule editor of the Monitoring page, and the sidebar's firing-alerts notice."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta, timezone

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from recsys.accounts import Identity
from recsys.services import database_url
from recsys.services import monitoring
from recsys.services.monitoring import ALERT_METRICS, ALERT_SEVERITIES
from ui.text import md

RANGES = {"Last 15 minutes": 900, "Last hour": 3600, "Last 24 hours": 86400, "Last 7 days": 7 * 86400,
          "Custom": None}
SEVERITY_COLOURS = {"info": "#1f77b4", "warning": "#ff7f0e", "critical": "#d62728"}
METRIC_HELP = {"p95_latency_ms": "ms", "p50_latency_ms": "ms", "error_rate": "share 0-1 of 5xx answers",
               "empty_rate": "share 0-1 of successful answers without results", "qps": "requests per second"}
NO_METRICS = ("No request metrics yet. Start the service with `python -m recsys serve` and send it "
              "requests (a load test, or the Serving page); each request is recorded here within seconds.")


def range_picker() -> tuple[str, tuple[datetime, datetime] | None]:
    """The chosen range: a relative one (its label) or a custom (start, end), both UTC."""
    choice = st.selectbox("Time range", list(RANGES), index=1, key="mon_range")
    if RANGES[choice] is not None:
        return choice, None
    today = utc_now().date()
    left, right = st.columns(2)
    days = left.date_input("Days (UTC)", (today - timedelta(days=1), today), key="mon_days")
    hours = right.slider("Hours (UTC)", time(0), time(23, 59), (time(0), time(23, 59)), key="mon_hours")
    first, last = (days[0], days[-1]) if isinstance(days, (tuple, list)) and days else (today, today)
    return choice, (datetime.combine(first, hours[0]), datetime.combine(last, hours[1]))


def resolve_range(choice: str, custom: tuple[datetime, datetime] | None) -> tuple[datetime, datetime]:
    if custom is not None:
        return custom
    end = utc_now()
    return end - timedelta(seconds=RANGES[choice]), end


def utc_now() -> datetime:
    """Now in UTC without a time zone, as the service records its requests."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def load(url: str, start: datetime, end: datetime, replica: str | None = None) -> dict:
    """Everything the charts need for one range (of one replica, or all)."""
    return monitoring.load(url, start, end, replica)


ALL_REPLICAS = "All replicas"


def load_filtered(url: str, start: datetime, end: datetime) -> dict:
    """`load` of the replica chosen in the Replica box (all of them by default), then the box itself:
    the replicas that answered in the range (the service processes behind the load balancer, by
    their WORKBENCH_REPLICA names). A replica without requests in a new range falls back to all."""
    chosen = st.session_state.get("mon_replica", ALL_REPLICAS)
    data = load(url, start, end, None if chosen == ALL_REPLICAS else chosen)
    if chosen != ALL_REPLICAS and chosen not in data["replicas"]:
        st.session_state["mon_replica"] = ALL_REPLICAS
        data = load(url, start, end)
    st.selectbox("Replica", [ALL_REPLICAS, *data["replicas"]], key="mon_replica",
                 help="the service process that answered (WORKBENCH_REPLICA, default host:port)")
    return data


# --- figures -----------------------------------------------------------------------

def mark_alerts(figure: go.Figure, events: pd.DataFrame, start: datetime, end: datetime) -> go.Figure:
    """Shade each alert event from firing to resolving (or the range's end), named by its rule."""
    for event in events.itertuples():
        colour = SEVERITY_COLOURS.get(event.severity, "#7f7f7f")
        fired = max(event.fired_at, start)
        resolved = end if pd.isna(event.resolved_at) else min(event.resolved_at, end)
        figure.add_vrect(x0=fired, x1=resolved, fillcolor=colour, opacity=0.12, line_width=0)
        figure.add_vline(x=fired, line_color=colour, line_dash="dot")
        figure.add_annotation(x=fired, y=1, yref="paper", text=event.rule, showarrow=False,
                              xanchor="left", yanchor="top", font={"color": colour, "size": 11})
    return figure


def latency_figure(per_bucket: pd.DataFrame) -> go.Figure:
    long = per_bucket.melt(id_vars=["bucket", "endpoint"], value_vars=["p50_ms", "p95_ms", "p99_ms"],
                           var_name="percentile", value_name="ms")
    long["percentile"] = long["percentile"].str.removesuffix("_ms")
    # Markers: a window whose requests all fall into one bucket is one point, which a line alone hides.
    return px.line(long, x="bucket", y="ms", color="endpoint", line_dash="percentile", markers=True,
                   title="Latency percentiles (ms)", labels={"bucket": "time (UTC)"})


def stage_figure(stages: pd.DataFrame) -> go.Figure:
    return px.bar(stages, x="endpoint", y="mean_ms", color="stage", barmode="stack",
                  title="Mean time per stage (ms)", labels={"mean_ms": "ms"})


def rate_figure(per_bucket: pd.DataFrame, column: str, title: str) -> go.Figure:
    figure = px.line(per_bucket, x="bucket", y=column, color="endpoint", title=title, markers=True,
                     labels={"bucket": "time (UTC)", column: ""})
    if column != "qps":
        figure.update_yaxes(tickformat=".0%", rangemode="tozero")
    return figure


# --- page sections -------------------------------------------------------------------

def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f} ms"


def _share(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def summary(frame: pd.DataFrame, span_s: float, firing: int) -> None:
    numbers = monitoring.summarize(frame, span_s)
    columns = st.columns(8)
    columns[0].metric("Requests", f"{numbers['requests']:,}")
    columns[1].metric("QPS", f"{numbers['qps']:,.2f}")
    columns[2].metric("p50", _ms(numbers["p50_ms"]))
    columns[3].metric("p95", _ms(numbers["p95_ms"]))
    columns[4].metric("p99", _ms(numbers["p99_ms"]))
    columns[5].metric("Errors (5xx)", _share(numbers["error_rate"]))
    columns[6].metric("Empty results", _share(numbers["empty_rate"]))
    columns[7].metric("Alerts firing", firing)


def charts(data: dict, start: datetime, end: datetime) -> None:
    """Summary numbers, then every chart of the range, with alert events marked."""
    frame, events = data["frame"], data["events"]
    span_s = max((end - start).total_seconds(), 1.0)
    summary(frame, span_s, int(events["firing"].sum()))
    if frame.empty:
        latest = data["latest"]
        st.info(NO_METRICS if latest is None else
                f"No requests in this range; the latest was at {latest:%Y-%m-%d %H:%M:%S} UTC.")
        return
    bucket_s = monitoring.bucket_seconds(span_s)
    per_bucket = monitoring.over_time(frame, start, end, bucket_s)
    step = frame.attrs.get("sample_step", 1)
    sampled = f"; estimated from every {step}th request" if step > 1 else ""
    st.caption(f"{start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC, in {bucket_s} s buckets"
               f"{sampled}; shaded: alert events.")
    percent = {"error_rate": st.column_config.NumberColumn(format="percent"),
               "empty_rate": st.column_config.NumberColumn(format="percent")}
    st.dataframe(monitoring.by_endpoint(frame, span_s), hide_index=True, key="mon_endpoints",
                 column_config=percent)
    st.caption("Per replica (each service process behind the load balancer):")
    st.dataframe(monitoring.by_replica(frame, span_s), hide_index=True, key="mon_replicas",
                 column_config=percent)
    left, right = st.columns(2)
    left.plotly_chart(mark_alerts(latency_figure(per_bucket), events, start, end), key="mon_latency")
    right.plotly_chart(stage_figure(monitoring.stage_breakdown(frame)), key="mon_stages")
    left.plotly_chart(mark_alerts(rate_figure(per_bucket, "qps", "Requests per second"), events,
                                  start, end), key="mon_qps")
    right.plotly_chart(mark_alerts(rate_figure(per_bucket, "error_rate", "Server-error rate (5xx)"),
                                   events, start, end), key="mon_errors")
    left.plotly_chart(mark_alerts(rate_figure(per_bucket, "empty_rate", "Empty-result rate"), events,
                                  start, end), key="mon_empty")


def alert_list(url: str) -> None:
    """Firing alerts first, one line each by severity, then the history."""
    events = monitoring.alert_events(url, limit=200)
    if events.empty:
        st.caption("No alert has fired yet.")
        return
    for event in events[events["firing"]].itertuples():
        show = st.error if event.severity == "critical" else st.warning
        show(f"**{md(event.rule)}** firing since {event.fired_at:%Y-%m-%d %H:%M:%S} UTC: {md(event.message)} "
             f"(now {event.last_value:,.3g})")
    st.dataframe(events[["rule", "severity", "firing", "fired_at", "resolved_at", "value", "last_value",
                         "message"]], hide_index=True, key="mon_alert_history")


def rule_editor(who: Identity, url: str) -> None:
    """The rules table; for accounts with "settings", a form to add rules and enable/disable/delete."""
    rules = monitoring.alert_rules(url)
    if rules.empty:
        st.caption("No alert rules yet.")
    else:
        st.dataframe(rules.drop(columns=["id"]), hide_index=True, key="rule_table")
    if not who.can("settings"):
        st.caption("Your role can look at alert rules; operators and admins edit them.")
        return
    with st.form("rule_form", clear_on_submit=True):
        st.markdown("**Add a rule**")
        first = st.columns(3)
        name = first[0].text_input("Name", key="rule_name", placeholder="slow search")
        metric = first[1].selectbox("Metric", ALERT_METRICS, key="rule_metric",
                                    help="; ".join(f"{m}: {h}" for m, h in METRIC_HELP.items()))
        endpoint = first[2].text_input("Endpoint (empty: every endpoint)", key="rule_endpoint",
                                       placeholder="/search")
        second = st.columns(4)
        comparison = second[0].selectbox("Comparison", monitoring.COMPARISONS, key="rule_comparison")
        threshold = second[1].number_input("Threshold", min_value=0.0, value=250.0, key="rule_threshold")
        window_s = second[2].number_input("Window (s)", min_value=1, value=300, step=30, key="rule_window")
        severity = second[3].selectbox("Severity", ALERT_SEVERITIES, index=1, key="rule_severity")
        if st.form_submit_button("Add rule"):
            try:
                added = monitoring.create_rule(url, who.username, name=name, metric=metric, endpoint=endpoint,
                                               comparison=comparison, threshold=threshold,
                                               window_s=int(window_s), severity=severity)
                st.session_state["rule_notice"] = f"Added the rule {md(repr(added))}."
                st.rerun()
            except monitoring.AlertRuleError as error:
                st.error(f"The rule was not added: {md(error)}.")
    if notice := st.session_state.pop("rule_notice", None):
        st.success(notice)
    if rules.empty:
        return
    labels = dict(zip(rules["id"], rules["name"]))
    left, middle, right, last = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
    chosen = left.selectbox("Rule", list(labels), format_func=labels.get, key="rule_selected")
    enabled = bool(rules.loc[rules["id"] == chosen, "enabled"].iloc[0])
    toggle = middle.button("Disable" if enabled else "Enable", key="rule_toggle")
    remove = right.button("Delete", key="rule_delete")
    evaluate = last.button("Evaluate now", key="rule_evaluate", help="evaluate every enabled rule once")
    if toggle or remove or evaluate:
        if toggle:
            monitoring.set_rule_enabled(url, int(chosen), not enabled, who.username)
        elif remove:
            monitoring.delete_rule(url, int(chosen), who.username)
        else:
            monitoring.evaluate_rules(url)
        st.rerun()


def firing_alerts_notice(url: str | None = None) -> None:
    """A compact sidebar warning while alerts fire; refreshes itself every 30 s."""
    with st.sidebar:
        _notice(url or database_url())


@st.fragment(run_every=30)
def _notice(url: str) -> None:
    firing = monitoring.firing(url)
    if not firing.empty:
        names = ", ".join(map(md, firing["rule"].head(3))) + (" ..." if len(firing) > 3 else "")
        st.warning(f"{len(firing)} alert{'s' if len(firing) > 1 else ''} firing: {names}",
                   icon=":material/notifications_active:")
