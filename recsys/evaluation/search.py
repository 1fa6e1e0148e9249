"""Judgment-list evaluation of retrievers, and the `evaluate-search` command.

A judgment list grades (query, product) pairs, e.g. Home Depot's mean of three
raters in [1, 3] (1 irrelevant, 2 partly relevant, 3 perfect match). Two
protocols, both over the judged queries:

- **Full-catalog retrieval**: each query searches the whole catalog.
  nDCG@k with linear gain = grade minus the lowest grade of the scale
  (`min_grade`; by default the lowest grade in the judgments, 1 for Home Depot),
  unjudged products gain 0 (Järvelin and Kekäläinen, 2002); and Recall@100 of the
  products graded at or above `relevant_grade` (default 2.5: on Home Depot's
  scale, most raters called it a perfect match). Queries with no product of
  positive gain (no relevant product, for recall) are left out, as trec_eval does.
- **Reranking**: each query's judged products are ordered by the retriever's
  `score`, and nDCG@k is taken over that order. It measures the ordering of
  candidates independently of recall.

Latency is that of `search(query, k)` for one query at a time (query encoding
included), after a warm-up, on a seeded sample of the queries: p50 and p95.

Metrics come from `recsys.evaluation.metrics.ranking_metrics` (ranx).

>>> import pandas as pd
>>> from recsys.search import get
>>> catalog = pd.DataFrame({"product_id": ["1", "2", "3"],
...                         "title": ["Red mug", "Blue mug", "Garden chair"]})
>>> judgments = pd.DataFrame({"query": ["red mug", "red mug"], "product_id": ["1", "2"],
...                           "grade": [3.0, 1.0]})
>>> retriever = get("bm25")().fit(catalog)
>>> evaluate_full_catalog(retriever, judgments)
{'ndcg@10': 1.0, 'recall@100': 1.0}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsys import factory, model_registry
from recsys.data.readers import read_table
from recsys.data.report import IngestError
from recsys.evaluation.metrics import ranking_metrics
from recsys.evaluation.splits import split_judgments
from recsys.fusion.presets import preset_config
from recsys.search import names

DEFAULT_RELEVANT_GRADE = 2.5
LATENCY_SAMPLE = 200
LATENCY_WARMUP = 20


def graded_pairs(judgments: pd.DataFrame) -> pd.DataFrame:
    """query, product_id (str), grade (float): one row per pair, blank queries dropped."""
    frame = judgments[["query", "product_id", "grade"]].assign(
        query=judgments["query"].astype(str), product_id=judgments["product_id"].astype(str),
        grade=pd.to_numeric(judgments["grade"]).astype(float))
    frame = frame[frame["query"].str.strip() != ""]
    return frame.groupby(["query", "product_id"], as_index=False, sort=False)["grade"].mean()


def _qrels(frame: pd.DataFrame, gain: pd.Series) -> dict[str, dict[str, float]]:
    qrels: dict[str, dict[str, float]] = {}
    for query, product_id, value in zip(frame["query"], frame["product_id"], gain):
        qrels.setdefault(query, {})[product_id] = float(value)
    return qrels


def _metric(qrels: dict, run: dict, metric: str, k: int) -> float:
    # ranking_metrics is asked for two metrics: ranx returns a bare float, not a dict, for one.
    other = "precision" if metric != "precision" else "recall"
    return ranking_metrics(qrels, run, k=k, metrics=(metric, other))[f"{metric}@{k}"]


def graded_qrels(judgments: pd.DataFrame, min_grade: float | None = None) -> dict[str, dict[str, float]]:
    """{query: {product_id: grade - min_grade}}; `min_grade` defaults to the lowest grade seen."""
    frame = graded_pairs(judgments)
    floor = frame["grade"].min() if min_grade is None else min_grade
    return _qrels(frame, (frame["grade"] - floor).clip(lower=0))


def relevant_qrels(judgments: pd.DataFrame,
                   relevant_grade: float = DEFAULT_RELEVANT_GRADE) -> dict[str, dict[str, float]]:
    """{query: {product_id: 1}} for the products graded at or above `relevant_grade`."""
    frame = graded_pairs(judgments)
    return _qrels(frame, (frame["grade"] >= relevant_grade).astype(float))


def evaluate_full_catalog(retriever, judgments: pd.DataFrame, k: int = 10, recall_k: int = 100,
                          relevant_grade: float = DEFAULT_RELEVANT_GRADE,
                          min_grade: float | None = None) -> dict[str, float]:
    """nDCG@k and Recall@recall_k of retrieving each judged query from the whole catalog.

    `judgments` has columns query, product_id, grade; `retriever` is fitted.
    """
    graded = graded_qrels(judgments, min_grade)
    queries = list(graded)
    hits = retriever.search_many(queries, max(k, recall_k))
    run = {query: [(hit.product_id, hit.score) for hit in found] for query, found in zip(queries, hits)}
    ndcg = _metric(graded, run, "ndcg", k)
    recall = _metric(relevant_qrels(judgments, relevant_grade), run, "recall", recall_k)
    return {f"ndcg@{k}": ndcg, f"recall@{recall_k}": recall}


def evaluate_rerank(retriever, judgments: pd.DataFrame, k: int = 10,
                    min_grade: float | None = None) -> dict[str, float]:
    """nDCG@k of each query's judged products ordered by `retriever.score`.

    Ties keep the products' order by id, so the file's order cannot leak in.
    """
    graded = graded_qrels(judgments, min_grade)
    queries = list(graded)
    products = [sorted(graded[query]) for query in queries]
    scores = retriever.score_many(queries, products)
    run = {}
    for query, ids, values in zip(queries, products, scores):
        order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
        run[query] = [(ids[i], float(values[i])) for i in order]
    return {f"rerank_ndcg@{k}": _metric(graded, run, "ndcg", k)}


def measure_latency(retriever, queries: list[str], k: int = 10, sample: int = LATENCY_SAMPLE,
                    warmup: int = LATENCY_WARMUP, seed: int = 0) -> dict[str, float]:
    """p50 and p95 milliseconds of `retriever.search(query, k)`, one query at a time.

    Times a seeded sample of `sample` distinct queries after `warmup` untimed searches.
    """
    distinct = sorted(set(queries))
    rng = np.random.default_rng(seed)
    chosen = [distinct[i] for i in rng.permutation(len(distinct))[:sample]]
    for query in (chosen * (warmup // max(len(chosen), 1) + 1))[:warmup]:
        retriever.search(query, k)
    timings = []
    for query in chosen:
        start = time.perf_counter()
        retriever.search(query, k)
        timings.append((time.perf_counter() - start) * 1000)
    return {"latency_ms_p50": float(np.percentile(timings, 50)),
            "latency_ms_p95": float(np.percentile(timings, 95))}


def evaluate_search(retriever, judgments: pd.DataFrame, k: int = 10, recall_k: int = 100,
                    relevant_grade: float = DEFAULT_RELEVANT_GRADE, min_grade: float | None = None,
                    latency_sample: int = LATENCY_SAMPLE, seed: int = 0) -> dict[str, float | int]:
    """Both protocols and the latency: {queries, ndcg@k, recall@recall_k, rerank_ndcg@k, latency_ms_*}."""
    graded = graded_qrels(judgments, min_grade)
    result: dict[str, float | int] = {"queries": len(graded)}
    result.update(evaluate_full_catalog(retriever, judgments, k, recall_k, relevant_grade, min_grade))
    result.update(evaluate_rerank(retriever, judgments, k, min_grade))
    if latency_sample > 0:
        result.update(measure_latency(retriever, list(graded), k, latency_sample, seed=seed))
    return result


# --- the command: python -m recsys evaluate-search ... ----------------------------------


class InputError(Exception):
    """A file or column a user named that cannot be used."""

def read_columns(path: str, columns: dict[str, str], role: str) -> pd.DataFrame:
    """The `columns` ({file column: our name}) of the table at `path`, ids and texts as strings."""
    if not Path(path).is_file():
        raise InputError(f"the {role} file {path} does not exist or is not a file")
    try:
        frame, _ = read_table(path)
    except IngestError as error:
        raise InputError("; ".join(problem.message() for problem in error.report.problems)
                         or str(error)) from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputError(f"{path}: the {role} file has no column {', '.join(map(repr, missing))}; "
                         f"its columns are {', '.join(map(str, frame.columns))}")
    frame = frame[list(columns)].rename(columns=columns)
    for column in frame.columns:
        if column != "grade":
            frame[column] = frame[column].astype("string").fillna("").astype(str)
    return frame


def _grades(frame: pd.DataFrame, path: str, column: str) -> pd.DataFrame:
    grades = pd.to_numeric(frame["grade"], errors="coerce")
    bad = grades.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise InputError(f"{path}, row {row}, column '{column}': is not a number "
                         f"(value {frame['grade'].iloc[row - 1]!r}); grades must be numbers")
    return frame.assign(grade=grades.astype(float))


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `evaluate-search` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "evaluate-search", help="evaluate a retriever on a judgment list (JSON on stdout)",
        description="Retrieve each judged query from the whole catalog (nDCG@k, Recall@100), "
                    "rerank its judged products (nDCG@k) and time single searches (p50, p95).")
    parser.add_argument("--catalog", required=True, help="products: CSV, TSV or Parquet")
    parser.add_argument("--id-col", default="product_uid", help="product id column of the catalog")
    parser.add_argument("--text-col", default="product_title", help="text column of the catalog")
    parser.add_argument("--judgments", required=True, help="graded (query, product) pairs")
    parser.add_argument("--query-col", default="query")
    parser.add_argument("--item-col", default="product_uid", help="product id column of the judgments")
    parser.add_argument("--grade-col", default="relevance")
    parser.add_argument("--method", required=True, choices=names())
    parser.add_argument("--preset", metavar="NAME",
                        help="with --method hybrid: fuse as the stored search preset NAME says "
                             "(weights, method, rules; default: the shipped default fusion)")
    parser.add_argument("--preset-version", type=int, metavar="N", help="default: the latest")
    parser.add_argument("--ranker", metavar="DIR",
                        help="with --method hybrid: reorder the fused top with this reranker folder (a "
                             "learned ranker from `train-ranker`, or a cross-encoder), as many items as it "
                             "was trained to order (default 100)")
    parser.add_argument("--part", choices=("train", "validation", "test"),
                        help="evaluate only this part of the judgments' split by query (seeded 80/10/10, "
                             "as finetune and train-ranker split them); default: every query")
    parser.add_argument("--model", help="sentence-transformers model folder for semantic and hybrid "
                                        "(default: the shipped all-MiniLM-L6-v2)")
    parser.add_argument("--k", type=int, default=10, help="cut-off of nDCG (default 10)")
    parser.add_argument("--recall-k", type=int, default=100, help="cut-off of recall (default 100)")
    parser.add_argument("--relevant-grade", type=float, default=DEFAULT_RELEVANT_GRADE,
                        help="grade at or above which a product counts for recall (default 2.5)")
    parser.add_argument("--min-grade", type=float,
                        help="lowest grade of the scale, gain 0 (default: lowest in the judgments)")
    parser.add_argument("--latency-queries", type=int, default=LATENCY_SAMPLE,
                        help="queries timed one at a time (default 200; 0 to skip)")
    parser.set_defaults(func=run)
    return parser


def _build(method: str, model: str | None, fusion=None):
    return factory.retriever(method, fusion=fusion, model_path=model)


def _preset(args):
    """The fusion config of --preset, or None; InputError when it cannot be used."""
    return preset_for(getattr(args, "preset", None), getattr(args, "preset_version", None), args.method)


def preset_for(name: str | None, version: int | None, method: str = "hybrid"):
    """The stored search preset `name`'s fusion config (None without a name), its reranker resolved
    to the active one's folder when it follows the active reranker; InputError when it cannot be used."""
    if not name:
        return None
    if method != "hybrid":
        raise InputError(f"--preset configures the hybrid; use it with --method hybrid, not {method}")
    try:
        # A preset that reranks with the active reranker is evaluated with the one active now.
        active = model_registry.active_model_path("reranker")
        return preset_config("search", name, version).with_reranker(active)
    except LookupError as error:
        raise InputError(str(error)) from None


def run(args) -> int:
    """Run `evaluate-search`; prints one JSON object on stdout, returns the exit status."""
    for name in ("k", "recall_k"):
        if getattr(args, name) <= 0:
            print(f"error: --{name.replace('_', '-')} must be a positive number", file=sys.stderr)
            return 1
    if args.model and not Path(args.model).is_dir():
        print(f"error: the model folder {args.model} does not exist", file=sys.stderr)
        return 1
    return json_command(_evaluate, args)


def json_command(compute, args) -> int:
    """Run `compute(args)` as a command whose stdout carries one JSON object (what it returns), and
    everything else (progress, libraries' chatter) goes to stderr; a user's mistake (InputError, or
    OSError and ValueError, e.g. a folder that is not a model) is one "error: ..." line and status 1."""
    stdout = sys.stdout
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            result = compute(args)
        except (InputError, OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(json.dumps(result), file=stdout)
    return 0


def read_judged(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The catalog (product_id, title) and the judgments (query, product_id, grade) a command's
    --catalog, --judgments and column options name; InputError when no judged product is in the catalog."""
    catalog = read_columns(args.catalog, {args.id_col: "product_id", args.text_col: "title"}, "catalog")
    judgments = read_columns(args.judgments, {args.query_col: "query", args.item_col: "product_id",
                                              args.grade_col: "grade"}, "judgments")
    judgments = _grades(judgments, args.judgments, args.grade_col)
    if not judgments["product_id"].isin(set(catalog["product_id"])).any():
        raise InputError(f"{args.judgments}: none of the judged products in column "
                         f"'{args.item_col}' is in the catalog's column '{args.id_col}'")
    return catalog, judgments


def _with_ranker(fusion, args):
    """`fusion` (None: the default) reranking with --ranker; InputError when the folder holds none."""
    from recsys.fusion import FusionConfig, defaults
    from recsys.search.rerank import kind_of

    if args.method != "hybrid":
        raise InputError("--ranker reorders the hybrid's fused list; use it with --method hybrid, "
                         f"not {args.method}")
    folder = Path(args.ranker)
    kind = kind_of(folder)
    if kind is None:
        raise InputError(f"{folder} holds no reranker (a learned ranker has ranker.txt and ranker.json): "
                         "train one with `python -m recsys train-ranker`")
    config = fusion.to_dict() if fusion is not None else dict(defaults.SEARCH)
    top = kind.saved_top_n(folder) or 100
    return FusionConfig.resolve({**config, "reranker": str(folder), "rerank_top": top})


def _evaluate(args) -> dict:
    fusion = _preset(args)
    if getattr(args, "ranker", None):
        fusion = _with_ranker(fusion, args)
    catalog, judgments = read_judged(args)
    if getattr(args, "part", None):
        judgments = split_judgments(judgments)[args.part]
        if judgments.empty:
            raise InputError(f"{args.judgments}: the {args.part} part of the split has no queries")
    unknown = ~judgments["product_id"].isin(set(catalog["product_id"]))
    if unknown.any():
        print(f"note: {int(unknown.sum()):,} judgments name products missing from the catalog; "
              "they count as not retrieved", file=sys.stderr)
    started = time.perf_counter()
    print(f"indexing {len(catalog):,} products with {args.method}...", file=sys.stderr)
    if fusion is not None and any(rule.get("kind") != "pin" for rule in fusion.rules):
        print("note: the preset's filter, boost and bury rules test product attributes, which "
              "this catalog (id and text only) does not have: they match no product", file=sys.stderr)
    retriever = _build(args.method, args.model, fusion).fit(catalog)
    print(f"indexed in {time.perf_counter() - started:.1f} s; evaluating "
          f"{judgments['query'].nunique():,} queries...", file=sys.stderr)
    metrics = evaluate_search(retriever, judgments, k=args.k, recall_k=args.recall_k,
                              relevant_grade=args.relevant_grade, min_grade=args.min_grade,
                              latency_sample=args.latency_queries)
    floor = judgments["grade"].min() if args.min_grade is None else args.min_grade
    preset = {"preset": args.preset, "fusion": fusion.to_dict()} if fusion is not None else {}
    if getattr(args, "part", None):
        preset["part"] = args.part
    return {"method": args.method, **preset, **metrics, "relevant_grade": args.relevant_grade,
            "min_grade": float(floor), "catalog_products": len(retriever.product_ids),
            "seconds": round(time.perf_counter() - started, 1)}
