"""SQL of online experiments: experiments, the lists the REST service served, and live events.

Each function works inside the caller's session; `recsys.experiments` holds the rules.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from db.models import Experiment, LiveEvent, Preset, ServedList, utc_now
from db.queries import audit

SERVED_COLUMNS = ["id", "request_id", "endpoint", "query", "unit", "experiment_id", "arm", "products",
                  "teams", "at"]
EVENT_COLUMNS = ["id", "event_id", "type", "product_id", "session", "user_id", "request_id", "position",
                 "at", "received_at"]


def add_experiment(session: Session, name: str, method: str, control_preset_id: int,
                   treatment_preset_id: int, traffic: float, actor: str) -> Experiment:
    row = Experiment(name=name, method=method, control_preset_id=control_preset_id,
                     treatment_preset_id=treatment_preset_id, traffic=traffic, status="running",
                     created_by=actor)
    session.add(row)
    session.flush()
    audit(session, actor, "experiment_create", f"experiment {row.id} {name}", method=method,
          control_preset_id=control_preset_id, treatment_preset_id=treatment_preset_id, traffic=traffic)
    return row


def running(session: Session) -> Experiment | None:
    """The running experiment (the service runs one at a time), if any."""
    return session.scalar(select(Experiment).where(Experiment.status == "running")
                          .order_by(Experiment.id.desc()).limit(1))


def claim_stop(session: Session, experiment_id: int) -> bool:
    """Mark a running experiment stopped in one statement; False when it was not running (one of two
    people stopping it at once wins)."""
    done = session.execute(update(Experiment)
                           .where(Experiment.id == experiment_id, Experiment.status == "running")
                           .values(status="stopped", stopped_at=utc_now()))
    return done.rowcount == 1


def stop(session: Session, experiment: Experiment, actor: str, winner: str | None = None) -> Experiment:
    experiment.status, experiment.stopped_by = "stopped", actor
    experiment.stopped_at = experiment.stopped_at or utc_now()
    experiment.winner = winner
    audit(session, actor, "experiment_stop", f"experiment {experiment.id} {experiment.name}", winner=winner)
    return experiment


def list_experiments(session: Session) -> pd.DataFrame:
    rows = session.execute(select(Experiment, Preset.name, Preset.version)
                           .join(Preset, Preset.id == Experiment.control_preset_id)
                           .order_by(Experiment.id.desc())).all()
    treatments = {row.id: f"{row.name} v{row.version}" for row in session.scalars(select(Preset).where(
        Preset.id.in_([experiment.treatment_preset_id for experiment, *_ in rows])))}
    return pd.DataFrame([{"id": e.id, "name": e.name, "method": e.method, "control": f"{name} v{version}",
                          "treatment": treatments.get(e.treatment_preset_id, "?"), "traffic": e.traffic,
                          "status": e.status, "winner": e.winner, "created_by": e.created_by,
                          "created_at": e.created_at, "stopped_at": e.stopped_at}
                         for e, name, version in rows],
                        columns=["id", "name", "method", "control", "treatment", "traffic", "status",
                                 "winner",
                                 "created_by", "created_at", "stopped_at"])


# --- served lists and live events --------------------------------------------------------

def insert_served(session: Session, rows: list[dict]) -> int:
    """Insert served lists (dicts keyed by `ServedList` columns); a request id stored already is kept."""
    return _insert_new(session, ServedList, ServedList.request_id, rows, "request_id")


def insert_events(session: Session, rows: list[dict]) -> int:
    """Insert live events; an event whose event_id is stored already is left out (idempotent)."""
    return _insert_new(session, LiveEvent, LiveEvent.event_id, rows, "event_id")


def _insert_new(session: Session, model, column, rows: list[dict], key: str) -> int:
    keys = {row[key] for row in rows if row.get(key) is not None}
    stored = set(session.scalars(select(column).where(column.in_(keys)))) if keys else set()
    new, seen = [], set()
    for row in rows:
        value = row.get(key)
        if value is not None and (value in stored or value in seen):
            continue
        seen.add(value)
        new.append(row)
    if new:
        session.execute(insert(model), new)
    return len(new)


def stored_event_ids(session: Session, event_ids: list[str]) -> set[str]:
    return set(session.scalars(select(LiveEvent.event_id).where(LiveEvent.event_id.in_(event_ids))))


def served_lists(session: Session, request_ids: list[str]) -> dict[str, ServedList]:
    rows = session.scalars(select(ServedList).where(ServedList.request_id.in_(request_ids)))
    return {row.request_id: row for row in rows}


def events_after(session: Session, last_id: int, limit: int = 10_000) -> list[LiveEvent]:
    return list(session.scalars(select(LiveEvent).where(LiveEvent.id > last_id).order_by(LiveEvent.id)
                                .limit(limit)))


def events_by_id(session: Session, ids: list[int]) -> list[LiveEvent]:
    return [event for start in range(0, len(ids), 1000) for event in session.scalars(
        select(LiveEvent).where(LiveEvent.id.in_(ids[start:start + 1000])).order_by(LiveEvent.id))]


def first_event_id_since(session: Session, since: datetime) -> int:
    """The id of the first event received at `since` or later (one past the last when none is)."""
    first = session.scalar(select(LiveEvent.id).where(LiveEvent.received_at >= since)
                           .order_by(LiveEvent.id).limit(1))
    if first is not None:
        return first
    return (session.scalar(select(LiveEvent.id).order_by(LiveEvent.id.desc()).limit(1)) or 0) + 1


def experiment_frames(session: Session, experiment_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the experiment's served lists, the events that name them or are its units' purchases
    received from its first list on)."""
    served = pd.DataFrame(session.execute(
        select(*(getattr(ServedList, column) for column in SERVED_COLUMNS))
        .where(ServedList.experiment_id == experiment_id).order_by(ServedList.id)).all(),
        columns=SERVED_COLUMNS)
    if served.empty:
        return served, pd.DataFrame(columns=EVENT_COLUMNS)
    columns = [getattr(LiveEvent, column) for column in EVENT_COLUMNS]
    named = (select(*columns).join(ServedList, ServedList.request_id == LiveEvent.request_id)
             .where(ServedList.experiment_id == experiment_id))
    events = list(session.execute(named).all())
    units = served["unit"].dropna().unique().tolist()
    sessions = [unit.split(":", 1)[1] for unit in units if unit.startswith("session:")]
    users = [unit.split(":", 1)[1] for unit in units if unit.startswith("user:")]
    for start in range(0, max(len(sessions), len(users)), 500):  # bounded IN lists
        theirs = or_(LiveEvent.session.in_(sessions[start:start + 500]),
                     LiveEvent.user_id.in_(users[start:start + 500]))
        events.extend(session.execute(select(*columns).where(
            theirs, LiveEvent.type == "purchase", LiveEvent.received_at >= served["at"].min())).all())
    return served, pd.DataFrame(events, columns=EVENT_COLUMNS).drop_duplicates("id")


def live_events(session: Session, since: datetime | None = None) -> pd.DataFrame:
    query = select(*(getattr(LiveEvent, column) for column in EVENT_COLUMNS)).order_by(LiveEvent.id)
    if since is not None:
        query = query.where(LiveEvent.at >= since)
    return pd.DataFrame(session.execute(query).all(), columns=EVENT_COLUMNS)


def search_clicks(session: Session, after: datetime | None, until: datetime) -> pd.DataFrame:
    """Clicks and purchases that name a search's request, received after `after` (None: from the
    first) up to `until`: id, query, product_id, user_id, session, at, type."""
    received = LiveEvent.received_at <= until
    if after is not None:
        received = received & (LiveEvent.received_at > after)
    rows = session.execute(select(LiveEvent.id, ServedList.query, LiveEvent.product_id, LiveEvent.user_id,
                                  LiveEvent.session, LiveEvent.at, LiveEvent.type)
                           .join(ServedList, ServedList.request_id == LiveEvent.request_id)
                           .where(ServedList.endpoint == "/search", received,
                                  LiveEvent.type.in_(("click", "purchase")))
                           .order_by(LiveEvent.id)).all()
    return pd.DataFrame(rows, columns=["id", "query", "product_id", "user_id", "session", "at", "type"])
