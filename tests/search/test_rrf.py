"""Reciprocal rank fusion: hand-computed cases, properties, and ranx as a cross-check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.fusion import fuse_rrf, rrf_contribution


def test_hand_computed_fusion():
    bm25 = [("a", 12.0), ("b", 7.5), ("c", 1.0)]
    dense = [("c", 0.9), ("a", 0.8), ("d", 0.1)]
    fused = dict(fuse_rrf([bm25, dense], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [p for p, _ in fuse_rrf([bm25, dense], k=60)] == ["a", "c", "b", "d"]


def test_weights_scale_each_list():
    fused = dict(fuse_rrf([[("a", 1.0), ("b", 0.5)], [("b", 1.0)]], k=1, weights=[2.0, 0.5]))
    assert fused == pytest.approx({"a": 2.0 / 2, "b": 2.0 / 3 + 0.5 / 2})
    assert rrf_contribution(3, k=60, weight=2.0) == pytest.approx(2.0 / 63)


def test_scores_are_ignored_only_ranks_count():
    assert fuse_rrf([[("a", 1e9), ("b", -5.0)]]) == fuse_rrf([[("a", 0.2), ("b", 0.1)]])


def test_ties_go_by_product_id_and_repeats_count_once():
    assert [p for p, _ in fuse_rrf([[("y", 1.0)], [("x", 1.0)]])] == ["x", "y"]
    # A repeated product keeps its best rank; the list is ranked without the repeat.
    assert dict(fuse_rrf([[("a", 3.0), ("a", 2.0), ("b", 1.0)]], k=0)) == {"a": 1.0, "b": 1 / 2}


def test_bad_arguments():
    assert fuse_rrf([]) == [] and fuse_rrf([[], []]) == []
    with pytest.raises(ValueError, match="2 ranked lists but 1 weights"):
        fuse_rrf([[("a", 1.0)], [("a", 1.0)]], weights=[1.0])
    with pytest.raises(ValueError, match="k must be 0 or more"):
        fuse_rrf([[("a", 1.0)]], k=-1)


rankings = st.lists(st.sampled_from("abcdefgh"), max_size=8, unique=True).map(
    lambda ids: [(p, float(len(ids) - i)) for i, p in enumerate(ids)])


@given(st.lists(rankings, min_size=1, max_size=4), st.integers(0, 100))
def test_properties(lists, k):
    fused = fuse_rrf(lists, k=k)
    assert {p for p, _ in fused} == {p for ranking in lists for p, _ in ranking}
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(sum(1 / (k + r) for ranking in lists
                                            for r in range(1, len(ranking) + 1)))
    # A product first in every list is first overall.
    firsts = {ranking[0][0] for ranking in lists if ranking}
    if len(firsts) == 1 and all(lists):
        assert fused[0][0] == firsts.pop()


def test_agrees_with_ranx():
    from ranx import Run, fuse

    lists = {"q1": [[("a", 3.0), ("b", 2.0), ("c", 1.0)], [("c", 0.9), ("d", 0.5), ("a", 0.1)]],
             "q2": [[("x", 1.0), ("y", 0.5)], [("y", 0.7), ("z", 0.6), ("x", 0.2)]]}
    runs = [Run({q: dict(pair[i]) for q, pair in lists.items()}) for i in range(2)]
    expected = fuse(runs, norm=None, method="rrf", params={"k": 60}).to_dict()
    for query, pair in lists.items():
        assert dict(fuse_rrf(pair, k=60)) == pytest.approx(expected[query])
