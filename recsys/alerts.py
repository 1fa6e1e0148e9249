"""Alert rules evaluated over the REST service's request metrics.

A rule (`db.models.AlertRule`) fires when its metric over the last `window_s`
seconds, on one endpoint or all, compares to its threshold. Each evaluation:

- condition holds, no open event: open an `AlertEvent` (fired_at, value, message);
- condition holds, event open: update the event's `last_value`;
- condition clears, event open: set the event's `resolved_at`.

The metrics, over the requests with `now - window_s < at <= now`:

- `p50_latency_ms`, `p95_latency_ms`: percentiles (linear interpolation) of the
  latency of every request, whatever its status;
- `error_rate`: share of requests that ended in a server error (status >= 500);
  4xx answers are the client's mistake (a bad key, a bad query) and do not count;
- `empty_rate`: share of successful requests (status < 400) with no results;
- `qps`: requests per second, requests / window_s.

A window without requests (or, for `empty_rate`, without successful ones)
leaves the latency and rate metrics undefined: such a rule does not fire, and an
open event of it resolves, since there is no evidence the problem persists.
QPS is 0 then, so a rule such as `qps < 1` does fire when traffic stops.

`AlertScheduler` runs `evaluate_alert_rules` every few seconds in a daemon
thread of the serving process; `python -m recsys alerts evaluate` runs it once.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import operator
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from db import monitoring
from db.engine import session_scope
from db.models import AlertRule, utc_now

log = logging.getLogger(__name__)
COMPARE = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}
DEFAULT_INTERVAL_S = 15.0


@dataclass(frozen=True)
class AlertCheck:
    """The outcome of one rule at one evaluation.

    `state` is "fired" (an event opened now), "firing" (still open), "resolved"
    (closed now), "ok" or "no data" (metric undefined, nothing open).
    """

    rule_id: int
    rule: str
    metric: str
    endpoint: str | None
    value: float | None
    comparison: str
    threshold: float
    severity: str
    state: str
    event_id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def metric_value(session: Session, metric: str, window_s: int, endpoint: str | None = None,
                 now: datetime | None = None) -> float | None:
    """The value of `metric` over the `window_s` seconds before `now`, or None when undefined."""
    now = now or utc_now()
    start = now - timedelta(seconds=window_s)
    if metric in ("p50_latency_ms", "p95_latency_ms"):
        latencies = monitoring.window_latencies(session, start, now, endpoint)
        if latencies.size == 0:
            return None
        return float(np.percentile(latencies, 50 if metric == "p50_latency_ms" else 95))
    counts = monitoring.window_counts(session, start, now, endpoint)
    if metric == "qps":
        return counts["requests"] / window_s
    if metric == "error_rate":
        return counts["server_errors"] / counts["requests"] if counts["requests"] else None
    if metric == "empty_rate":
        return counts["empty"] / counts["successes"] if counts["successes"] else None
    raise ValueError(f"unknown metric {metric!r}")


def _message(rule: AlertRule, value: float) -> str:
    shown = f"{value:.1%}" if rule.metric in monitoring.RATE_METRICS else f"{value:,.2f}"
    limit = f"{rule.threshold:.1%}" if rule.metric in monitoring.RATE_METRICS else f"{rule.threshold:,.2f}"
    return (f"{rule.name}: {rule.metric} {shown} {rule.comparison} {limit} over the last "
            f"{rule.window_s} s on {rule.endpoint or 'every endpoint'}")


def evaluate_rule(session: Session, rule: AlertRule, now: datetime) -> AlertCheck:
    """Evaluate one rule at `now`, opening, updating or resolving its event."""
    value = metric_value(session, rule.metric, rule.window_s, rule.endpoint, now)
    holds = value is not None and not math.isnan(value) and COMPARE[rule.comparison](value, rule.threshold)
    event = monitoring.open_alert_event(session, rule.id)
    if holds and event is None:
        event, state = monitoring.fire_alert(session, rule, now, value, _message(rule, value)), "fired"
    elif holds:
        event.last_value, state = value, "firing"
    elif event is not None:
        event.resolved_at, state = now, "resolved"
        if value is not None:
            event.last_value = value
    else:
        state = "ok" if value is not None else "no data"
    return AlertCheck(rule.id, rule.name, rule.metric, rule.endpoint, value, rule.comparison,
                      rule.threshold, rule.severity, state, event.id if event is not None else None)


def evaluate_alert_rules(session: Session, now: datetime | None = None) -> list[AlertCheck]:
    """Evaluate every enabled rule at `now` (UTC, default the current time); one check per rule."""
    now = now or utc_now()
    checks = [evaluate_rule(session, rule, now) for rule in monitoring.enabled_alert_rules(session)]
    session.flush()
    return checks


# Shipped with a new database (`python -m recsys init`), so a demo's Monitoring has rules to show:
# search slower than a person notices (the demo's p95 is about 20 ms), server errors, and searches
# that find nothing (nonsense finds nothing since the semantic floor, so a share is expected).
DEFAULT_RULES = (
    {"name": "search p95 latency", "metric": "p95_latency_ms", "threshold": 250.0, "window_s": 300,
     "endpoint": "/search", "severity": "warning"},
    {"name": "server errors", "metric": "error_rate", "threshold": 0.02, "window_s": 300, "severity": "critical"},
    {"name": "searches that find nothing", "metric": "empty_rate", "threshold": 0.3, "window_s": 900,
     "endpoint": "/search", "severity": "warning"},
)


def ensure_default_rules(session: Session, actor: str = "system") -> list[str]:
    """Create the shipped rules when the database has no alert rule at all; their names."""
    if not monitoring.alert_rules(session).empty:
        return []
    return [monitoring.create_alert_rule(session, actor=actor, **rule).name for rule in DEFAULT_RULES]


class AlertScheduler:
    """Evaluates the alert rules every `interval_s` seconds in a daemon thread.

    Each evaluation has its own session and transaction; a failing one (the
    database is locked or gone) is logged and the next one tries again.

        scheduler = AlertScheduler(interval_s=15).start()
        ...
        scheduler.stop()
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, url: str | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"the interval must be a positive number of seconds; got {interval_s}")
        self.interval_s = interval_s
        self.url = url
        self.evaluations = 0
        self.last_checks: list[AlertCheck] = []
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> AlertScheduler:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="alert-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it (an evaluation in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def evaluate_once(self) -> list[AlertCheck]:
        with session_scope(self.url) as session:
            checks = evaluate_alert_rules(session)
        self.evaluations += 1
        self.last_checks, self.last_error = checks, None
        return checks

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate_once()
            except Exception as error:  # noqa: BLE001 - one failed evaluation must not end the thread
                self.last_error = str(error)
                log.exception("alert evaluation failed; trying again in %s s", self.interval_s)
            self._stop.wait(self.interval_s)


# --- command line -------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `alerts` (evaluate, list) to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "alerts", help="evaluate the alert rules once, or list rules and events (JSON on stdout)",
        description="evaluate: evaluate every enabled rule now, opening and resolving alert events; "
                    "list: the rules, then the events (firing first).")
    parser.add_argument("action", choices=["evaluate", "list"])
    parser.add_argument("--limit", type=int, default=50, help="events listed at most (default 50)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    """Run `alerts`; prints one JSON object on stdout, returns the exit status."""
    with session_scope() as session:
        if args.action == "evaluate":
            result = {"evaluated_at": utc_now(),
                      "checks": [check.to_dict() for check in evaluate_alert_rules(session)]}
        else:
            rules = monitoring.alert_rules(session)
            events = monitoring.alert_events(session, limit=args.limit)
            result = {"rules": rules.to_dict("records"),
                      "events": events.astype(object).where(events.notna(), None).to_dict("records")}
    print(json.dumps(result, indent=2, default=str))
    return 0
