"""SQL of search trials: query sets, trials, their configurations' runs and the graders' judgments.

Each function works inside the caller's session; `recsys.trials` holds the rules.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import QuerySet, Trial, TrialConfig, TrialJudgment, TrialPreference, utc_now
from db.queries import audit


def add_query_set(session: Session, name: str, queries: list[str], source: str, actor: str,
                  traffic_share: float | None = None, note: str = "") -> QuerySet:
    """Store `queries` as the next version of query set `name`."""
    latest = session.scalar(select(func.max(QuerySet.version)).where(QuerySet.name == name)) or 0
    row = QuerySet(name=name, version=latest + 1, source=source, queries=list(queries),
                   traffic_share=traffic_share, note=note, created_by=actor)
    session.add(row)
    session.flush()
    audit(session, actor, "query_set_save", f"{name} v{row.version}", source=source, queries=len(queries))
    return row


def find_query_set(session: Session, name: str, version: int | None = None) -> QuerySet | None:
    query = select(QuerySet).where(QuerySet.name == name)
    query = query.where(QuerySet.version == version) if version is not None else query
    return session.scalar(query.order_by(QuerySet.version.desc()).limit(1))


def list_query_sets(session: Session) -> pd.DataFrame:
    rows = session.scalars(select(QuerySet).order_by(QuerySet.name, QuerySet.version.desc())).all()
    return pd.DataFrame([{"id": row.id, "name": row.name, "version": row.version, "source": row.source,
                          "queries": len(row.queries), "traffic_share": row.traffic_share,
                          "created_by": row.created_by, "created_at": row.created_at} for row in rows],
                        columns=["id", "name", "version", "source", "queries", "traffic_share", "created_by",
                                 "created_at"])


def add_trial(session: Session, name: str, query_set_id: int, depth: int, scale: dict,
              catalog_version_id: int | None, actor: str) -> Trial:
    row = Trial(name=name, query_set_id=query_set_id, depth=depth, scale=scale,
                catalog_version_id=catalog_version_id, created_by=actor)
    session.add(row)
    session.flush()
    audit(session, actor, "trial_create", f"trial {row.id} {name}", query_set_id=query_set_id, depth=depth)
    return row


def add_trial_config(session: Session, trial_id: int, name: str, config: dict, rankings: dict[str, list[str]],
                     embedding_model: str, actor: str, preset_id: int | None = None) -> TrialConfig:
    """Store a run of configuration `name`: the next try when the trial has run it before."""
    latest = session.scalar(select(func.max(TrialConfig.try_number)).where(
        TrialConfig.trial_id == trial_id, TrialConfig.name == name)) or 0
    row = TrialConfig(trial_id=trial_id, name=name, try_number=latest + 1, preset_id=preset_id, config=config,
                      rankings=rankings, embedding_model=embedding_model, created_by=actor)
    session.add(row)
    session.flush()
    return row


def trial_configs(session: Session, trial_id: int) -> list[TrialConfig]:
    """Every run of every configuration of the trial, oldest first."""
    return list(session.scalars(select(TrialConfig).where(TrialConfig.trial_id == trial_id)
                                .order_by(TrialConfig.id)))


def list_trials(session: Session) -> pd.DataFrame:
    rows = session.execute(select(Trial, QuerySet.name, QuerySet.version).join(
        QuerySet, QuerySet.id == Trial.query_set_id).order_by(Trial.id.desc())).all()
    return pd.DataFrame([{"id": trial.id, "name": trial.name, "query_set": f"{name} v{version}",
                          "depth": trial.depth, "created_by": trial.created_by, "created_at": trial.created_at}
                         for trial, name, version in rows],
                        columns=["id", "name", "query_set", "depth", "created_by", "created_at"])


def _replace(session: Session, model, keys: dict, values: dict) -> None:
    """The row of `model` with `keys` gets `values` (and a new `judged_at`), or is added."""
    row = session.scalar(select(model).filter_by(**keys))
    if row is None:
        session.add(model(**keys, **values))
        return
    for name, value in {**values, "judged_at": utc_now()}.items():
        setattr(row, name, value)


def save_judgment(session: Session, trial_id: int, query: str, product_id: str, grader: str,
                  grade: float | None, verdict: str) -> None:
    """A grader's latest word on a pair replaces their earlier one."""
    _replace(session, TrialJudgment, {"trial_id": trial_id, "query": query, "product_id": product_id,
                                      "grader": grader}, {"grade": grade, "verdict": verdict})


def judgments(session: Session, trial_id: int) -> pd.DataFrame:
    """query, product_id, grader, grade, verdict, judged_at of every judgment of the trial."""
    rows = session.execute(select(TrialJudgment.query, TrialJudgment.product_id, TrialJudgment.grader,
                                  TrialJudgment.grade, TrialJudgment.verdict, TrialJudgment.judged_at)
                           .where(TrialJudgment.trial_id == trial_id).order_by(TrialJudgment.id)).all()
    return pd.DataFrame(rows, columns=["query", "product_id", "grader", "grade", "verdict", "judged_at"])


def save_preference(session: Session, trial_id: int, query: str, grader: str, first: str, second: str,
                    first_on_left: bool, winner: str) -> None:
    """A grader's latest preference between `first` and `second` for the query replaces an earlier one."""
    _replace(session, TrialPreference, {"trial_id": trial_id, "query": query, "grader": grader, "first": first,
                                        "second": second}, {"first_on_left": first_on_left, "winner": winner})


def preferences(session: Session, trial_id: int) -> pd.DataFrame:
    """query, grader, first, second, first_on_left, winner of every preference of the trial."""
    rows = session.execute(select(TrialPreference.query, TrialPreference.grader, TrialPreference.first,
                                  TrialPreference.second, TrialPreference.first_on_left, TrialPreference.winner)
                           .where(TrialPreference.trial_id == trial_id).order_by(TrialPreference.id)).all()
    return pd.DataFrame(rows, columns=["query", "grader", "first", "second", "first_on_left", "winner"])
