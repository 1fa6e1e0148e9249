"""The serving metrics and alerts as the Monitoring page shows them.

SQL (`db.monitoring`) reads the requests of a range; percentiles, rates and the per-bucket series
are computed here in pandas (SQLite has no percentile function). Alert rules are added, switched
and removed here, each change audited.
"""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

from db import monitoring
from db.engine import session_scope
from db.models import ALERT_METRICS, ALERT_SEVERITIES
from db.monitoring import COMPARISONS, RATE_METRICS, STAGES, AlertRuleError
from recsys.alerts import evaluate_alert_rules

__all__ = ["ALERT_METRICS", "ALERT_SEVERITIES", "COMPARISONS", "RATE_METRICS", "AlertRuleError",
           "alert_events", "alert_rules", "by_endpoint", "by_replica", "bucket_seconds", "create_rule",
           "delete_rule", "firing", "load", "over_time", "set_rule_enabled", "stage_breakdown", "summarize",
           "evaluate_rules"]

# Chart buckets: the smallest of these giving at most MAX_BUCKETS points over a range.
BUCKET_SIZES_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
MAX_BUCKETS = 120


UNNAMED_REPLICA = "(unnamed)"  # requests recorded before replicas were named (migration 0012)


def load(url: str, start: datetime, end: datetime, replica: str | None = None) -> dict:
    """Everything the charts need for one range, from one session: the requests ("frame"; of one
    replica, or of all), the alert events ("events"), the time of the latest request ("latest")
    and the replicas that answered in the range ("replicas", for the filter)."""
    with session_scope(url) as session:
        return {"frame": monitoring.request_metrics(session, start, end, replica=replica),
                "events": monitoring.alert_events(session, start, end),
                "latest": monitoring.latest_request_at(session),
                "replicas": monitoring.replicas(session, start, end)}


def alert_events(url: str, limit: int = 200) -> pd.DataFrame:
    with session_scope(url) as session:
        return monitoring.alert_events(session, limit=limit)


def firing(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        return monitoring.firing_alerts(session)


def alert_rules(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        return monitoring.alert_rules(session)


def create_rule(url: str, actor: str, **fields) -> str:
    """Add an alert rule (AlertRuleError naming what is wrong); its name."""
    with session_scope(url) as session:
        return monitoring.create_alert_rule(session, actor=actor, **fields).name


def set_rule_enabled(url: str, rule_id: int, enabled: bool, actor: str) -> None:
    with session_scope(url) as session:
        monitoring.set_alert_rule_enabled(session, rule_id, enabled, actor)


def delete_rule(url: str, rule_id: int, actor: str) -> None:
    with session_scope(url) as session:
        monitoring.delete_alert_rule(session, rule_id, actor)


def evaluate_rules(url: str) -> None:
    """Evaluate every enabled rule once, now."""
    with session_scope(url) as session:
        evaluate_alert_rules(session)


def bucket_seconds(span_s: float) -> int:
    """A chart bucket for a range of `span_s` seconds: at most MAX_BUCKETS points.

    >>> bucket_seconds(900), bucket_seconds(3600), bucket_seconds(86400), bucket_seconds(7 * 86400)
    (10, 30, 900, 7200)
    """
    for size in BUCKET_SIZES_S:
        if span_s / size <= MAX_BUCKETS:
            return size
    return BUCKET_SIZES_S[-1]


def _rates(frame: pd.DataFrame) -> dict[str, float]:
    successes = frame["status"] < 400
    return {
        "error_rate": float((frame["status"] >= 500).mean()) if len(frame) else math.nan,
        "empty_rate": (float((frame.loc[successes, "result_count"] == 0).mean())
                       if successes.any() else math.nan),
    }


def summarize(frame: pd.DataFrame, span_s: float, sample_step: int | None = None) -> dict[str, float]:
    """Requests, QPS over `span_s`, p50/p95/p99 latency (ms), error and empty rate of a frame."""
    latency = frame["latency_ms"]
    requests = len(frame) * (sample_step or frame.attrs.get("sample_step", 1))
    return {"requests": requests, "qps": requests / span_s if span_s > 0 else math.nan,
            "p50_ms": float(latency.quantile(0.50)) if len(frame) else math.nan,
            "p95_ms": float(latency.quantile(0.95)) if len(frame) else math.nan,
            "p99_ms": float(latency.quantile(0.99)) if len(frame) else math.nan,
            **_rates(frame)}


def by_endpoint(frame: pd.DataFrame, span_s: float) -> pd.DataFrame:
    """`summarize` per endpoint, busiest first."""
    step = frame.attrs.get("sample_step", 1)
    rows = [{"endpoint": name, **summarize(group, span_s, step)} for name, group in frame.groupby("endpoint")]
    table = pd.DataFrame(rows, columns=["endpoint", "requests", "qps", "p50_ms", "p95_ms", "p99_ms",
                                        "error_rate", "empty_rate"])
    return table.sort_values("requests", ascending=False, ignore_index=True)


def by_replica(frame: pd.DataFrame, span_s: float) -> pd.DataFrame:
    """`summarize` per replica (the service process that answered), busiest first; requests
    recorded before replicas were named count under UNNAMED_REPLICA."""
    step = frame.attrs.get("sample_step", 1)
    names = frame["replica"].fillna(UNNAMED_REPLICA) if "replica" in frame else UNNAMED_REPLICA
    rows = [{"replica": name, **summarize(group, span_s, step)}
            for name, group in frame.assign(replica=names).groupby("replica")]
    table = pd.DataFrame(rows, columns=["replica", "requests", "qps", "p50_ms", "p95_ms", "p99_ms",
                                        "error_rate", "empty_rate"])
    return table.sort_values(["requests", "replica"], ascending=[False, True], ignore_index=True)


def over_time(frame: pd.DataFrame, start: datetime, end: datetime, bucket_s: int) -> pd.DataFrame:
    """One row per (bucket, endpoint): requests, qps, p50/p95/p99 ms, error and empty rate.

    Every bucket of the range is present for every endpoint seen: with no requests
    its qps is 0 and the other values are NaN, so lines break instead of bridging a gap.
    """
    columns = ["bucket", "endpoint", "requests", "qps", "p50_ms", "p95_ms", "p99_ms",
               "error_rate", "empty_rate"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    step = frame.attrs.get("sample_step", 1)
    frame = frame.assign(bucket=frame["at"].dt.floor(f"{bucket_s}s"),
                         error=frame["status"] >= 500,
                         empty=(frame["result_count"] == 0).where(frame["status"] < 400))
    groups = frame.groupby(["bucket", "endpoint"])
    table = pd.DataFrame({
        "requests": groups.size(),
        "p50_ms": groups["latency_ms"].quantile(0.50),
        "p95_ms": groups["latency_ms"].quantile(0.95),
        "p99_ms": groups["latency_ms"].quantile(0.99),
        "error_rate": groups["error"].mean(),
        "empty_rate": groups["empty"].mean(),
    })
    grid = pd.MultiIndex.from_product(
        [pd.date_range(pd.Timestamp(start).floor(f"{bucket_s}s"), pd.Timestamp(end), freq=f"{bucket_s}s"),
         sorted(frame["endpoint"].unique())], names=["bucket", "endpoint"])
    table = table.reindex(grid.union(table.index))
    table["requests"] = table["requests"].fillna(0).astype(int) * step
    table["qps"] = table["requests"] / bucket_s
    return table.reset_index()[columns]


def stage_breakdown(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean ms per stage and endpoint (long: endpoint, stage, mean_ms), with `other` the rest.

    A stage an endpoint does not run (NULL) counts as 0 ms; `other` is the mean
    latency not accounted for by the stages (HTTP, serialisation, waiting).
    """
    if frame.empty:
        return pd.DataFrame(columns=["endpoint", "stage", "mean_ms"])
    means = frame[["latency_ms", *STAGES]].fillna(0.0).groupby(frame["endpoint"]).mean()
    means["other_ms"] = (means["latency_ms"] - means[list(STAGES)].sum(axis=1)).clip(lower=0.0)
    long = means.drop(columns="latency_ms").reset_index().melt(
        id_vars="endpoint", var_name="stage", value_name="mean_ms")
    long["stage"] = long["stage"].str.removesuffix("_ms")
    return long


