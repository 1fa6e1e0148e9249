"""The fine-tuning job: active shop data in, a registered (not yet active) model out.

`prepare_pairs` turns the active catalog and one kind of training data
(judgments, search-log clicks or co-purchases) into train / validation / test
pairs split by query or anchor product, with the judgments to evaluate on.
`run_finetune` (the runner of jobs of kind "finetune", started from the
Fine-tune page through `recsys.jobs.submit`) trains on them in the worker
process, reporting progress, loss and validation nDCG to SQL, then measures the
base and the fine-tuned model on the validation and test queries with the
full-catalog protocol, picks example queries whose results changed, embeds the
catalog with the new model for the encoders the active presets serve (so that
activating it is instant) and registers it in the model registry. Only `activate_model` changes
what is served: a job that fails, is cancelled or is killed leaves the active
model as it was.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import pandas as pd

from db import queries
from db.engine import session_scope
from recsys import active
from recsys import model_registry as registry
from recsys.embeddings import default_model_path
from recsys.evaluation.search import evaluate_full_catalog
from recsys.factory import build_retriever
from recsys.fusion import presets
from recsys.jobs import JobContext, JobResult, JobSpec, cleaner, gpu_resources, runner
from recsys.search import get
from recsys.training.finetune import FinetuneConfig, finetune
from recsys.training.ltr import RankerConfig, grade_floor, train_ranker
from recsys.training.pairs import (
    SOURCES,
    SplitFractions,
    pairs_from_co_purchases,
    pairs_from_judgments,
    pairs_from_search_log,
    query_group,
    split_judgments,
    split_pairs,
)
from recsys.training.reranker import RerankerConfig, reranker_examples, train_reranker

# Defaults of the fine-tune offered on the Fine-tune page, sized for the shipped demo (co-purchases
# of Online Retail) to finish in under 5 minutes on the project's 2-core machine, comparison and
# catalog embedding included (bench/finetune_demo.py; docs/benchmarks.md).
DEMO_CONFIG = FinetuneConfig(max_steps=120, batch_size=32, learning_rate=5e-5, eval_steps=40,
                             validation_corpus=2000)
EXAMPLES = 5
SPLIT_SEED = 42


MODEL_JOBS = {"finetune": "embedding", "train_reranker": "reranker", "train_ranker": "reranker"}


@dataclass
class TrainingSpec(JobSpec):
    """The shares of judged queries (or anchors) held out for validation and test, and the seed
    of that split: its own, not the training seed, so that every run of a shop keeps the same
    test queries and a model started from the active one never is tested on queries that one
    was trained on."""

    validation: float = 0.1
    test: float = 0.1
    split_seed: int = SPLIT_SEED

    def fractions(self) -> SplitFractions:
        return SplitFractions(validation=float(self.validation), test=float(self.test),
                              seed=int(self.split_seed))

    def lock(self) -> str:
        return MODEL_JOBS[self.kind]


@dataclass
class FinetuneSpec(TrainingSpec):
    """Fine-tune the embedding model. `source`: the training data (one of
    `recsys.training.pairs.SOURCES`); `min_grade`: the lowest grade of a positive (judgments;
    None: the top third of the scale); `start_from`: "active" (the served model) or "shipped"
    (the shipped MiniLM). "Before" is always the served model."""

    kind = "finetune"
    source: str = "co_purchases"
    config: FinetuneConfig = field(default_factory=FinetuneConfig)
    min_grade: float | None = None
    start_from: str = "active"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown training data {self.source!r}; choose one of {', '.join(SOURCES)}")
        if self.start_from not in ("active", "shipped"):
            raise ValueError(f"start_from is 'active' or 'shipped', not {self.start_from!r}")

    def resources(self, cluster_gpus: float = 0.0) -> dict[str, float]:
        return gpu_resources(self.config.device, cluster_gpus)


@dataclass
class RerankerSpec(TrainingSpec):
    """Train a cross-encoder reranker on the active judgments (`min_grade`: the lowest grade of a
    relevant product; None: the top third of the scale)."""

    kind = "train_reranker"
    config: RerankerConfig = field(default_factory=RerankerConfig)
    min_grade: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Also reads the jobs stored by earlier versions, whose Fine-tune page sent a reranker the
        embedding fine-tune's "source" and "start_from" too (it never read them)."""
        unread = ("source", "start_from")
        return super().from_dict({key: value for key, value in data.items() if key not in unread})

    def resources(self, cluster_gpus: float = 0.0) -> dict[str, float]:
        return gpu_resources(self.config.device, cluster_gpus)


@dataclass
class RankerSpec(TrainingSpec):
    """Train a learned ranker over the search engine as served, on the active judgments."""

    kind = "train_ranker"
    config: RankerConfig = field(default_factory=RankerConfig)


LEGACY_KEYS = {"val_ndcg@10_before": "val_ndcg_before", "val_ndcg@10_after": "val_ndcg_after"}


@dataclass
class TrainedModel(JobResult):
    """What a training job made: the registered model (`model_id`, `version`; not active yet)
    and how it compares with what was served. `kind`: "embedding", "reranker" (a cross-encoder)
    or "ranker"; `pairs`: training examples per part; `steps`: training steps (trees for a
    ranker); `full_catalog`: {part: {"before"|"after": {metric: value}}}; `examples`: test
    queries whose top 5 changed."""

    model_id: int
    version: int
    kind: str
    source: str
    pairs: dict[str, int]
    steps: int
    train_s: float
    device: str
    val_ndcg_before: float | None
    val_ndcg_after: float | None
    steps_per_s: float | None = None
    train_pairs: int | None = None
    top_n: int | None = None
    loss_history: list = field(default_factory=list)
    validation_history: list = field(default_factory=list)
    full_catalog: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)
    importance: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Also reads the results of earlier versions (keys "val_ndcg@10_before", no "kind")."""
        data = {LEGACY_KEYS.get(key, key): value for key, value in data.items()}
        return super().from_dict({"kind": "embedding", **data})

    def headline(self) -> dict[str, dict[str, dict[str, float]]]:
        """The full-catalog metrics, or (for runs that have none) the validation nDCG@10."""
        return self.full_catalog or {"validation": {"before": {"ndcg@10": self.val_ndcg_before},
                                                    "after": {"ndcg@10": self.val_ndcg_after}}}


def remove_job_folders(job_kind: str, job_id: int) -> list[Path]:
    """Remove what a training job that did not succeed left: its model folder (unless registered),
    the half-written one and its checkpoints. Returns what was removed."""
    folder = Path(registry.model_dir(MODEL_JOBS[job_kind], f"job{job_id}"))
    models = registry.list_models(MODEL_JOBS[job_kind])
    registered = set() if models.empty else set(models["artifact_path"].astype(str))
    left = [folder.with_name(folder.name + ".partial"), *folder.parent.glob(f"checkpoints-{folder.name}-*")]
    if str(folder) not in registered:
        left.append(folder)
    removed = [path for path in left if path.exists()]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


for _kind in MODEL_JOBS:
    cleaner(_kind)(lambda job_id, kind=_kind: remove_job_folders(kind, job_id))


@contextmanager
def removed_on_failure(folder: Path):
    """Delete `folder` (and its half-written siblings) if the block raises, cancels included,
    so that a failed job leaves no unregistered model behind."""
    try:
        yield
    except BaseException:
        for path in (folder, folder.with_name(folder.name + ".partial")):
            shutil.rmtree(path, ignore_errors=True)
        raise


def default_min_grade(grades: pd.Series) -> float:
    """The start of the top third of the grade scale seen (2.33 on a 1..3 scale)."""
    low, high = float(grades.min()), float(grades.max())
    return round(low + (high - low) * 2 / 3, 2)


def evaluation_judgments(source: str, parts: dict[str, pd.DataFrame],
                         judged: dict[str, pd.DataFrame] | None) -> dict[str, pd.DataFrame]:
    """{part: query, product_id, grade} to evaluate on: the split judgments (every grade) for
    judgments, else each part's pairs with grade 1 (a click or a co-purchase is relevant)."""
    if source == "judgments" and judged is not None:
        return judged
    return {part: pd.DataFrame({"query": pairs["anchor"], "product_id": pairs["positive_id"], "grade": 1.0})
            for part, pairs in parts.items()}


def prepare_pairs(source: str, catalog: pd.DataFrame, *, judgments: pd.DataFrame | None = None,
                  search_log: pd.DataFrame | None = None, events: pd.DataFrame | None = None,
                  min_grade: float | None = None, fractions: SplitFractions = SplitFractions()) -> dict:
    """{"pairs": {part: pairs}, "judgments": {part: frame to evaluate on}, "min_grade": float|None}."""
    if source not in SOURCES:
        raise ValueError(f"unknown training data {source!r}; choose one of {', '.join(SOURCES)}")
    judged = None
    if source == "judgments":
        if judgments is None or judgments.empty:
            raise ValueError("there are no judgments: upload relevance judgments on the Data page first")
        min_grade = default_min_grade(judgments["grade"]) if min_grade is None else min_grade
        pairs = pairs_from_judgments(judgments, catalog, min_grade)
        judged = split_judgments(judgments, fractions)
    elif source == "search_log":
        if search_log is None or search_log.empty:
            raise ValueError("there is no search log: upload one on the Data page first")
        pairs = pairs_from_search_log(search_log, catalog)
    else:
        if events is None or events.empty:
            raise ValueError("there are no events: upload behaviour data on the Data page first")
        pairs = pairs_from_co_purchases(events, catalog)
    if pairs.empty:
        raise ValueError(f"the {source.replace('_', ' ')} gave no training pairs of products in the catalog")
    parts = split_pairs(pairs, fractions, both_products=source == "co_purchases")
    return {"pairs": parts, "judgments": evaluation_judgments(source, parts, judged), "min_grade": min_grade,
            "source": source,
            # The zero of the gains of every part: the lowest grade of the whole scale.
            "scale_min": float(judgments["grade"].min()) if judged is not None else 0.0}


def compare_models(catalog: pd.DataFrame, prepared: dict, before: str | None, after: str,
                   examples: int = EXAMPLES) -> dict:
    """Full-catalog nDCG@10 / Recall@100 of the `before` and `after` models on the validation
    and test parts of `prepared` (`prepare_pairs`), and up to `examples` test queries whose
    top 5 changed most (with titles and grades).

    Gains are grade minus the lowest grade of the scale (a click or a co-purchase: 1); recall
    counts the products a pair would have been made of (grade >= the training threshold).
    """
    retrievers = {"before": get("semantic")(model_path=before).fit(catalog),
                  "after": get("semantic")(model_path=after).fit(catalog)}
    scale_min = prepared["scale_min"]
    relevant = prepared["min_grade"] if prepared["source"] == "judgments" else 1.0
    judgments = prepared["judgments"]
    metrics = {part: {name: evaluate_full_catalog(retriever, judgments[part], min_grade=scale_min,
                                                  relevant_grade=relevant)
                      for name, retriever in retrievers.items()}
               for part in ("validation", "test") if not judgments[part].empty}
    return {"metrics": metrics, "examples": changed_examples(catalog, judgments["test"], retrievers, examples,
                                                             scale_min)}


def changed_examples(catalog: pd.DataFrame, judgments: pd.DataFrame, retrievers: dict, count: int,
                     scale_min: float = 0.0, pool: int = 200, seed: int = 0) -> list[dict]:
    """Test queries (a seeded sample of `pool`) whose top 5 differ most between the models, ties
    broken by the change of gain (grade - `scale_min`), with each hit's grade (or None)."""
    if judgments.empty:
        return []
    titles = dict(zip(catalog["product_id"].astype(str), catalog["title"]))
    grades = {(q, p): g for q, p, g in zip(judgments["query"], judgments["product_id"].astype(str),
                                           judgments["grade"])}
    queries = list(dict.fromkeys(judgments["query"]))
    if len(queries) > pool:
        queries = sorted(pd.Series(queries).sample(pool, random_state=seed))
    found = {name: retriever.search_many(queries, 5) for name, retriever in retrievers.items()}
    rows = []
    for index, query in enumerate(queries):
        lists = {name: [hit.product_id for hit in hits[index]] for name, hits in found.items()}
        changed = len(set(lists["before"]) ^ set(lists["after"]))
        gain = (sum(grades.get((query, p), scale_min) - scale_min for p in lists["after"])
                - sum(grades.get((query, p), scale_min) - scale_min for p in lists["before"]))
        rows.append((changed, abs(gain), query, lists))
    rows.sort(key=lambda row: (-row[0], -row[1], row[2]))
    return [{"query": query,
             **{name: [{"product_id": p, "title": titles.get(p, p), "grade": grades.get((query, p))}
                       for p in products] for name, products in lists.items()}}
            for changed, _, query, lists in rows[:count] if changed]


def served_backends(url: str) -> list[str]:
    """The encoders the active presets serve, and torch (what the trial pages' recommenders use)."""
    backends = {"torch"}
    with session_scope(url) as session:
        for scope in ("search", "recommendations"):
            preset = presets.active_preset(session, scope)
            backends.add(preset.config.backend if preset else presets.default_config(scope).backend)
    return sorted(backends)


def embed_catalog(catalog: pd.DataFrame, model_path: str, backends: list[str]) -> None:
    """Fill the embedding cache of `catalog` for the new model with each of `backends`."""
    for backend in backends:
        get("semantic")(model_path=model_path, backend=backend).fit(catalog)


def _load_active_data(url: str, source: str) -> tuple[pd.DataFrame, dict, dict[str, int]]:
    kinds = {"judgments": "judgments", "search_log": "search_log", "co_purchases": "events"}
    with session_scope(url) as session:
        catalog_version = queries.active_version(session, "catalog")
        data_version = queries.active_version(session, kinds[source])
        if catalog_version is None:
            raise LookupError("there is no active catalog: upload one on the Data page first")
        if data_version is None:
            raise LookupError(f"there is no active {kinds[source].replace('_', ' ')} data: "
                              "upload it on the Data page first")
        catalog = queries.products_frame(session, catalog_version.id)
        loader = {"judgments": queries.judgments_frame, "search_log": queries.search_log_frame,
                  "co_purchases": queries.events_frame}[source]
        data = {{"co_purchases": "events"}.get(source, source): loader(session, data_version.id)}
    return catalog, data, {"catalog": catalog_version.id, kinds[source]: data_version.id}


def progress_reporter(context: JobContext, start: float = 0.05, end: float = 0.8):
    """A `finetune(report=...)` callback that writes progress (a share of start..end) and a log
    line per step to the job's rows in SQL; raises JobCancelled when a cancel was asked."""
    last_logged = {"step": -1}

    def report(row: dict) -> None:
        fraction = start + (end - start) * row["step"] / max(row["total_steps"], 1)
        validation = "" if row["val_ndcg@10"] is None else f", validation nDCG@10 {row['val_ndcg@10']:.4f}"
        loss = "" if row["loss"] is None else f", loss {row['loss']:.4f}"
        message = (f"step {row['step']}/{row['total_steps']}{loss}{validation}, "
                   f"about {row['left_s'] / 60:.1f} min left")
        # The trainer logs a step twice when it also evaluates it: the second line carries the
        # validation score, which is logged only then (not repeated on later steps).
        evaluated = row["val_ndcg@10"] is not None and row["step"] == last_logged["step"]
        if row["step"] != last_logged["step"] or evaluated:
            context.log(message, step=row["step"], loss=row["loss"],
                        val_ndcg=row["val_ndcg@10"] if evaluated else None,
                        elapsed_s=row["elapsed_s"], left_s=row["left_s"])
            last_logged["step"] = row["step"]
        context.progress(fraction, message)

    return report


def boosting_reporter(context: JobContext, start: float, end: float):
    """A `train_ranker(report=...)` callback: a log line per report (tree, validation nDCG@10 of
    the candidates, for the page's chart) and progress (a share of start..end); raises
    JobCancelled when a cancel was asked."""

    def report(row: dict) -> None:
        message = (f"tree {row['step']} of at most {row['total_steps']}, validation nDCG@10 of the "
                   f"candidates {row['val_ndcg@10']:.4f}" if row["val_ndcg@10"] is not None
                   else f"tree {row['step']} of at most {row['total_steps']}")
        context.log(message, step=row["step"], val_ndcg=row["val_ndcg@10"], elapsed_s=row["elapsed_s"])
        context.progress(start + (end - start) * row["step"] / max(row["total_steps"], 1), message)

    return report


def low_grade(grades: pd.Series) -> float:
    """The end of the bottom third of the grade scale seen (1.67 on a 1..3 scale)."""
    low, high = float(grades.min()), float(grades.max())
    return round(low + (high - low) / 3, 2)


def judged_for_negatives(prepared: dict, judgments: pd.DataFrame | None
                         ) -> tuple[dict[str, set[str]] | None, dict[str, list[str]] | None]:
    """For each training anchor (a query, under any spelling): every product judged for it
    (never mined from BM25 as a negative: the judges saw it, and it may be relevant) and, in
    file order, those graded in the bottom third of the scale (the preferred hard negatives:
    products a search returned for the query that the judges found not relevant).
    (None, None) without judgments."""
    if judgments is None:
        return None, None
    groups = judgments["query"].astype(str).map(query_group)
    ids = judgments["product_id"].astype(str)
    judged = ids.groupby(groups).agg(set).to_dict()
    low = ids[judgments["grade"] <= low_grade(judgments["grade"])].groupby(groups).agg(list).to_dict()
    train = prepared["pairs"]["train"]
    anchors = dict(zip(train["anchor_id"], train["group"]))
    return ({anchor: judged.get(group, set()) for anchor, group in anchors.items()},
            {anchor: low[group] for anchor, group in anchors.items() if group in low})


@runner(FinetuneSpec, TrainedModel)
def run_finetune(context: JobContext) -> TrainedModel:
    """Fine-tune the embedding model as `context.spec` (a FinetuneSpec) says."""
    spec: FinetuneSpec = context.spec
    config = FinetuneConfig.from_dict(spec.config.to_dict())
    source = spec.source
    context.progress(0.01, f"loading the active catalog and {source.replace('_', ' ')}")
    catalog, data, versions = _load_active_data(context.url, source)
    fractions = spec.fractions()
    prepared = prepare_pairs(source, catalog, min_grade=spec.min_grade, fractions=fractions, **data)
    pairs = prepared["pairs"]
    counts = {part: len(frame) for part, frame in pairs.items()}
    context.log(f"{counts['train']:,} training pairs, {counts['validation']:,} validation, "
                f"{counts['test']:,} test", **counts)
    active = registry.active_model_path("embedding", context.url)
    if spec.start_from == "active" and not config.base_model:
        config.base_model = active
    base = config.base_model
    out_dir = Path(registry.model_dir("embedding", f"job{context.job_id}"))
    context.progress(0.05, "training")
    extra = prepared["judgments"]["validation"]["product_id"].astype(str)
    judged, low = judged_for_negatives(prepared, data.get("judgments"))
    with removed_on_failure(out_dir):
        trained = finetune(pairs["train"], pairs["validation"], catalog, config, out_dir,
                           report=progress_reporter(context), validation_extra=extra,
                           negatives_exclude=judged, judged_negatives=low)
        context.progress(0.82, "comparing the base and the fine-tuned model on validation and test")
        started = time.perf_counter()
        comparison = compare_models(catalog, prepared, active, str(out_dir))
        context.log(f"compared in {time.perf_counter() - started:.0f} s", **{
            f"{part}_{name}_ndcg@10": scores["ndcg@10"]
            for part, by_model in comparison["metrics"].items() for name, scores in by_model.items()})
        context.progress(0.92, "embedding the catalog with the new model")
        embed_catalog(catalog, str(out_dir), served_backends(context.url))
        context.progress(0.99, "registering the model")
    metrics = {"train_s": trained["train_s"], "steps": trained["steps"], "steps_per_s": trained["steps_per_s"],
               "val_ndcg@10_before": trained["val_ndcg@10_before"],
               "val_ndcg@10_after": trained["val_ndcg@10_after"], "full_catalog": comparison["metrics"]}
    model = registry.register_model(
        "embedding", str(out_dir), base_model=str(base or default_model_path()),
        training_data={"source": source, "dataset_version_ids": versions, "pairs": counts,
                       "min_grade": prepared["min_grade"], "split": asdict(fractions)},
        hyperparameters=config.to_dict(), metrics=metrics, actor=context.actor, job_id=context.job_id)
    return TrainedModel(
        model_id=model.id, version=model.version, kind="embedding", source=source, pairs=counts,
        steps=trained["steps"], train_s=trained["train_s"], device=trained["device"],
        val_ndcg_before=trained["val_ndcg@10_before"], val_ndcg_after=trained["val_ndcg@10_after"],
        steps_per_s=trained["steps_per_s"], train_pairs=trained["train_pairs"],
        loss_history=trained["loss_history"], validation_history=trained["validation_history"],
        full_catalog=comparison["metrics"], examples=comparison["examples"])


def _active_judgments(context: JobContext) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(catalog, judgments, data versions) of the active data; ValueError without judgments."""
    context.progress(0.01, "loading the active catalog and judgments")
    catalog, data, versions = _load_active_data(context.url, "judgments")
    if data["judgments"].empty:
        raise ValueError("there are no judgments: upload relevance judgments on the Data page first")
    return catalog, data["judgments"], versions


@runner(RerankerSpec, TrainedModel)
def run_train_reranker(context: JobContext) -> TrainedModel:
    """Train a cross-encoder on the active judgments' train queries; "before" is BM25's order of
    each validation query's candidates."""
    spec: RerankerSpec = context.spec
    config = spec.config
    catalog, judgments, versions = _active_judgments(context)
    min_grade = default_min_grade(judgments["grade"]) if spec.min_grade is None else float(spec.min_grade)
    fractions = spec.fractions()
    judged = split_judgments(judgments, fractions)
    context.progress(0.03, "labelling judged products and mining BM25 negatives")
    examples = reranker_examples(judged["train"], catalog, min_grade, config.negatives_per_query, config.seed)
    context.log(f"{len(examples):,} training examples ({int(examples['label'].sum()):,} relevant), "
                f"{judged['validation']['query'].nunique():,} validation queries",
                train=len(examples), positives=int(examples["label"].sum()))
    out_dir = Path(registry.model_dir("reranker", f"job{context.job_id}"))
    with removed_on_failure(out_dir):
        trained = train_reranker(examples, judged["validation"], catalog, config, out_dir,
                                 report=progress_reporter(context, 0.05, 0.95))
        context.progress(0.99, "registering the model")
    metrics = {key: trained[key] for key in ("train_s", "steps", "steps_per_s", "val_ndcg@10_before",
                                             "val_ndcg@10_after")}
    model = registry.register_model(
        "reranker", str(out_dir), base_model=str(config.base_model or "all-MiniLM-L6-v2 (shipped)"),
        training_data={"source": "judgments", "dataset_version_ids": versions, "min_grade": min_grade,
                       "examples": len(examples), "split": asdict(fractions)},
        hyperparameters=config.to_dict(), metrics=metrics, actor=context.actor, job_id=context.job_id)
    return TrainedModel(
        model_id=model.id, version=model.version, kind="reranker", source="judgments",
        pairs={"train": len(examples)}, steps=trained["steps"], train_s=trained["train_s"],
        device=trained["device"], val_ndcg_before=trained["val_ndcg@10_before"],
        val_ndcg_after=trained["val_ndcg@10_after"], steps_per_s=trained["steps_per_s"],
        loss_history=trained.get("loss_history", []),
        validation_history=trained.get("validation_history", []))


def search_engine_for_training(url: str, catalog: pd.DataFrame):
    """The hybrid that search serves (`recsys.serving.engine`: the active embedding model and
    search preset), without the preset's reranker and rules, fitted on `catalog`: what a learned
    ranker is trained over."""
    state = active.read(url)
    served = state.presets["search"].config.to_dict()
    return build_retriever(catalog, {**served, "rules": [], "reranker": None, "rerank_top": 0}, state.embedding.path)


@runner(RankerSpec, TrainedModel)
def run_train_ranker(context: JobContext) -> TrainedModel:
    """Train a learned ranker over the search engine as served (`search_engine_for_training`) on
    the active judgments' train queries, with early stopping on the validation queries; before
    and after are that engine without and with the ranker reordering its fused top `top_n`."""
    spec: RankerSpec = context.spec
    config = spec.config
    catalog, judgments, versions = _active_judgments(context)
    fractions = spec.fractions()
    judged = split_judgments(judgments, fractions)
    if judged["train"].empty or judged["validation"].empty:
        raise ValueError(f"{judgments['query'].nunique()} judged queries are too few to split into train and "
                         "validation queries: a learned ranker needs judgments of more queries")
    context.progress(0.05, "indexing the catalog with the served search engine")
    hybrid = search_engine_for_training(context.url, catalog)
    context.progress(0.2, f"reading the fused top {config.top_n} of each judged query")
    out_dir = Path(registry.model_dir("reranker", f"job{context.job_id}"))
    with removed_on_failure(out_dir):
        trained = train_ranker(hybrid, judged["train"], judged["validation"], config, out_dir,
                               report=boosting_reporter(context, 0.4, 0.85))
        context.log(f"{trained['trees']} trees from {trained['train_queries']:,} queries "
                    f"({trained['train_items']:,} items) in {trained['train_s']:.1f} s",
                    train=trained["train_items"])
        context.progress(0.88, "comparing search without and with the ranker on validation and test")
        ranked = hybrid.with_fusion({**hybrid.fusion.to_dict(), "reranker": str(out_dir),
                                     "rerank_top": config.top_n})
        floor = grade_floor(pd.to_numeric(judgments["grade"]))
        relevant = default_min_grade(judgments["grade"])
        engines = {"before": hybrid, "after": ranked}
        metrics = {part: {name: evaluate_full_catalog(engine, judged[part], min_grade=floor,
                                                      relevant_grade=relevant)
                          for name, engine in engines.items()}
                   for part in ("validation", "test") if not judged[part].empty}
        examples = changed_examples(catalog, judged["test"], engines, EXAMPLES, floor)
        context.progress(0.99, "registering the model")
    model = registry.register_model(
        "reranker", str(out_dir), base_model="learned ranker (LightGBM LambdaMART)",
        training_data={"source": "judgments", "dataset_version_ids": versions, "queries": trained["train_queries"],
                       "examples": trained["train_items"], "split": asdict(fractions),
                       "engine": {"fusion": trained["fusion"], "embedding_model": next(
                           (s.config.model_path for s in hybrid.sources if s.name == "semantic"), None)}},
        hyperparameters=config.to_dict(),
        metrics={key: trained[key] for key in ("train_s", "trees", "val_ndcg@10_before", "val_ndcg@10_after")},
        actor=context.actor, job_id=context.job_id)
    return TrainedModel(
        model_id=model.id, version=model.version, kind="ranker", source="judgments",
        pairs={"train": trained["train_items"]}, steps=trained["trees"], train_s=trained["train_s"],
        device="cpu", val_ndcg_before=trained["val_ndcg@10_before"],
        val_ndcg_after=trained["val_ndcg@10_after"],
        top_n=config.top_n, importance=trained["importance"], full_catalog=metrics, examples=examples)
