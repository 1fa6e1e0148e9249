"""Reads and writes of the model registry (versioned per kind; one active per kind).

No active version of a kind means the shipped base model is served. Functions
take a Session and leave committing to the caller; every change is written to
the audit log.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import MODEL_KINDS, ModelVersion, utc_now
from db.queries import audit

LIST_COLUMNS = ["id", "kind", "version", "base_model", "created_by", "created_at", "is_active",
                "activated_at", "job_id", "note"]


def _check_kind(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")


def _label(model: ModelVersion) -> str:
    return f"{model.kind} v{model.version}"


def add_model_version(session: Session, kind: str, *, artifact_path: str, base_model: str,
                      training_data: dict, hyperparameters: dict, metrics: dict, actor: str,
                      job_id: int | None = None, note: str = "") -> ModelVersion:
    """Register the model in folder `artifact_path` as the next version of `kind` (not active)."""
    _check_kind(kind)
    latest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.kind == kind))
    model = ModelVersion(kind=kind, version=(latest or 0) + 1, base_model=base_model,
                         training_data=training_data, hyperparameters=hyperparameters, metrics=metrics,
                         artifact_path=artifact_path, job_id=job_id, note=note, created_by=actor)
    session.add(model)
    session.flush()
    audit(session, actor, "register model", _label(model), artifact_path=artifact_path,
          base_model=base_model, job_id=job_id)
    return model


def get_model_version(session: Session, model_id: int) -> ModelVersion:
    """The version with id `model_id`; LookupError when there is none."""
    model = session.get(ModelVersion, model_id)
    if model is None:
        raise LookupError(f"there is no model with id {model_id}")
    return model


def activate_model_version(session: Session, model_id: int, actor: str,
                           action: str = "activate model") -> ModelVersion:
    """Make version `model_id` the served model of its kind."""
    model = get_model_version(session, model_id)
    previous = active_model_version(session, model.kind)
    session.execute(update(ModelVersion).where(ModelVersion.kind == model.kind).values(is_active=False))
    model.is_active = True
    model.activated_at = utc_now()
    audit(session, actor, action, _label(model), artifact_path=model.artifact_path,
          previous=_label(previous) if previous is not None else "base model")
    return model


def deactivate_models(session: Session, kind: str, actor: str, action: str = "use base model") -> None:
    """Serve the shipped base model of `kind` again (no version active)."""
    previous = active_model_version(session, kind)
    session.execute(update(ModelVersion).where(ModelVersion.kind == kind).values(is_active=False))
    audit(session, actor, action, f"{kind} base model",
          previous=_label(previous) if previous is not None else "base model")


def rollback_model(session: Session, kind: str, actor: str) -> ModelVersion | None:
    """Activate the version of `kind` that was active before the current one.

    That is the other version activated most recently; when no other version
    was ever active, the base model is served again and None returned.
    LookupError when no version is active (the base model is already served).
    """
    active = active_model_version(session, kind)
    if active is None:
        raise LookupError(f"no {kind} model is active (the base model is served), so there is "
                          "nothing to roll back")
    previous = session.scalar(
        select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.id != active.id,
                                   ModelVersion.activated_at.is_not(None))
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc()).limit(1))
    if previous is None:
        deactivate_models(session, kind, actor, action="roll back model")
        return None
    return activate_model_version(session, previous.id, actor, action="roll back model")


def active_model_version(session: Session, kind: str) -> ModelVersion | None:
    _check_kind(kind)
    return session.scalar(select(ModelVersion).where(ModelVersion.kind == kind,
                                                     ModelVersion.is_active.is_(True)))


def headline_metrics(metrics: dict) -> dict:
    """The top-level numbers (and text) of a model's metrics; nested results are left out."""
    return {name: value for name, value in (metrics or {}).items()
            if (value is None or isinstance(value, (int, float, str, bool)))
            and name not in LIST_COLUMNS and name != "artifact_path"}


def list_model_versions(session: Session, kind: str | None = None) -> pd.DataFrame:
    """Every model version, newest first: its facts, headline metrics as columns, its folder."""
    query = select(ModelVersion).order_by(ModelVersion.id.desc())
    if kind is not None:
        _check_kind(kind)
        query = query.where(ModelVersion.kind == kind)
    rows = [{**{column: getattr(model, column) for column in LIST_COLUMNS},
             **headline_metrics(model.metrics), "artifact_path": model.artifact_path}
            for model in session.scalars(query)]
    frame = pd.DataFrame(rows, columns=None if rows else [*LIST_COLUMNS, "artifact_path"])
    # artifact_path last, after the metric columns, which differ from model to model.
    return frame[[c for c in frame.columns if c != "artifact_path"] + ["artifact_path"]]
