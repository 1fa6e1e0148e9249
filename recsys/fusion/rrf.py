"""Reciprocal rank fusion (RRF).

What it computes: a product's fused score is the sum, over the lists it appears
in, of ``weight / (k + rank)`` with its 1-based rank in that list (Cormack,
Clarke and Büttcher, "Reciprocal rank fusion outperforms Condorcet and
individual rank learning methods", SIGIR 2009; k = 60 there). Only ranks count,
so lists with scores on different scales (BM25, cosine) fuse without
normalisation; a larger k flattens the advantage of the very top ranks.

>>> fuse_rrf([[("a", 9.1), ("b", 4.0)], [("b", 0.8), ("c", 0.7)]], k=60)
[('b', 0.03252247488101534), ('a', 0.01639344262295082), ('c', 0.016129032258064516)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from recsys.fusion.base import (FusedItem, FusionConfig, Ranked, SourceScore, deduplicated,
                                ranked, register_fuser)

Ranking = list[tuple[str, float]]


def rrf_contribution(rank, k: int = 60, weight: float = 1.0):
    """What one list adds to a product it ranks at `rank` (1-based): weight / (k + rank)."""
    return weight / (k + rank)


def fuse_rrf_items(lists: Mapping[str, Ranked], weights: Mapping[str, float] | None = None,
                   k: int = 60, candidates: int | None = None) -> list[FusedItem]:
    """RRF of the named `lists` as `FusedItem`s with each source's rank and contribution."""
    if k < 0:
        raise ValueError(f"the RRF constant k must be 0 or more, not {k}")
    weights = weights or {}
    fused: dict[str, FusedItem] = {}
    for name, ranking in lists.items():
        weight = float(weights.get(name, 1.0))
        for rank, (product_id, score) in enumerate(deduplicated(ranking, candidates or len(ranking) or 1), 1):
            item = fused.setdefault(product_id, FusedItem(product_id, 0.0))
            part = rrf_contribution(rank, k, weight)
            item.sources[name] = SourceScore(rank, score, 1.0 / (k + rank) if k + rank else 0.0, part)
            item.score += part
    return ranked(fused)


def fuse_rrf(ranked_lists: Sequence[Sequence[tuple[str, float]]], k: int = 60,
             weights: Sequence[float] | None = None) -> Ranking:
    """Fuse unnamed `ranked_lists` (each best first; their scores are ignored) by RRF.

    `weights` (one per list, default all 1) scale each list's contributions.
    Returns every product of any list as (product_id, fused score), best first;
    equal scores by product id. A product repeated within one list counts at its best rank only.
    """
    weights = [1.0] * len(ranked_lists) if weights is None else list(weights)
    if len(weights) != len(ranked_lists):
        raise ValueError(f"{len(ranked_lists)} ranked lists but {len(weights)} weights")
    named = {str(i): ranking for i, ranking in enumerate(ranked_lists)}
    items = fuse_rrf_items(named, {str(i): w for i, w in enumerate(weights)}, k)
    return [(item.product_id, item.score) for item in items]


@register_fuser("rrf")
def _rrf(lists: Mapping[str, Ranked], config: FusionConfig) -> list[FusedItem]:
    return fuse_rrf_items(lists, config.weights, config.rrf_k, config.candidates)
