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

import time
from pathlib import Path

import pandas as pd

from recsys.jobs import JobContext, runner
from recsys.training.finetune import FinetuneConfig, finetune
from recsys.training.pairs import (SOURCES, SplitFractions, pairs_from_co_purchases, pairs_from_judgments,
                                   pairs_from_search_log, split_judgments, split_pairs)

LOCK = "embedding"
# Defaults of the fine-tune offered on the Fine-tune page for the shipped demo (co-purchases of
# Online Retail): 150 steps of batch 32 take about 3 minutes on the project's 2-core machine.
DEMO_CONFIG = FinetuneConfig(max_steps=150, batch_size=32, learning_rate=5e-5, eval_steps=50,
                             validation_corpus=4000)
EXAMPLES = 5


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
    parts = split_pairs(pairs, fractions)
    return {"pairs": parts, "judgments": evaluation_judgments(source, parts, judged), "min_grade": min_grade}


def compare_models(catalog: pd.DataFrame, judgments: dict[str, pd.DataFrame], before: str | None,
                   after: str, examples: int = EXAMPLES) -> dict:
    """Full-catalog nDCG@10 / Recall@100 of the `before` and `after` models on each part, and
    up to `examples` test queries whose top 5 changed most (with titles and grades)."""
    from recsys.evaluation.search import evaluate_full_catalog
    from recsys.search import get

    retrievers = {"before": get("semantic")(model_path=before).fit(catalog),
                  "after": get("semantic")(model_path=after).fit(catalog)}
    scale = 0.0 if all(frame["grade"].eq(1.0).all() for frame in judgments.values()) else None
    metrics = {part: {name: evaluate_full_catalog(retriever, frame, min_grade=scale,
                                                  relevant_grade=1.0 if scale == 0.0 else 2.5)
                      for name, retriever in retrievers.items()}
               for part, frame in judgments.items() if part != "train" and not frame.empty}
    return {"metrics": metrics, "examples": changed_examples(catalog, judgments.get("test"), retrievers, examples)}


def changed_examples(catalog: pd.DataFrame, judgments: pd.DataFrame | None, retrievers: dict,
                     count: int, pool: int = 200) -> list[dict]:
    """Test queries whose top 5 differ most between the models, with each hit's grade (or None)."""
    if judgments is None or judgments.empty:
        return []
    titles = dict(zip(catalog["product_id"].astype(str), catalog["title"]))
    grades = {(q, p): g for q, p, g in zip(judgments["query"], judgments["product_id"].astype(str),
                                           judgments["grade"])}
    queries = list(dict.fromkeys(judgments["query"]))[:pool]
    found = {name: retriever.search_many(queries, 5) for name, retriever in retrievers.items()}
    rows = []
    for index, query in enumerate(queries):
        lists = {name: [hit.product_id for hit in hits[index]] for name, hits in found.items()}
        changed = len(set(lists["before"]) ^ set(lists["after"]))
        gain = (sum(grades.get((query, p), 0) for p in lists["after"])
                - sum(grades.get((query, p), 0) for p in lists["before"]))
        rows.append((changed, abs(gain), query, lists))
    rows.sort(key=lambda row: (-row[0], -row[1], row[2]))
    return [{"query": query,
             **{name: [{"product_id": p, "title": titles.get(p, p), "grade": grades.get((query, p))}
                       for p in products] for name, products in lists.items()}}
            for changed, _, query, lists in rows[:count] if changed]


def served_backends(url: str) -> list[str]:
    """The encoders the active presets serve, and torch (what the trial pages' recommenders use)."""
    from db.engine import session_scope
    from recsys.fusion import presets

    backends = {"torch"}
    with session_scope(url) as session:
        for scope in ("search", "recommendations"):
            preset = presets.active_preset(session, scope)
            backends.add(preset.config.backend if preset else presets.default_config(scope).backend)
    return sorted(backends)


def embed_catalog(catalog: pd.DataFrame, model_path: str, backends: list[str]) -> None:
    """Fill the embedding cache of `catalog` for the new model with each of `backends`."""
    from recsys.search import get

    for backend in backends:
        get("semantic")(model_path=model_path, backend=backend).fit(catalog)


def _load_active_data(url: str, source: str) -> tuple[pd.DataFrame, dict, dict[str, int]]:
    from db import queries
    from db.engine import session_scope

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
        if row["step"] != last_logged["step"] or row["val_ndcg@10"] is not None:
            context.log(message, step=row["step"], loss=row["loss"], val_ndcg=row["val_ndcg@10"],
                        elapsed_s=row["elapsed_s"], left_s=row["left_s"])
            last_logged["step"] = row["step"]
        context.progress(fraction, message)

    return report


@runner("finetune")
def run_finetune(context: JobContext) -> dict:
    """params: source, min_grade (judgments; default the top third of the scale), config
    (FinetuneConfig dict), start_from ("active": the served model, default; "shipped": the
    shipped MiniLM), validation and test shares. "Before" is always the served model."""
    from recsys.embeddings import default_model_path
    from recsys.training import registry

    params = context.params
    config = FinetuneConfig.from_dict(params.get("config"))
    source = params.get("source", "co_purchases")
    context.progress(0.01, f"loading the active catalog and {source.replace('_', ' ')}")
    catalog, data, versions = _load_active_data(context.url, source)
    fractions = SplitFractions(validation=float(params.get("validation", 0.1)),
                               test=float(params.get("test", 0.1)), seed=config.seed)
    prepared = prepare_pairs(source, catalog, min_grade=params.get("min_grade"), fractions=fractions, **data)
    pairs = prepared["pairs"]
    counts = {part: len(frame) for part, frame in pairs.items()}
    context.log(f"{counts['train']:,} training pairs, {counts['validation']:,} validation, "
                f"{counts['test']:,} test", **counts)
    active = registry.active_model_path("embedding", context.url)
    if params.get("start_from", "active") == "active" and not config.base_model:
        config.base_model = active
    base = config.base_model
    out_dir = Path(registry.model_dir("embedding", f"job{context.job_id}"))
    report = progress_reporter(context)
    context.progress(0.05, "training")
    extra = prepared["judgments"]["validation"]["product_id"].astype(str)
    trained = finetune(pairs["train"], pairs["validation"], catalog, config, out_dir, report=report,
                       validation_extra=extra)
    context.progress(0.82, "comparing the base and the fine-tuned model on validation and test")
    started = time.perf_counter()
    comparison = compare_models(catalog, prepared["judgments"], active, str(out_dir))
    context.log(f"compared in {time.perf_counter() - started:.0f} s", **{
        f"{part}_{name}_ndcg@10": scores["ndcg@10"]
        for part, by_model in comparison["metrics"].items() for name, scores in by_model.items()})
    context.progress(0.92, "embedding the catalog with the new model")
    embed_catalog(catalog, str(out_dir), served_backends(context.url))
    metrics = {"train_s": trained["train_s"], "steps": trained["steps"], "steps_per_s": trained["steps_per_s"],
               "val_ndcg@10_before": trained["val_ndcg@10_before"],
               "val_ndcg@10_after": trained["val_ndcg@10_after"], "full_catalog": comparison["metrics"]}
    model = registry.register_model(
        "embedding", str(out_dir), base_model=str(base or default_model_path()),
        training_data={"source": source, "dataset_version_ids": versions, "pairs": counts,
                       "min_grade": prepared["min_grade"]},
        hyperparameters=config.to_dict(), metrics=metrics, actor=context.actor, job_id=context.job_id)
    return {"model_id": model["id"], "version": model["version"], "source": source, "pairs": counts,
            **{key: trained[key] for key in ("train_pairs", "train_s", "steps", "steps_per_s", "device",
                                            "val_ndcg@10_before", "val_ndcg@10_after", "loss_history",
                                            "validation_history")},
            "full_catalog": comparison["metrics"], "examples": comparison["examples"]}


@runner("train_reranker")
def run_train_reranker(context: JobContext) -> dict:
    """params: min_grade (default the top third of the scale), config (RerankerConfig dict),
    validation and test shares. Trains on the active judgments' train queries; "before" is
    BM25's order of each validation query's candidates."""
    from recsys.training import registry
    from recsys.training.reranker import RerankerConfig, reranker_examples, train_reranker

    params = context.params
    config = RerankerConfig.from_dict(params.get("config"))
    context.progress(0.01, "loading the active catalog and judgments")
    catalog, data, versions = _load_active_data(context.url, "judgments")
    judgments = data["judgments"]
    if judgments.empty:
        raise ValueError("there are no judgments: upload relevance judgments on the Data page first")
    min_grade = params.get("min_grade")
    min_grade = default_min_grade(judgments["grade"]) if min_grade is None else float(min_grade)
    fractions = SplitFractions(validation=float(params.get("validation", 0.1)),
                               test=float(params.get("test", 0.1)), seed=config.seed)
    judged = split_judgments(judgments, fractions)
    context.progress(0.03, "labelling judged products and mining BM25 negatives")
    examples = reranker_examples(judged["train"], catalog, min_grade, config.negatives_per_query, config.seed)
    context.log(f"{len(examples):,} training examples ({int(examples['label'].sum()):,} relevant), "
                f"{judged['validation']['query'].nunique():,} validation queries",
                train=len(examples), positives=int(examples["label"].sum()))
    out_dir = Path(registry.model_dir("reranker", f"job{context.job_id}"))
    trained = train_reranker(examples, judged["validation"], catalog, config, out_dir,
                             report=progress_reporter(context, 0.05, 0.95))
    metrics = {key: trained[key] for key in ("train_s", "steps", "steps_per_s", "val_ndcg@10_before",
                                             "val_ndcg@10_after")}
    model = registry.register_model(
        "reranker", str(out_dir), base_model=str(config.base_model or "all-MiniLM-L6-v2 (shipped)"),
        training_data={"source": "judgments", "dataset_version_ids": versions, "min_grade": min_grade,
                       "examples": len(examples)},
        hyperparameters=config.to_dict(), metrics=metrics, actor=context.actor, job_id=context.job_id)
    return {"model_id": model["id"], "version": model["version"], "source": "judgments", "kind": "reranker",
            "pairs": {"train": len(examples)}, **{key: trained[key] for key in (
                "train_s", "steps", "steps_per_s", "device", "val_ndcg@10_before", "val_ndcg@10_after")},
            "loss_history": trained.get("loss_history", []), "validation_history": trained.get("validation_history", [])}
