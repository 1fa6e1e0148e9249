"""Ranking metrics, computed by ranx (Bassani, ECIR 2022) and cross-checked by hand in tests.

`qrels` maps each query (or user) to its relevant items and their gains;
`run` maps it to the ranked items and their scores:

>>> qrels = {"q1": {"a": 1.0, "b": 1.0}}
>>> run = {"q1": [("a", 0.9), ("c", 0.5), ("b", 0.1)]}
>>> round(ranking_metrics(qrels, run, k=10)["ndcg@10"], 4)
0.9197

nDCG uses linear gains (Järvelin and Kekäläinen, 2002): a gain of 2 counts
twice a gain of 1, and a gain of 0.33 a third of 1. Queries of `qrels` missing
from `run` score 0; queries with no relevant item are left out, as trec_eval does.

ranx stores relevance as integers and truncates fractional gains (0.33 and 0.67
became 0, 1.67 became 1: Home Depot's grades in thirds lost most of their
steps); gains are handed to it multiplied by `GAIN_SCALE` and rounded, which
leaves nDCG (a ratio of sums of gains) as it should be, and the binary metrics
(a gain above 0 is relevant) as they were.
"""

from __future__ import annotations

import warnings
from math import log2
from collections.abc import Mapping, Sequence

import numpy as np

RANKING_METRICS = ("ndcg", "precision", "recall", "map", "mrr")
GAIN_SCALE = 1_000_000_000


def _as_run(run: Mapping[str, Sequence[tuple[str, float]] | Mapping[str, float]]) -> dict:
    converted = {}
    for query, ranking in run.items():
        if isinstance(ranking, Mapping):
            items = dict(ranking)
        else:
            # Scores from a ranked list; ranx sorts by score, so strictly decreasing
            # values keep the given order even where scores tie.
            items = {item: float(len(ranking) - position) for position, (item, _) in enumerate(ranking)}
        converted[str(query)] = {str(k): float(v) for k, v in items.items()} or {"\x00none": 0.0}
    return converted


def ranking_metrics(
    qrels: Mapping[str, Mapping[str, float]],
    run: Mapping[str, Sequence[tuple[str, float]] | Mapping[str, float]],
    k: int = 10,
    metrics: Sequence[str] = RANKING_METRICS,
    per_query: bool = False,
) -> dict:
    """Mean ``{name@k: value}`` over the queries of `qrels` that have a relevant item.

    With `per_query`, also ``{"per_query": {name@k: {query: value}}}``.
    """
    from ranx import Qrels, Run, evaluate

    relevant = {str(q): {str(i): max(1, round(float(g) * GAIN_SCALE)) for i, g in items.items() if g > 0}
                for q, items in qrels.items()}
    relevant = {q: items for q, items in relevant.items() if items}
    names = [f"{m}@{k}" if m != "mrr" else f"mrr@{k}" for m in metrics]
    if not relevant:
        return {name: 0.0 for name in names} | ({"per_query": {name: {} for name in names}} if per_query else {})
    converted = _as_run(run)
    for query in relevant:
        converted.setdefault(query, {"\x00none": 0.0})
    converted = {q: converted[q] for q in relevant}
    judged = Qrels(relevant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety chatter
        scores = evaluate(judged, Run(converted), names, return_mean=not per_query, make_comparable=True)
    if len(names) == 1:
        # ranx answers a single metric with the bare value, not a dict.
        scores = {names[0]: scores}
    if not per_query:
        return {name: float(scores[name]) for name in names}
    queries = judged.get_query_ids()  # ranx's order (sorted), not the order of `qrels`
    result = {name: float(np.mean(scores[name])) for name in names}
    result["per_query"] = {name: dict(zip(queries, map(float, scores[name]))) for name in names}
    return result


def ndcg_per_query(qrels: Mapping[str, Mapping[str, float]], run: Mapping[str, Sequence[tuple[str, float]]],
                   k: int = 10) -> dict[str, float]:
    """{query: nDCG@k} in plain Python, as `ranking_metrics` defines it (see `ndcg_and_recall`):
    queries of `qrels` without a gain above 0 are left out; a query missing from `run` scores 0."""
    result = {}
    for query, gains in qrels.items():
        gains = {str(item): float(gain) for item, gain in gains.items() if gain > 0}
        if not gains:
            continue
        ranked = [str(item) for item, _ in run.get(query, [])[:k]]
        dcg = sum(gains.get(item, 0.0) / log2(rank + 2) for rank, item in enumerate(ranked))
        ideal = sum(gain / log2(rank + 2) for rank, gain in enumerate(sorted(gains.values(), reverse=True)[:k]))
        result[query] = dcg / ideal
    return result


def ndcg_and_recall(qrels: Mapping[str, Mapping[str, float]], relevant: Mapping[str, Mapping[str, float]],
                    run: Mapping[str, Sequence[tuple[str, float]]], k: int = 10,
                    recall_k: int = 100) -> dict[str, float]:
    """Mean nDCG@k on graded `qrels` and Recall@recall_k on binary `relevant`, in plain Python.

    The same definitions as `ranking_metrics` (linear gains, queries without a relevant item left
    out, missing queries scoring 0; `run`'s lists are in rank order), for the few hundred short
    lists Fusion & rules re-scores at every slider move: ranx pays 4-5 s (40 s on a new install,
    numba compiling) the first time a process calls it, this about 5 ms a call. Tests check that
    the two agree.

    >>> qrels = {"q1": {"a": 2.0, "b": 1.0}}
    >>> round(ndcg_and_recall(qrels, qrels, {"q1": [("b", 0.9), ("a", 0.5)]}, k=2)["ndcg@2"], 4)
    0.8597
    """
    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    ndcg = list(ndcg_per_query(qrels, run, k).values())
    recall = []
    for query, items in relevant.items():
        wanted = {str(item) for item, gain in items.items() if gain > 0}
        if wanted:
            found = {str(item) for item, _ in run.get(query, [])[:recall_k]}
            recall.append(len(wanted & found) / len(wanted))
    return {f"ndcg@{k}": mean(ndcg), f"recall@{recall_k}": mean(recall)}
