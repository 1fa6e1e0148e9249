"""Scorecards: how each configuration of a trial does on its graders' consensus grades.

Per configuration and query: nDCG@10 with gain = grade - the scale's lowest grade (the gains of
`recsys.evaluation.search`, as `evaluate-search` computes them, so the figures agree with it on the
same judgments and rankings), precision@10 (the share of the top 10 graded `Scale.relevant` or more; an unjudged
product counts as not relevant), and judged@10, the share of the top 10 that has a grade (1 -
"holes": below 1, the other figures are a lower bound). Queries without any grade are left out.

`compare` pairs two configurations query by query: the mean difference of nDCG@10 with its 95%
confidence interval (t), the paired t-test's and Wilcoxon's signed-rank p-values (scipy), and the
queries each wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from recsys.evaluation.metrics import ndcg_per_query
from recsys.evaluation.search import graded_qrels, relevant_qrels
from recsys.trials.judging import Scale

K = 10


@dataclass
class ConfigScore:
    name: str
    ndcg: float
    precision: float
    judged: float
    queries: int
    per_query: pd.DataFrame = field(repr=False)  # query, ndcg@10, precision@10, judged@10

    def to_dict(self) -> dict:
        return {"name": self.name, "ndcg@10": round(self.ndcg, 4), "precision@10": round(self.precision, 4),
                "judged@10": round(self.judged, 4), "queries": self.queries}


def score(name: str, rankings: dict[str, list[str]], grades: pd.DataFrame, scale: Scale) -> ConfigScore:
    """Configuration `name`'s scores over the queries of `grades` (query, product_id, grade)."""
    grades = grades[grades["query"].isin(rankings.keys())]
    queries = list(dict.fromkeys(grades["query"]))
    if not queries:
        empty = pd.DataFrame(columns=["query", "ndcg@10", "precision@10", "judged@10"])
        return ConfigScore(name, math.nan, math.nan, math.nan, 0, empty)
    run = {query: [(product, float(len(rankings[query]) - rank)) for rank, product in enumerate(rankings[query])]
           for query in queries}
    # Plain Python, the definitions of ranx's (tests check they agree): the page scores at every
    # rerun, and ranx's first call in a process costs seconds (numba compiling).
    ndcg = ndcg_per_query(graded_qrels(grades, min_grade=scale.lowest), run, K)
    judged_pairs = set(zip(grades["query"], grades["product_id"]))
    relevant = relevant_qrels(grades, scale.relevant)
    rows = []
    for query in queries:
        top = rankings[query][:K]
        hits = sum(1 for product in top if relevant.get(query, {}).get(product, 0) > 0)
        # nDCG is left out (NaN) for a query none of whose products gains anything, as evaluate-search does.
        rows.append({"query": query, "ndcg@10": float(ndcg.get(query, math.nan)),
                     "precision@10": hits / K,
                     "judged@10": sum((query, product) in judged_pairs for product in top) / K})
    frame = pd.DataFrame(rows)
    return ConfigScore(name, float(frame["ndcg@10"].mean()), float(frame["precision@10"].mean()),
                       float(frame["judged@10"].mean()), len(frame), frame)


def compare(first: ConfigScore, second: ConfigScore, metric: str = "ndcg@10") -> dict:
    """`second` against `first` on the queries both were scored on: mean difference (second -
    first) with a 95% confidence interval, the paired t-test's and Wilcoxon's p-values, wins."""
    both = first.per_query[["query", metric]].merge(second.per_query[["query", metric]], on="query",
                                                    suffixes=("_a", "_b")).dropna()
    diff = (both[f"{metric}_b"] - both[f"{metric}_a"]).to_numpy(dtype=float)
    result = {"a": first.name, "b": second.name, "metric": metric, "queries": int(len(diff)),
              "wins_a": int((diff < 0).sum()), "wins_b": int((diff > 0).sum()), "ties": int((diff == 0).sum()),
              "mean_difference": None, "ci95": None, "p_value": None, "p_value_wilcoxon": None}
    if len(diff) == 0:
        return result
    mean = float(diff.mean())
    result["mean_difference"] = round(mean, 4)
    if len(diff) >= 2 and np.any(diff != diff[0]):
        half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff)))
        result["ci95"] = [round(mean - half, 4), round(mean + half, 4)]
        result["p_value"] = round(float(stats.ttest_rel(both[f"{metric}_b"], both[f"{metric}_a"]).pvalue), 6)
    if np.any(diff != 0):
        result["p_value_wilcoxon"] = round(float(stats.wilcoxon(diff).pvalue), 6)
    return result
