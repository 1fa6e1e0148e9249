"""The artifact folder: where the models, fitted engines, ONNX exports, embedding cache and tuning
results live, named by one setting.

``$WORKBENCH_ARTIFACTS_DIR`` (default: the project's ``var/``) holds

- ``models/``: fine-tuned embedding models and rerankers (``$WORKBENCH_MODELS_DIR`` overrides it),
- ``engines/``: fitted search and recommendation engines (``$WORKBENCH_ENGINES_DIR``),
- ``onnx/``: ONNX exports of the encoders (``$WORKBENCH_ONNX_DIR``),
- ``embeddings/``: the catalog-embedding cache (``$WORKBENCH_EMBEDDINGS_DIR``),
- ``tuning/``: hyper-parameter tuning results,
- ``compiled/``: learned rankers' trees compiled to machine code (``$WORKBENCH_COMPILED_DIR``).

Several replicas of the service, the app and the job workers on several machines share one such
folder (NFS or another shared file system) as they share PostgreSQL: a worker fits an engine or
registers a model there and every replica loads it (docs/deployment.md).

Each long-running process checks the folder before it serves anything (`exit_if_unusable`): a
folder that is missing or cannot be written is an error naming the setting and the path, exit
status 2, rather than a failure at the first fit or export.

>>> from unittest import mock
>>> settings = {"WORKBENCH_ARTIFACTS_DIR": "/srv/workbench", "WORKBENCH_ENGINES_DIR": ""}
>>> with mock.patch.dict(os.environ, settings):
...     print(artifact_path("engines", "WORKBENCH_ENGINES_DIR"), artifact_path("tuning"))
/srv/workbench/engines /srv/workbench/tuning
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ARTIFACTS_ENV = "WORKBENCH_ARTIFACTS_DIR"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = PROJECT_ROOT / "var"
EXIT_STATUS = 2  # what a process started on an unusable folder exits with (as for a usage error)
# The specific settings, each naming one sub-folder; set, they override the artifact folder's.
SUB_FOLDERS = {"models": "WORKBENCH_MODELS_DIR", "engines": "WORKBENCH_ENGINES_DIR",
               "onnx": "WORKBENCH_ONNX_DIR", "embeddings": "WORKBENCH_EMBEDDINGS_DIR", "tuning": None,
               "compiled": "WORKBENCH_COMPILED_DIR"}


class ArtifactsDirUnusable(RuntimeError):
    """The artifact folder (or a sub-folder's own setting) names a folder that is missing or
    read-only; the message names the setting, the path and what to do."""


def artifacts_dir() -> Path:
    """The artifact folder: ``$WORKBENCH_ARTIFACTS_DIR``, or the project's ``var/``."""
    raw = os.environ.get(ARTIFACTS_ENV, "").strip()
    return Path(raw) if raw else DEFAULT_DIR


def artifact_path(name: str, setting: str | None = None) -> Path:
    """The folder of one kind of artifact: ``$setting`` when set, else ``<artifact folder>/<name>``."""
    raw = os.environ.get(setting, "").strip() if setting else ""
    return Path(raw) if raw else artifacts_dir() / name


def _settings_in_force() -> list[tuple[str, Path]]:
    """(setting, folder) of the artifact folder and of every sub-folder setting that is set."""
    found = [(ARTIFACTS_ENV, artifacts_dir())]
    for setting in SUB_FOLDERS.values():
        if setting and os.environ.get(setting, "").strip():
            found.append((setting, Path(os.environ[setting].strip())))
    return found


def check() -> Path:
    """The artifact folder, checked: it and every sub-folder setting that is set must name an
    existing folder this process can write (a file is written and removed in each).

    The default ``var/`` is made when missing (a new checkout); a folder named by a setting is
    never made, since a missing one is usually shared storage that is not mounted.
    Raises ArtifactsDirUnusable naming the setting, the path and the fix.
    """
    if not os.environ.get(ARTIFACTS_ENV, "").strip():
        DEFAULT_DIR.mkdir(parents=True, exist_ok=True)
    for setting, folder in _settings_in_force():
        named = bool(os.environ.get(setting, "").strip())
        shown = f"{setting}={folder}" if named else f"{folder} (the default of {setting})"
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise ArtifactsDirUnusable(
                f"the artifact folder {shown} {what}: create it (mkdir -p {folder}), mount the shared "
                f"storage there, or set {setting} to a folder that exists")
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
                pass
        except OSError as error:
            raise ArtifactsDirUnusable(
                f"the artifact folder {shown} cannot be written by this process ({error.strerror}): "
                f"give this user write access to it (models, engines and exports are written there) "
                f"or set {setting} to a folder it can write") from None
    return artifacts_dir()


def exit_if_unusable(what: str) -> None:
    """At the start of `what` (e.g. "the REST service"): `check`, and on failure print the reason
    and exit with status 2 before anything is served or run."""
    try:
        check()
    except ArtifactsDirUnusable as error:
        print(f"error: {what} cannot start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_STATUS) from None
