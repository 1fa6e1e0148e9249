"""Reads and writes of the serving metrics and alerts tables.

Like `db.queries`, functions take a Session and leave committing to the caller.
Times are UTC without a time zone, as the service writes them. SQLite has no
percentile function, so latency percentiles are computed in pandas from the
rows of the requested range, in `recsys.services.monitoring`.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.orm import Session

from db.models import ALERT_METRICS, ALERT_SEVERITIES, AlertEvent, AlertRule, RequestMetric, utc_now
from db.queries import audit

STAGES = ("encode_ms", "retrieve_ms", "fuse_ms", "rules_ms", "rerank_ms")
METRIC_COLUMNS = ("at", "endpoint", "status", "latency_ms", *STAGES, "result_count", "replica")
COMPARISONS = (">", "<", ">=", "<=")
RATE_METRICS = ("error_rate", "empty_rate")
MAX_ROWS = 200_000  # requests read for one chart range; more are sampled (`request_metrics`)


def insert_request_metrics(session: Session, rows: list[dict]) -> int:
    """Insert many request-metric rows at once (dicts keyed by `RequestMetric` column names)."""
    if rows:
        session.execute(insert(RequestMetric), rows)
    return len(rows)


# --- request metrics ---------------------------------------------------------------

def _in_range(query, start: datetime, end: datetime, endpoint: str | None, replica: str | None = None):
    query = query.where(RequestMetric.at > start, RequestMetric.at <= end)
    if replica:
        query = query.where(RequestMetric.replica == replica)
    return query.where(RequestMetric.endpoint == endpoint) if endpoint else query


def request_metrics(session: Session, start: datetime, end: datetime, endpoint: str | None = None,
                    max_rows: int = MAX_ROWS, replica: str | None = None) -> pd.DataFrame:
    """The requests with `start < at <= end` (of one endpoint and one replica, or all), oldest first;
    "replica" is the service process that answered (None for rows written before replicas were named).

    Over `max_rows` requests, only every n-th (by id) is read, so that a long range
    of a load test still charts in a second or two; n is `frame.attrs["sample_step"]`,
    and `summarize` and `over_time` scale counts by it (percentiles and rates are
    then estimates from the sample).
    """
    total = session.scalar(_in_range(select(func.count()), start, end, endpoint, replica))
    step = max(1, math.ceil(total / max_rows))
    query = _in_range(select(*[getattr(RequestMetric, name) for name in METRIC_COLUMNS]),
                      start, end, endpoint, replica)
    if step > 1:
        query = query.where(RequestMetric.id % step == 0)
    frame = pd.DataFrame(session.execute(query.order_by(RequestMetric.at)).all(),
                         columns=list(METRIC_COLUMNS))
    frame["at"] = pd.to_datetime(frame["at"])
    for name in ("latency_ms", *STAGES):
        frame[name] = frame[name].astype(float)
    frame.attrs["sample_step"] = step
    return frame


def latest_request_at(session: Session) -> datetime | None:
    return session.scalar(select(func.max(RequestMetric.at)))


def replicas(session: Session, start: datetime, end: datetime) -> list[str]:
    """The names of the replicas that recorded requests with `start < at <= end` (index on replica)."""
    query = _in_range(select(RequestMetric.replica).distinct(), start, end, None)
    return sorted(name for name in session.scalars(query.where(RequestMetric.replica.is_not(None))))


def endpoints(session: Session) -> list[str]:
    return list(session.scalars(select(RequestMetric.endpoint).distinct().order_by(RequestMetric.endpoint)))


def window_latencies(session: Session, start: datetime, end: datetime,
                     endpoint: str | None = None) -> np.ndarray:
    """Latency (ms) of every request in the window, for percentiles."""
    return np.asarray(session.scalars(_in_range(select(RequestMetric.latency_ms), start, end,
                                                endpoint)).all(), dtype=float)


def window_counts(session: Session, start: datetime, end: datetime,
                  endpoint: str | None = None) -> dict[str, int]:
    """Requests, server errors (status >= 500), successes (status < 400) and empty successes."""
    success = RequestMetric.status < 400
    query = select(
        func.count(),
        func.sum(case((RequestMetric.status >= 500, 1), else_=0)),
        func.sum(case((success, 1), else_=0)),
        func.sum(case((success & (RequestMetric.result_count == 0), 1), else_=0)))
    requests, errors, successes, empty = session.execute(_in_range(query, start, end, endpoint)).one()
    return {"requests": int(requests or 0), "server_errors": int(errors or 0),
            "successes": int(successes or 0), "empty": int(empty or 0)}


# --- alert rules ---------------------------------------------------------------------

class AlertRuleError(ValueError):
    """An alert rule a user asked for is invalid; the message says which field and why."""


RULE_FIELDS = ("name", "metric", "endpoint", "window_s", "comparison", "threshold", "severity", "enabled")


def _validated(fields: dict) -> dict:
    name = str(fields.get("name") or "").strip()
    if not name:
        raise AlertRuleError("the rule needs a name")
    if len(name) > 128:
        raise AlertRuleError("the name is longer than 128 characters")
    metric = fields.get("metric")
    if metric not in ALERT_METRICS:
        raise AlertRuleError(f"unknown metric {metric!r}; use one of {', '.join(ALERT_METRICS)}")
    comparison = fields.get("comparison")
    if comparison not in COMPARISONS:
        raise AlertRuleError(f"unknown comparison {comparison!r}; use one of {', '.join(COMPARISONS)}")
    severity = fields.get("severity")
    if severity not in ALERT_SEVERITIES:
        raise AlertRuleError(f"unknown severity {severity!r}; use one of {', '.join(ALERT_SEVERITIES)}")
    try:
        window_s, threshold = int(fields.get("window_s")), float(fields.get("threshold"))
    except (TypeError, ValueError):
        raise AlertRuleError("the window (seconds) and the threshold must be numbers") from None
    if window_s <= 0:
        raise AlertRuleError(f"the window must be a positive number of seconds; got {window_s}")
    if not math.isfinite(threshold) or threshold < 0:
        raise AlertRuleError(f"the threshold must be a number >= 0; got {threshold}")
    if metric in RATE_METRICS and threshold > 1:
        raise AlertRuleError(f"{metric} is a share between 0 and 1 (0.05 is 5%); got {threshold}")
    endpoint = str(fields.get("endpoint") or "").strip() or None
    if endpoint and not endpoint.startswith("/"):
        raise AlertRuleError(f"an endpoint is a path such as /search; got {endpoint!r}")
    return {"name": name, "metric": metric, "endpoint": endpoint, "window_s": window_s,
            "comparison": comparison, "threshold": threshold, "severity": severity,
            "enabled": bool(fields.get("enabled", True))}


def _check_unique_name(session: Session, name: str, rule_id: int | None = None) -> None:
    query = select(AlertRule.id).where(AlertRule.name == name)
    if rule_id is not None:
        query = query.where(AlertRule.id != rule_id)
    if session.scalar(query) is not None:
        raise AlertRuleError(f"a rule named {name!r} exists already; choose another name")


def create_alert_rule(session: Session, *, name: str, metric: str, threshold: float, actor: str,
                      window_s: int = 300, comparison: str = ">", severity: str = "warning",
                      endpoint: str | None = None, enabled: bool = True) -> AlertRule:
    """Add a rule, e.g. p95_latency_ms > 250 over 60 s on /search; raises AlertRuleError."""
    fields = _validated({"name": name, "metric": metric, "threshold": threshold, "window_s": window_s,
                         "comparison": comparison, "severity": severity, "endpoint": endpoint,
                         "enabled": enabled})
    _check_unique_name(session, fields["name"])
    rule = AlertRule(**fields, created_by=actor)
    session.add(rule)
    session.flush()
    audit(session, actor, "create_alert_rule", rule.name, **fields)
    return rule


def _rule(session: Session, rule_id: int) -> AlertRule:
    rule = session.get(AlertRule, rule_id)
    if rule is None:
        raise LookupError(f"there is no alert rule {rule_id}")
    return rule


def update_alert_rule(session: Session, rule_id: int, actor: str, **changes) -> AlertRule:
    """Change some of a rule's fields (RULE_FIELDS); the result is validated as a whole."""
    unknown = set(changes) - set(RULE_FIELDS)
    if unknown:
        raise AlertRuleError(f"unknown field(s) {', '.join(sorted(unknown))}; use {', '.join(RULE_FIELDS)}")
    rule = _rule(session, rule_id)
    fields = _validated({**{f: getattr(rule, f) for f in RULE_FIELDS}, **changes})
    _check_unique_name(session, fields["name"], rule.id)
    changed = {f: v for f, v in fields.items() if getattr(rule, f) != v}
    for field, value in changed.items():
        setattr(rule, field, value)
    session.flush()
    audit(session, actor, "update_alert_rule", rule.name, **changed)
    return rule


def set_alert_rule_enabled(session: Session, rule_id: int, enabled: bool, actor: str) -> AlertRule:
    """Enable or disable a rule; disabling resolves its open event, since nothing watches it."""
    rule = _rule(session, rule_id)
    rule.enabled = enabled
    if not enabled:
        event = open_alert_event(session, rule.id)
        if event is not None:
            event.resolved_at = utc_now()
    session.flush()
    audit(session, actor, "enable_alert_rule" if enabled else "disable_alert_rule", rule.name)
    return rule


def delete_alert_rule(session: Session, rule_id: int, actor: str) -> None:
    """Delete a rule with its events."""
    rule = _rule(session, rule_id)
    name = rule.name
    session.execute(delete(AlertEvent).where(AlertEvent.rule_id == rule.id))
    session.delete(rule)
    session.flush()
    audit(session, actor, "delete_alert_rule", name)


def enabled_alert_rules(session: Session) -> list[AlertRule]:
    """The enabled rules, locked until the session commits (PostgreSQL: SELECT ... FOR UPDATE; SQLite
    has one writer anyway): replicas of the service evaluating at the same moment take turns, so the
    second sees the event the first opened rather than opening another."""
    return list(session.scalars(select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
                                .with_for_update()))


def alert_rules(session: Session) -> pd.DataFrame:
    """Every rule, oldest first, with `firing` true when it has an open event."""
    firing = select(AlertEvent.id).where(AlertEvent.rule_id == AlertRule.id,
                                         AlertEvent.resolved_at.is_(None)).exists()
    columns = ["id", "name", "metric", "endpoint", "window_s", "comparison", "threshold",
               "severity", "enabled", "created_by", "created_at"]
    rows = session.execute(select(*[getattr(AlertRule, c) for c in columns], firing.label("firing"))
                           .order_by(AlertRule.id)).all()
    return pd.DataFrame(rows, columns=[*columns, "firing"])


# --- alert events ---------------------------------------------------------------------

def open_alert_event(session: Session, rule_id: int) -> AlertEvent | None:
    """The rule's event that has not resolved yet, if any."""
    return session.scalars(select(AlertEvent).where(AlertEvent.rule_id == rule_id,
                                                    AlertEvent.resolved_at.is_(None))
                           .order_by(AlertEvent.id.desc()).limit(1)).first()


def fire_alert(session: Session, rule: AlertRule, at: datetime, value: float, message: str) -> AlertEvent:
    event = AlertEvent(rule_id=rule.id, fired_at=at, value=value, last_value=value, message=message)
    session.add(event)
    session.flush()
    return event


def alert_events(session: Session, start: datetime | None = None, end: datetime | None = None,
                 limit: int = 500) -> pd.DataFrame:
    """Events overlapping [start, end] (all without bounds): open ones first, then newest first."""
    query = (select(AlertEvent.id, AlertEvent.rule_id, AlertRule.name, AlertRule.metric,
                    AlertRule.endpoint, AlertRule.severity, AlertRule.comparison, AlertRule.threshold,
                    AlertEvent.fired_at, AlertEvent.resolved_at, AlertEvent.value,
                    AlertEvent.last_value, AlertEvent.message)
             .join(AlertRule, AlertRule.id == AlertEvent.rule_id))
    if end is not None:
        query = query.where(AlertEvent.fired_at <= end)
    if start is not None:
        query = query.where(AlertEvent.resolved_at.is_(None) | (AlertEvent.resolved_at >= start))
    rows = session.execute(query.order_by(AlertEvent.resolved_at.is_not(None), AlertEvent.fired_at.desc(),
                                          AlertEvent.id.desc()).limit(limit)).all()
    frame = pd.DataFrame(rows, columns=["id", "rule_id", "rule", "metric", "endpoint", "severity",
                                        "comparison", "threshold", "fired_at", "resolved_at", "value",
                                        "last_value", "message"])
    frame.insert(2, "firing", frame["resolved_at"].isna())
    return frame


def firing_alerts(session: Session) -> pd.DataFrame:
    """The open events, most severe first, with their rules' names."""
    rows = session.execute(select(AlertRule.name, AlertRule.severity, AlertEvent.fired_at,
                                  AlertEvent.last_value, AlertEvent.message)
                           .join(AlertRule, AlertRule.id == AlertEvent.rule_id)
                           .where(AlertEvent.resolved_at.is_(None)).order_by(AlertEvent.fired_at)).all()
    frame = pd.DataFrame(rows, columns=["rule", "severity", "fired_at", "last_value", "message"])
    rank = {severity: -number for number, severity in enumerate(ALERT_SEVERITIES)}
    return frame.sort_values("severity", key=lambda s: s.map(rank), kind="stable", ignore_index=True)
