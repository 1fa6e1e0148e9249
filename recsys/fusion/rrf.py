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

from collections.abc import Sequence

Ranking = list[tuple[str, float]]


def rrf_contribution(rank: int, k: int = 60, weight: float = 1.0) -> float:
    """What one list adds to a product it ranks at `rank` (1-based): weight / (k + rank)."""
    return weight / (k + rank)


def fuse_rrf(ranked_lists: Sequence[Sequence[tuple[str, float]]], k: int = 60,
             weights: Sequence[float] | None = None) -> Ranking:
    """Fuse `ranked_lists` (each best first; their scores are ignored) by RRF.

    `weights` (one per list, default all 1) scale each list's contributions.
    Returns every product of any list as (product_id, fused score), best first;
    ties keep the order in which products were first met, list by list.
    A product repeated within one list counts at its best rank only.
    """
    if k < 0:
        raise ValueError(f"the RRF constant k must be 0 or more, not {k}")
    weights = [1.0] * len(ranked_lists) if weights is None else list(weights)
    if len(weights) != len(ranked_lists):
        raise ValueError(f"{len(ranked_lists)} ranked lists but {len(weights)} weights")
    fused: dict[str, float] = {}
    for ranking, weight in zip(ranked_lists, weights):
        seen: set[str] = set()
        for rank, (product_id, _) in enumerate(ranking, start=1):
            if product_id in seen:
                continue
            seen.add(product_id)
            fused[product_id] = fused.get(product_id, 0.0) + rrf_contribution(rank, k, weight)
    return sorted(fused.items(), key=lambda item: -item[1])
