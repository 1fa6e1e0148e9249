"""Online experiments by database URL: what the Experiments page and the CLI call.

The REST service runs one experiment at a time, so that every session sees one arm (or one
interleaving) and reports do not mix experiments. Creating an experiment is an activation like a
preset's: the service follows it within seconds (`recsys.serving.follow`) and serves it until it
is stopped. Stopping can promote the winner: its preset becomes the active search preset (both
audited).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy.exc import IntegrityError

from db import experiments as store
from db import queries
from db.engine import session_scope
from db.models import EXPERIMENT_METHODS, Experiment
from db.presets import activate_preset
from recsys.data.ingest import IngestOptions, IngestResult, ingest_file
from recsys.experiments import report as reports
from recsys.fusion import presets as preset_store

FED_SETTING = "live_events_fed_to_search_log"
MAX_NAME = 128


@dataclass(frozen=True)
class ExperimentInfo:
    id: int
    name: str
    method: str
    control: str  # preset labels, e.g. "default v1"
    treatment: str
    control_preset_id: int
    treatment_preset_id: int
    traffic: float
    status: str
    winner: str | None
    created_at: datetime
    stopped_at: datetime | None

    def to_dict(self) -> dict:
        return {"experiment_id": self.id, "name": self.name, "method": self.method, "control": self.control,
                "treatment": self.treatment, "traffic": self.traffic, "status": self.status,
                "winner": self.winner, "created_at": self.created_at.isoformat(timespec="seconds"),
                "stopped_at": (None if self.stopped_at is None
                               else self.stopped_at.isoformat(timespec="seconds"))}


def _info(session, row: Experiment) -> ExperimentInfo:
    control = preset_store.preset_by_id(session, row.control_preset_id)
    treatment = preset_store.preset_by_id(session, row.treatment_preset_id)
    return ExperimentInfo(row.id, row.name, row.method, control.label, treatment.label, control.id,
                          treatment.id,
                          row.traffic, row.status, row.winner, row.created_at, row.stopped_at)


def _search_preset(session, text: str):
    """A search preset: "NAME" (its latest version), "NAME:N" or "NAME vN"."""
    match = re.fullmatch(r"(.+?)(?::(\d+)|\s+v(\d+))", text.strip())
    name, version = ((match.group(1), int(match.group(2) or match.group(3))) if match
                     else (text.strip(), None))
    return preset_store.get_preset(session, "search", name, version)


def create_experiment(url: str, name: str, control: str, treatment: str, method: str, actor: str,
                      traffic: float = 1.0) -> ExperimentInfo:
    """Start an experiment of two search presets (ValueError/LookupError saying what to change)."""
    if not name.strip():
        raise ValueError("an experiment needs a name")
    if len(name.strip()) > MAX_NAME:
        raise ValueError(f"an experiment's name is at most {MAX_NAME} characters, not {len(name.strip())}")
    if method not in EXPERIMENT_METHODS:
        raise ValueError(f"unknown method {method!r}; choose interleaving or ab")
    if not 0 < traffic <= 1:
        raise ValueError("traffic is the share of sessions in the experiment, above 0 and at most 1, "
                         f"not {traffic}")
    with session_scope(url) as session:
        control_preset = _search_preset(session, control)
        treatment_preset = _search_preset(session, treatment)
        if control_preset.id == treatment_preset.id:
            raise ValueError(f"control and treatment are both {control_preset.label}: an experiment compares "
                             "two different presets")
        if session.query(Experiment).filter(Experiment.name == name.strip()).first() is not None:
            raise ValueError(f"an experiment named {name.strip()!r} exists already: choose another name")
        running = store.running(session)
        if running is not None:
            raise ValueError(f"experiment {running.id} ({running.name}) is running: the service runs one "
                             f"at a time, so stop it first (python -m recsys experiments stop {running.id})")
        try:
            row = store.add_experiment(session, name.strip(), method, control_preset.id, treatment_preset.id,
                                       traffic, actor)
        except IntegrityError:  # another was started at the same moment (one runs at a time)
            raise ValueError("another experiment was started at the same moment: the service runs one at a "
                             "time; see `python -m recsys experiments list`") from None
        return _info(session, row)


def _row(session, experiment_id: int) -> Experiment:
    row = session.get(Experiment, experiment_id)
    if row is None:
        raise LookupError(f"there is no experiment {experiment_id}; `python -m recsys experiments list` "
                          "lists them")
    return row


def get_experiment(url: str, experiment_id: int) -> ExperimentInfo:
    with session_scope(url) as session:
        return _info(session, _row(session, experiment_id))


def list_experiments(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        return store.list_experiments(session)


def _frames(url: str, experiment_id: int) -> tuple[ExperimentInfo, pd.DataFrame, pd.DataFrame]:
    with session_scope(url) as session:
        info = _info(session, _row(session, experiment_id))
        served, events = store.experiment_frames(session, experiment_id)
    return info, served, events


def report(url: str, experiment_id: int, effect: float | None = None) -> dict:
    """The experiment's figures (`recsys.experiments.report.report`) with what it is."""
    info, served, events = _frames(url, experiment_id)
    return {**info.to_dict(), **reports.report(info.method, served, events, effect, info.stopped_at)}


def timeline(url: str, experiment_id: int) -> pd.DataFrame:
    info, served, events = _frames(url, experiment_id)
    return reports.timeline(info.method, served, events)


def stop_experiment(url: str, experiment_id: int, actor: str, promote: bool = False) -> dict:
    """Stop the experiment; with `promote`, make the significant winner's preset the active search
    preset (ValueError, and nothing stopped, when there is no significant winner)."""
    result = report(url, experiment_id)
    if result["status"] != "running":
        raise ValueError(f"experiment {experiment_id} ({result['name']}) is stopped already")
    winner = result["winner"] if promote else None
    if promote and winner is None:
        raise ValueError(f"experiment {experiment_id} has no significant winner yet "
                         f"(p = {result['p_value']:.3f}): "
                         "stop it without promoting, or let it run longer")
    with session_scope(url) as session:
        row = _row(session, experiment_id)
        if not store.claim_stop(session, experiment_id):  # stopped by someone else meanwhile
            raise ValueError(f"experiment {experiment_id} ({row.name}) was stopped meanwhile")
        session.refresh(row)
        store.stop(session, row, actor, winner)
        if winner is not None:
            preset_id = row.control_preset_id if winner == "control" else row.treatment_preset_id
            preset = preset_store.preset_by_id(session, preset_id)
            activate_preset(session, preset_id, actor, action="promote experiment winner")
            result["promoted"] = preset.label
    return {**result, "status": "stopped", "winner": winner}


# --- live events into the search log ----------------------------------------------------------

def feed_search_log(url: str, actor: str, settle_s: float = 60.0) -> IngestResult | None:
    """A new search-log version: the active one plus the clicks and purchases that followed searches
    (query, product, user, session, time) received since the last feed and at least `settle_s`
    ago (by then every worker has stored them); None when there are none. The search log is what
    query sets sample and what fine-tuning's "search_log" pairs come from."""
    until = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=settle_s)
    with session_scope(url) as session:
        fed = (queries.get_setting(session, FED_SETTING) or {}).get("through")
        clicks = store.search_clicks(session, None if fed is None else datetime.fromisoformat(fed), until)
        version = queries.active_version(session, "search_log")
        current = (pd.DataFrame(columns=["query", "user_id", "product_id", "timestamp", "session_id"])
                   if version is None else queries.search_log_frame(session, version.id))
    if clicks.empty:
        return None
    new = pd.DataFrame({"query": clicks["query"], "user_id": clicks["user_id"],
                        "product_id": clicks["product_id"],
                        "timestamp": clicks["at"], "session_id": clicks["session"]})
    keep = [column for column in ("query", "user_id", "product_id", "timestamp", "session_id")
            if column in current.columns]
    frame = pd.concat([current[keep], new], ignore_index=True)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    result = ingest_file(buffer.getvalue().encode(), IngestOptions("search_log"), actor=actor,
                         filename=f"search-log-with-live-events-to-{until:%Y%m%dT%H%M%S}.csv", url=url)
    if result.ok:
        with session_scope(url) as session:
            queries.set_setting(session, FED_SETTING, {"through": until.isoformat()}, actor)
    return result
