"""The hybrid's relevance of given products to a query: their fused score over the best, read from
the same candidate lists the search fused (what a sponsored product must reach to be shown)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.fusion import FusionConfig
from recsys.search.hybrid import HybridRetriever


def test_relevance_is_the_fused_score_over_the_best(fitted, catalog):
    hybrid: HybridRetriever = fitted["hybrid"]
    ids = catalog["product_id"].tolist()
    for query in ("red mug", "garden chair", "cordless drill"):
        lists = hybrid.candidates([query])[0]
        hits = hybrid.fuse_candidates(query, lists, k=len(ids), explain=False)
        relevance = hybrid.relevance(lists, ids)
        searched = {hit.product_id: hit.score / hits[0].score for hit in hits}
        assert relevance == pytest.approx([searched.get(p, 0.0) for p in ids])
        assert relevance[ids.index(hits[0].product_id)] == 1.0
        assert ((relevance >= 0) & (relevance <= 1)).all()
    lists = hybrid.candidates(["red mug"])[0]
    mug, drill = hybrid.relevance(lists, ["P01", "P09"])
    assert mug == 1.0 and drill < 0.5


def test_products_nothing_found_are_not_relevant(fitted):
    hybrid: HybridRetriever = fitted["hybrid"]
    assert hybrid.relevance({}, ["P01", "P02"]).tolist() == [0.0, 0.0]
    lists = hybrid.candidates(["red mug"])[0]
    assert hybrid.relevance(lists, ["no such product"]).tolist() == [0.0]
    bm25_only = hybrid.relevance(lists, ["P01", "P09"], fusion=FusionConfig(weights={"semantic": 0}))
    assert np.array_equal(bm25_only, [1.0, 0.0])  # the drill shares no word with "red mug"
