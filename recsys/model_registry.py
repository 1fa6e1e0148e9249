"""The model registry: fine-tuned models, numbered per kind, one of them served per kind.

A fine-tune writes its model to a folder (`model_dir`) and registers it with
how it was made (base model, training data versions, hyperparameters, metrics,
the job); registering serves nothing. `activate_model` makes a version the
served one of its kind, `use_base_model` goes back to the shipped base model
(all-MiniLM-L6-v2 for "embedding", no reranker for "reranker") and
`rollback_model` to whatever was served before. The engines ask
`active_model_path(kind)` what to load. Every change goes to the audit log (see
`db.model_registry`); each function opens its own session.

>>> model = register_model("embedding", "var/models/embedding/job7", base_model="all-MiniLM-L6-v2",
...                        training_data={"source": "judgments"}, hyperparameters={"epochs": 1},
...                        metrics={"val_ndcg@10_after": 0.41}, actor="olga")  # doctest: +SKIP
>>> activate_model(model.id, "olga").version  # doctest: +SKIP
1
>>> active_model_path("embedding")  # doctest: +SKIP
'/.../var/models/embedding/job7'
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import pandas as pd

from db import model_registry as store
from db.engine import PROJECT_ROOT, session_scope
from db.models import MODEL_KINDS, ModelVersion
from recsys import embeddings
from recsys.artifacts import artifact_path

__all__ = ["MODEL_KINDS", "RegisteredModel", "activate_model", "active_model", "active_model_path",
           "artifact_folder",
           "get_model", "list_models", "model_dir", "register_model", "rollback_model", "use_base_model"]

# <artifact folder>/models, or $WORKBENCH_MODELS_DIR (recsys.artifacts).
MODELS_DIR = artifact_path("models", "WORKBENCH_MODELS_DIR")


def model_dir(kind: str, version: int | str) -> Path:
    """The folder for a model's artifact: var/models/<kind>/v<version>, or /<version> for a name
    such as "job12" (a job writes its model before the registry numbers it)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return MODELS_DIR / kind / (f"v{version}" if isinstance(version, int) else str(version))


def artifact_folder(path: str) -> Path:
    """The folder of a stored artifact path; a relative one is relative to the project folder."""
    return Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path


@dataclass(frozen=True)
class RegisteredModel:
    """A version of a model kind as the registry holds it, with how it was made."""

    id: int
    kind: str
    version: int
    base_model: str
    training_data: dict[str, Any]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    artifact_path: str
    job_id: int | None
    note: str
    created_by: str
    created_at: datetime
    is_active: bool
    activated_at: datetime | None

    @classmethod
    def of(cls, row: ModelVersion) -> Self:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    @property
    def folder(self) -> Path:
        return artifact_folder(self.artifact_path)

    @property
    def label(self) -> str:
        """How a person names it: "embedding v3"."""
        return f"{self.kind} v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}



def _check_artifact(model: ModelVersion) -> None:
    folder = artifact_folder(model.artifact_path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{model.kind} v{model.version} cannot be served: its folder {folder} no longer "
            "exists. Fine-tune again, or activate another version.")


def register_model(kind: str, artifact_path: str | Path, *, base_model: str, training_data: dict,
                   hyperparameters: dict, metrics: dict, actor: str, job_id: int | None = None,
                   note: str = "", url: str | None = None) -> RegisteredModel:
    """Store the model in `artifact_path` as the next version of `kind`, not active yet."""
    with session_scope(url) as session:
        return RegisteredModel.of(store.add_model_version(
            session, kind, artifact_path=str(artifact_path), base_model=base_model,
            training_data=training_data, hyperparameters=hyperparameters, metrics=metrics,
            actor=actor, job_id=job_id, note=note))


def activate_model(model_id: int, actor: str, url: str | None = None) -> RegisteredModel:
    """Serve version `model_id` of its kind.

    LookupError for an unknown id; FileNotFoundError, with nothing changed, when
    the model's folder no longer exists.
    """
    with session_scope(url) as session:
        _check_artifact(store.get_model_version(session, model_id))
        return RegisteredModel.of(store.activate_model_version(session, model_id, actor))


def use_base_model(kind: str, actor: str, url: str | None = None) -> None:
    """Serve the shipped base model of `kind` again (all-MiniLM-L6-v2; no reranker)."""
    with session_scope(url) as session:
        store.deactivate_models(session, kind, actor)


def rollback_model(kind: str, actor: str, url: str | None = None) -> RegisteredModel | None:
    """Serve what was served before the active version: the version active before it, or the
    base model (None) when there was none. LookupError when no version is active;
    FileNotFoundError, with nothing changed, when the earlier version's folder is gone."""
    with session_scope(url) as session:
        model = store.rollback_model(session, kind, actor)
        if model is None:
            return None
        _check_artifact(model)  # raising here rolls the session back
        return RegisteredModel.of(model)


def active_model(kind: str, url: str | None = None) -> RegisteredModel | None:
    """The served version of `kind`, or None when the base model is served."""
    with session_scope(url) as session:
        model = store.active_model_version(session, kind)
        return None if model is None else RegisteredModel.of(model)


def active_model_path(kind: str, url: str | None = None) -> str | None:
    """The folder of the served model of `kind`; None: the shipped all-MiniLM-L6-v2 for
    "embedding", no reranker for "reranker"."""
    model = active_model(kind, url)
    return None if model is None else str(model.folder)


def get_model(model_id: int, url: str | None = None) -> RegisteredModel:
    """Version `model_id` with all its facts; LookupError when there is none."""
    with session_scope(url) as session:
        return RegisteredModel.of(store.get_model_version(session, model_id))


SHIPPED_LABEL = "all-MiniLM-L6-v2 (shipped)"


def list_models(kind: str | None = None, url: str | None = None) -> pd.DataFrame:
    """Every version (of `kind`, or all), newest first, headline metrics as columns.

    `base_model` is named as a person would: the shipped model, or the registered version
    fine-tuned further ("embedding v2"), rather than a folder path.
    """
    with session_scope(url) as session:
        frame = store.list_model_versions(session, kind)
        every = store.list_model_versions(session, None) if kind else frame
    if frame.empty:
        return frame
    names = {str(path): f"{row_kind} v{version}"
             for path, row_kind, version in zip(every["artifact_path"], every["kind"], every["version"])}
    names[str(embeddings.default_model_path())] = SHIPPED_LABEL
    return frame.assign(base_model=frame["base_model"].map(lambda path: names.get(str(path), path)))
