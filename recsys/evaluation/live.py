"""Offline quality of a fusion config, recomputed from cached candidate lists as it changes.

The Fusion & rules page keeps, for a held-out sample, each source's candidate
lists (searching or recommending is the slow part) and re-fuses them under
every weight or rule the merchandiser tries; the metrics move with the sliders.

- Search: a seeded sample of the judged queries (the active judgment list);
  nDCG@k with gain = grade minus the lowest grade (unjudged 0) and Recall@100
  of the products graded at or above `relevant_grade`, as in
  `recsys.evaluation.search` (full-catalog protocol, limited to the fused
  candidates).
- Recommendations: a temporal split of the active events (train on the past,
  the last `test_frac` of time held out); a seeded sample of test users, their
  held-out products relevant with gain 1.

Both report coverage@k (share of the catalog appearing in any top-k list) and
intra-list diversity@k (mean pairwise 1 - cosine of the products' embeddings,
`recsys.evaluation.recs.intra_list_diversity`).

>>> from recsys.fusion import FusionConfig, fuse
>>> def refuse(key, lists, k, fusion):
...     return [(item.product_id, item.score) for item in fuse(lists, fusion)][:k]
>>> sample = LiveSample(keys=["q"], candidates=[{"a": [("x", 2.0), ("y", 1.0)], "b": [("y", 0.9)]}],
...                     qrels={"q": {"y": 1.0}}, relevant={"q": {"y": 1.0}}, catalog_size=4)
>>> evaluate_fusion(sample, FusionConfig(weights={"a": 1.0, "b": 0.0}), refuse, k=1)["ndcg@1"]
0.0
>>> evaluate_fusion(sample, FusionConfig(weights={"a": 1.0, "b": 2.0}), refuse, k=1)["ndcg@1"]
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.evaluation.metrics import ndcg_and_recall
from recsys.evaluation.recs import intra_list_diversity
from recsys.evaluation.search import graded_qrels, relevant_qrels
from recsys.fusion import FusionConfig

Candidates = dict[str, list[tuple[str, float]]]
# (key: a query or user id, its candidate lists, k, fusion config) -> [(product_id, score)], best first
FuseFunction = Callable[[str, Candidates, int, FusionConfig], list[tuple[str, float]]]


@dataclass
class LiveSample:
    """What re-scoring needs: the sampled keys, their candidate lists and their relevance."""

    keys: list[str]
    candidates: list[Candidates]
    qrels: dict[str, dict[str, float]]  # graded gains, for nDCG
    relevant: dict[str, dict[str, float]]  # binary relevance, for recall
    catalog_size: int
    vectors: tuple[pd.Index, np.ndarray] | None = None  # product ids and unit embeddings, for diversity


def evaluate_fusion(sample: LiveSample, fusion: FusionConfig, fuse: FuseFunction, k: int = 10,
                    recall_k: int = 100) -> dict[str, float]:
    """nDCG@k, Recall@recall_k, coverage@k and diversity@k of `fusion` on `sample`."""
    depth = max(k, recall_k)
    run = {key: fuse(key, lists, depth, fusion) for key, lists in zip(sample.keys, sample.candidates)}
    tops = [[product for product, _ in ranking[:k]] for ranking in run.values()]
    result = {**ndcg_and_recall(sample.qrels, sample.relevant, run, k=k, recall_k=recall_k),
              f"coverage@{k}": len({p for top in tops for p in top}) / max(sample.catalog_size, 1)}
    if sample.vectors is not None:
        result[f"diversity@{k}"] = intra_list_diversity(tops, sample.vectors)
    return result


def search_sample(hybrid, judgments: pd.DataFrame, size: int = 200, seed: int = 0,
                  relevant_grade: float = 2.5, exclude: frozenset[str] = frozenset()) -> LiveSample:
    """A seeded sample of `size` judged queries with the hybrid retriever's candidate lists.

    `judgments` has query, product_id, grade; `hybrid` is a fitted `HybridRetriever`;
    queries in `exclude` (e.g. those a model was trained on) are never sampled.
    """
    graded = graded_qrels(judgments)
    judged = sorted(q for q, gains in graded.items() if any(g > 0 for g in gains.values()))
    if not judged:
        raise ValueError("no judged query has a product graded above the lowest grade; "
                         "upload judgments with some relevant products")
    queries = [query for query in judged if query not in exclude]
    if not queries:
        raise ValueError(f"all {len(judged)} judged queries with a relevant product are ones an active model "
                         "was trained on; upload judgments of more queries to measure it on others")
    rng = np.random.default_rng(seed)
    chosen = [queries[i] for i in sorted(rng.permutation(len(queries))[:size])]
    relevant = relevant_qrels(judgments, relevant_grade)
    return LiveSample(chosen, hybrid.candidates(chosen), {q: graded[q] for q in chosen},
                      {q: relevant.get(q, {}) for q in chosen}, len(hybrid.product_ids),
                      _search_vectors(hybrid))


def _search_vectors(hybrid) -> tuple[pd.Index, np.ndarray] | None:
    for source in hybrid.sources:
        embeddings = getattr(source, "_by_dimension", None)
        if embeddings is not None and embeddings.size:
            return pd.Index(hybrid.product_ids), np.ascontiguousarray(embeddings.T)
    return None


def fuse_search(hybrid) -> FuseFunction:
    """Re-fusion with the hybrid retriever's rules and attributes (no explanations: faster)."""
    def fuse(query: str, lists: Candidates, k: int, fusion: FusionConfig) -> list[tuple[str, float]]:
        hits = hybrid.fuse_candidates(query, lists, k, fusion, explain=False)
        return [(hit.product_id, hit.score) for hit in hits]
    return fuse


def recommendation_sample(hybrid, test: pd.DataFrame, size: int = 200, seed: int = 0) -> LiveSample:
    """A seeded sample of `size` test users with the hybrid recommender's candidate lists.

    `hybrid` is a `HybridRecommender` fitted on the train part; `test` holds the
    held-out (user_id, product_id) pairs, each relevant with gain 1.
    """
    test = test.assign(user_id=test["user_id"].astype(str), product_id=test["product_id"].astype(str))
    known = test[test["user_id"].isin(set(hybrid.user_ids))]
    users = sorted(known["user_id"].unique())
    if not users:
        raise ValueError("no held-out user is known to the model; the split left nothing to score")
    rng = np.random.default_rng(seed)
    chosen = [users[i] for i in sorted(rng.permutation(len(users))[:size])]
    held_out = known[known["user_id"].isin(set(chosen))].groupby("user_id")["product_id"].agg(list)
    qrels = {user: {product: 1.0 for product in held_out[user]} for user in chosen}
    return LiveSample(chosen, hybrid.candidates(chosen), qrels, qrels, len(hybrid.item_ids),
                      _recommendation_vectors(hybrid))


def _recommendation_vectors(hybrid) -> tuple[pd.Index, np.ndarray] | None:
    for source in hybrid.sources:
        embeddings = getattr(source, "embeddings", None)
        if embeddings is not None and len(embeddings):
            return pd.Index(source.item_ids), np.asarray(embeddings)
    return None


def fuse_recommendations(hybrid) -> FuseFunction:
    def fuse(user: str, lists: Candidates, k: int, fusion: FusionConfig) -> list[tuple[str, float]]:
        return [(item.product_id, item.score) for item in hybrid.fuse_candidates(lists, k, fusion)]
    return fuse
