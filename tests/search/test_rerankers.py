"""The reranker contract, checked for every registered kind (`recsys.search.rerank.RERANKERS`):
a folder is opened by the kind that holds it, scores come one per item, the hybrid's reordered
top keeps the fused scores of its places and the rest of the list, equal scores keep the fused
order, and every reranked item says what moved it."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.fusion import FusedItem, fuse
from recsys.search.rerank import (RERANK_SOURCE, RERANKERS, Reranker, RerankRequest, kind_of, load_reranker,
                                  reordered)

QUERIES = ["ceramic coffee mug", "garden table", "copper pipe"]


@pytest.fixture(params=sorted(RERANKERS))
def saved(request) -> tuple[str, str]:
    """(kind, folder) of a saved reranker of each registered kind."""
    fixtures = {"cross-encoder": "cross_encoder", "learned ranker": "learned_ranker"}
    assert set(fixtures) == set(RERANKERS), "a new kind of reranker needs a saved one here"
    return request.param, request.getfixturevalue(fixtures[request.param])


def requests_for(hybrid, reranker: Reranker, top: int) -> tuple[list[list[FusedItem]], list[RerankRequest]]:
    fused = [fuse(lists, hybrid.fusion) for lists in hybrid.candidates(QUERIES)]
    signals = (reranker.sources or [source.name for source in hybrid.sources]) if reranker.uses_sources else None
    return fused, hybrid.rerank_requests(QUERIES, [ranked[:top] for ranked in fused], signals, reranker.depth)


def test_a_folder_is_opened_by_the_kind_that_holds_it(saved, tmp_path):
    kind, folder = saved
    reranker = load_reranker(folder)
    assert reranker.kind == kind and kind_of(folder) is type(reranker) and type(reranker).holds(tmp_path) is False
    assert all(other.holds(tmp_path) is False for other in RERANKERS.values())
    with pytest.raises(FileNotFoundError, match="holds no reranker"):
        load_reranker(tmp_path)


def test_scores_come_one_per_item_and_do_not_depend_on_the_batch(saved, fitted):
    _, folder = saved
    reranker = load_reranker(folder)
    fused, requests = requests_for(fitted["hybrid"], reranker, 4)
    together = reranker.scores(requests)
    assert [len(values) for values in together] == [len(request.items) for request in requests]
    assert all(np.isfinite(values).all() for values in together)
    alone = [reranker.scores([request])[0] for request in requests]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    signals = list(requests[0].sources) or None
    empty = fitted["hybrid"].rerank_requests(["mug"], [[]], signals, reranker.depth)
    assert [len(values) for values in reranker.scores(empty)] == [0]


def test_the_reordered_top_keeps_the_fused_scores_and_the_rest(saved, fitted):
    _, folder = saved
    reranker = load_reranker(folder)
    fused, requests = requests_for(fitted["hybrid"], reranker, 4)
    scores = reranker.scores(requests)
    for ranked, request, values, after in zip(fused, requests, scores, reranker.rerank(fused, requests)):
        top = len(request.items)
        order = np.argsort(-values, kind="stable")
        assert [item.product_id for item in after[:top]] == [request.items[i].product_id for i in order]
        assert [item.score for item in after] == pytest.approx([item.score for item in ranked])
        assert after[top:] == ranked[top:]
        for rank, (item, position) in enumerate(zip(after[:top], order), 1):
            part = item.sources[RERANK_SOURCE]
            assert (part.rank, part.fused_rank, part.by) == (rank, position + 1, reranker.kind)
            assert part.score == pytest.approx(values[position])
            assert set(item.sources) - {RERANK_SOURCE} == set(request.items[position].sources)
        assert all(RERANK_SOURCE not in item.sources for item in after[top:])


def test_the_hybrid_reranks_with_it_as_the_contract_says(saved, fitted):
    _, folder = saved
    hybrid = fitted["hybrid"]
    reranking = hybrid.with_fusion({**hybrid.fusion.to_dict(), "reranker": folder, "rerank_top": 4})
    reranker = load_reranker(folder)
    fused, requests = requests_for(hybrid, reranker, 4)
    expected = reranker.rerank(fused, requests)
    for query, items in zip(QUERIES, expected):
        hits = reranking.search(query, k=6)[:len(items)]  # then the unmatched rest of the catalog
        assert [hit.product_id for hit in hits] == [item.product_id for item in items[:6]]
        assert any(reason.kind == "rerank" and reason.text.startswith(reranker.kind) for reason in hits[0].reasons)


def test_equal_scores_keep_the_fused_order():
    items = [[FusedItem("a", 3.0), FusedItem("b", 2.0), FusedItem("c", 1.0), FusedItem("d", 0.5)]]
    moved = reordered(items, [items[0][:3]], [np.array([0.2, 0.7, 0.7])], "test")[0]
    assert [item.product_id for item in moved] == ["b", "c", "a", "d"]
    assert [item.score for item in moved] == [3.0, 2.0, 1.0, 0.5]
    assert [item.sources[RERANK_SOURCE].fused_rank for item in moved[:3]] == [2, 3, 1]
