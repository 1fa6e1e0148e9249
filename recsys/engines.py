"""Fitted engines kept on disk per active state: fitted when something is activated, loaded in seconds.

Three engines serve the pages (and the REST service):

- ``"search"``: the hybrid retriever (BM25 + semantic) on the active catalog; its semantic
  source encodes with the active embedding model on the backend of the active search preset, and
  takes its candidates from the index that preset names (`semantic_index`; None: by catalog size);
- ``"recommendations"``: the hybrid recommender (EASE + semantic) on all active events, weighted
  by the implicit-feedback setting, and the active catalog;
- ``"recommendations_heldout"``: the same fitted on the train part of a temporal split (each
  customer's latest product held out), with the held-out pairs: what Fusion & rules re-fuses
  for its offline metrics.

An `EngineSpec` says what one engine is fitted from (data versions, weights, embedding model,
backend, split). Its `key` names its folder under ``var/engines/`` (``$WORKBENCH_ENGINES_DIR``);
the key hashes the spec with the database's identity, so two databases never share a folder.
`fit` writes the folder with the engines' own `save` (config.json and arrays.npz per component,
the held-out pairs as Parquet), published by renaming a finished ``.partial`` folder, so a reader
never sees half an engine; `load` reads it back (about a second on the demo, where fitting takes
a minute). Fitting on a page's first visit is what this avoids.

The job "fit_engines" (`request_fit`) fits whatever is active and not fitted yet. The pages and
the CLI request it after every activation (data version, implicit weights, embedding model,
search preset); `python -m recsys init` fits in place, so `make run` starts with fitted engines.
Folders of engines no longer active are pruned, keeping the newest `KEEP_INACTIVE` per kind for
a quick roll-back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from db import queries
from db.engine import database_url, session_scope
from recsys.active import Active, read
from recsys.artifacts import artifact_path
from recsys.config import JsonConfig
from recsys.data.interactions import ImplicitWeights, load_versions
from recsys.evaluation.splits import SplitConfig, split_interactions
from recsys.factory import build_recommender, build_retriever
from recsys.fusion.presets import default_config
from recsys.jobs import (ACTIVE, JobBusy, JobContext, JobRecord, JobResult, JobSpec, alive_here, cleaner,
                         list_jobs, runner, submit)
from recsys.recommenders import Recommender
from recsys.search import Retriever

ENGINES_DIR_ENV = "WORKBENCH_ENGINES_DIR"
# "0": activations do not start the fit job (a page starts it when it needs an engine), e.g. where
# a scheduler fits at night with `python -m recsys engines fit`, or in the test suite.
FIT_ON_ACTIVATE_ENV = "WORKBENCH_FIT_ON_ACTIVATE"
KINDS = ("search", "recommendations", "recommendations_heldout")
JOB_KIND = "fit_engines"
SPEC_FILE = "spec.json"
HELD_OUT_FILE = "heldout.parquet"
KEEP_INACTIVE = 1
# The held-out split of Fusion & rules' live metrics: each customer's latest product.
HELD_OUT_SPLIT = {"kind": "temporal", "n_last": 1, "seed": 42}
Progress = Callable[[float, str], None]


def engines_dir() -> Path:
    """Where fitted engines live: ``$WORKBENCH_ENGINES_DIR`` or <artifact folder>/engines."""
    return artifact_path("engines", ENGINES_DIR_ENV)


@dataclass
class EngineSpec(JsonConfig):
    """What one engine is fitted from; equal specs give the same engine."""

    kind: str
    database: str  # a hash of the database URL: no credentials are written next to the engines
    catalog_version: int
    catalog_created: str  # a version id is reused when a database is made anew; its time is not
    events_version: int | None = None
    events_created: str | None = None
    implicit_weights: dict = field(default_factory=dict)
    embedding_model: str | None = None  # a sentence-transformers folder; None: the shipped MiniLM
    embedding_label: str = "embedding-base"
    backend: str | None = None  # the semantic source's encoder (search)
    index: dict | None = None  # the semantic source's nearest-neighbour index (search; None: auto)
    split: dict | None = None  # the held-out split (recommendations_heldout)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown engine kind {self.kind!r}; choose one of {', '.join(KINDS)}")

    @property
    def key(self) -> str:
        spec = self.to_dict()
        if spec["index"] is None:  # engines fitted before the field existed keep their folder
            del spec["index"]
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        events = f"-events{self.events_version}" if self.events_version is not None else ""
        return f"{self.kind}-catalog{self.catalog_version}{events}-{digest}"

    @property
    def folder(self) -> Path:
        return engines_dir() / self.key

    def describe(self) -> str:
        """The spec in words, e.g. "recommendations on catalog v1 and events v2, embedding-base"."""
        data = f"catalog v{self.catalog_version}"
        if self.events_version is not None:
            data += f" and events v{self.events_version}"
        held_out = " (train part of the held-out split)" if self.kind == "recommendations_heldout" else ""
        return f"{self.kind.split('_')[0]}{held_out} on {data}, {self.embedding_label}"


@dataclass
class HeldOut:
    """A recommender fitted on the train part of a split, and the held-out (user_id, product_id)."""

    recommender: object
    test: pd.DataFrame


def database_identity(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def active_specs(url: str) -> dict[str, EngineSpec]:
    """`specs_of` the active state of the database `url`."""
    return specs_of(read(url))


def specs_of(active: Active) -> dict[str, EngineSpec]:
    """{kind: spec} of the engines an active state asks for; kinds whose data is missing are left out."""
    catalog, events = active.data.get("catalog"), active.data.get("events")
    if catalog is None:
        return {}
    model = active.embedding
    common = {"database": database_identity(active.url), "catalog_version": catalog.id,
              "catalog_created": catalog.created_at.isoformat(), "embedding_model": model.path,
              "embedding_label": model.label}
    search_config = active.presets["search"].config
    specs = {"search": EngineSpec("search", backend=search_config.backend, index=search_config.semantic_index,
                                  **common)}
    if events is not None:
        # An erasure changes the rows, not the version: it is in the spec, so engines fitted before it
        # are not taken for engines fitted after it.
        created = events.created_at.isoformat() + (f" erased {events.erasures}" if events.erasures else "")
        with_events = {**common, "events_version": events.id, "events_created": created,
                       "implicit_weights": active.implicit_weights.to_dict()}
        specs["recommendations"] = EngineSpec("recommendations", **with_events)
        specs["recommendations_heldout"] = EngineSpec("recommendations_heldout", split=dict(HELD_OUT_SPLIT),
                                                      **with_events)
    return specs


def is_fitted(spec: EngineSpec) -> bool:
    return (spec.folder / SPEC_FILE).is_file()


def _interactions(spec: EngineSpec, url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_versions(url, spec.catalog_version, spec.events_version,
                         ImplicitWeights.from_dict(spec.implicit_weights))


def fit(spec: EngineSpec, url: str) -> Path:
    """Fit the engine of `spec` on the data it names and write its folder; returns the folder."""
    started = time.perf_counter()
    # Named by machine and process: replicas on several machines fit into one shared artifact folder.
    partial = spec.folder.with_name(f"{spec.key}.partial-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        if spec.kind == "search":
            with session_scope(url) as session:
                catalog = queries.products_frame(session, spec.catalog_version)

            # The shipped fusion with the preset's encoder: the fusion itself is chosen per request.
            fusion = default_config("search").to_dict()
            fusion["backend"] = spec.backend or fusion["backend"]
            fusion["semantic_index"] = spec.index
            build_retriever(catalog, fusion, spec.embedding_model).save(partial)
        else:
            interactions, catalog = _interactions(spec, url)
            if spec.kind == "recommendations_heldout":
                interactions, test = split_interactions(interactions, SplitConfig.from_dict(spec.split))
                partial.mkdir(parents=True)
                test[["user_id", "product_id"]].astype(str).to_parquet(partial / HELD_OUT_FILE, index=False)
            build_recommender(interactions, catalog, None, spec.embedding_model).save(partial / "model")
        meta = {**spec.to_dict(), "fit_s": round(time.perf_counter() - started, 3)}
        (partial / SPEC_FILE).write_text(json.dumps(meta, indent=2))
        if not is_fitted(spec):  # else another process published the same engine meanwhile
            shutil.rmtree(spec.folder, ignore_errors=True)  # a folder left without its spec file
            try:
                partial.rename(spec.folder)
            except OSError:
                if not is_fitted(spec):
                    raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return spec.folder


def load(spec: EngineSpec):
    """The fitted engine of `spec`: a HybridRetriever, a HybridRecommender or a `HeldOut`.

    FileNotFoundError when it has not been fitted (see `request_fit`).
    """
    if not is_fitted(spec):
        raise FileNotFoundError(f"the {spec.describe()} engine is not fitted yet")
    # The engine packages load their libraries (bm25s, faiss, LightGBM, surprise) when imported.
    if spec.kind == "search":
        return Retriever.load(spec.folder)

    recommender = Recommender.load(spec.folder / "model")
    if spec.kind == "recommendations":
        return recommender
    return HeldOut(recommender, pd.read_parquet(spec.folder / HELD_OUT_FILE))


def load_or_fit(spec: EngineSpec, url: str):
    """`load`, fitting first (in this process) when the engine is not on disk yet."""
    if not is_fitted(spec):
        fit(spec, url)
    return load(spec)


def fit_active(url: str, progress: Progress | None = None, rounds: int = 3) -> list[dict]:
    """Fit every active engine that is not fitted yet, then prune; returns what was fitted.

    The active state is read again after each round, so an activation made while fitting is
    fitted too (up to `rounds` times).
    """
    fitted = []
    for _ in range(rounds):
        missing = [spec for spec in active_specs(url).values() if not is_fitted(spec)]
        if not missing:
            break
        for number, spec in enumerate(missing):
            if progress:
                progress(number / len(missing), f"fitting the {spec.describe()} engine")
            started = time.perf_counter()
            fit(spec, url)
            fitted.append({"engine": spec.key, "what": spec.describe(),
                           "seconds": round(time.perf_counter() - started, 1)})
    prune(url)
    return fitted


def prune(url: str, keep: int = KEEP_INACTIVE) -> list[str]:
    """Remove engine folders of this database that are not active, but the newest `keep` per kind."""
    root = engines_dir()
    if not root.is_dir():
        return []
    active = {spec.key for spec in active_specs(url).values()}
    database = database_identity(url)
    by_kind: dict[str, list[Path]] = {}
    for folder in root.iterdir():
        meta_file = folder / SPEC_FILE
        if folder.name in active or not meta_file.is_file():
            continue
        meta = json.loads(meta_file.read_text())
        if meta.get("database") == database:
            by_kind.setdefault(meta["kind"], []).append(folder)
    removed = []
    for folders in by_kind.values():
        for folder in sorted(folders, key=lambda f: f.stat().st_mtime, reverse=True)[keep:]:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def remove_fitted_on(url: str, events_version_ids: set[int]) -> list[str]:
    """Remove this database's fitted engines learned from any of these events versions (after rows
    were erased from them: a fitted recommender remembers what it was fitted on)."""
    root = engines_dir()
    if not root.is_dir() or not events_version_ids:
        return []
    database = database_identity(url)
    removed = []
    for folder in root.iterdir():
        meta_file = folder / SPEC_FILE
        if not meta_file.is_file():
            continue
        meta = json.loads(meta_file.read_text())
        if meta.get("database") == database and meta.get("events_version") in events_version_ids:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def fit_on_activate() -> bool:
    """Whether an activation starts fitting its engines at once (``$WORKBENCH_FIT_ON_ACTIVATE``, default yes)."""
    return os.environ.get(FIT_ON_ACTIVATE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class FitSpec(JobSpec):
    """Fit the engines of the active state that are not fitted yet (nothing to say: the job
    reads the active state when it runs, and again before it ends)."""

    kind = JOB_KIND

    def lock(self) -> str:
        return "engines"


@dataclass
class FitResult(JobResult):
    fitted: list[dict]
    seconds: float


def running_fit(url: str) -> JobRecord | None:
    """The queued or running fit job, if there is one."""
    return next((job for job in list_jobs(JOB_KIND, url=url, limit=5) if job.status in ACTIVE), None)


def request_fit(url: str, actor: str, spawn: bool = True) -> int | None:
    """Start the job that fits what is active and missing; returns its id, or None when nothing is missing.

    A fit job already queued or running is returned instead of starting a second one: it reads
    the active state again before it ends.
    """
    if all(is_fitted(spec) for spec in active_specs(url).values()):
        return None
    try:
        return submit(FitSpec(), actor, url=url, spawn=spawn)
    except JobBusy:
        job = running_fit(url)
        return None if job is None else job.id


@cleaner(JOB_KIND)
def remove_partial_folders(job_id: int | None = None) -> list[str]:
    """Remove the half-written engine folders of this machine's fits whose process has ended (a
    killed fit); another machine's, in a shared artifact folder, are its own cleaner's business."""
    root = engines_dir()
    removed = []
    for folder in root.glob("*.partial-*") if root.is_dir() else ():
        host, _, pid = folder.name.split(".partial-", 1)[1].rpartition("-")
        if host in ("", socket.gethostname()) and pid.isdigit() and not alive_here(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


@runner(FitSpec, FitResult)
def run_fit(context: JobContext) -> FitResult:
    """Fit the active engines that are missing."""
    started = time.perf_counter()
    fitted = fit_active(context.url, context.progress)
    return FitResult(fitted=list(fitted), seconds=round(time.perf_counter() - started, 1))


# --- the command line: python -m recsys engines fit|list ------------------------------------

def add_parser(commands) -> None:
    parser = commands.add_parser("engines", help="fit the active engines now, or list them")
    parser.add_argument("action", choices=["fit", "list"],
                        help="fit: fit what is active and missing, in this process; list: the active "
                             "engines and whether they are fitted")
    parser.set_defaults(func=_cmd_engines)


def _cmd_engines(args) -> int:
    url = database_url()
    if args.action == "fit":
        fitted = fit_active(url, lambda _, message: print(message, file=sys.stderr, flush=True))
        print(json.dumps({"fitted": fitted}, indent=2))
        return 0
    print(json.dumps([{"kind": kind, "engine": spec.key, "what": spec.describe(), "fitted": is_fitted(spec)}
                      for kind, spec in active_specs(url).items()], indent=2))
    return 0
