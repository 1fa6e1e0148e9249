"""Fusion maths: hand-computed cases and properties (hypothesis) of every registered method."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.fusion import FUSERS, FusionConfig, fuse, fuse_rrf_items, fuse_weighted, normalise

ids = st.sampled_from("abcdefghij")
ranking = st.lists(st.tuples(ids, st.floats(-50, 50, allow_nan=False)), max_size=10,
                   unique_by=lambda pair: pair[0]).map(lambda pairs: sorted(pairs, key=lambda p: -p[1]))
named_lists = st.dictionaries(st.sampled_from(["bm25", "semantic", "ease", "knn"]), ranking,
                              min_size=1, max_size=4)
weights = st.floats(0.0, 5.0, allow_nan=False)
configs = st.builds(FusionConfig, method=st.sampled_from(FUSERS.names()),
                    normalisation=st.sampled_from(["minmax", "zscore"]), rrf_k=st.integers(0, 100))


def as_pairs(items):
    return [(item.product_id, round(item.score, 9)) for item in items]


def test_weighted_minmax_by_hand():
    items = fuse_weighted({"bm25": [("a", 10.0), ("b", 6.0), ("c", 2.0)], "semantic": [("c", 0.8), ("d", 0.4)]},
                          {"bm25": 0.75, "semantic": 0.25})
    scores = {item.product_id: item.score for item in items}
    assert scores == pytest.approx({"a": 0.75, "b": 0.375, "c": 0.25, "d": 0.0})
    c = next(item for item in items if item.product_id == "c")
    assert (c.sources["bm25"].rank, c.sources["bm25"].score, c.sources["bm25"].normalised) == (3, 2.0, 0.0)
    assert c.sources["semantic"].contribution == pytest.approx(0.25)


def test_zscore_by_hand():
    assert normalise([1.0, 2.0, 3.0], "zscore") == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert list(normalise([4.0, 4.0], "zscore")) == [0.0, 0.0]
    assert list(normalise([4.0, 4.0], "minmax")) == [1.0, 1.0]
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise([1.0], "rank")


def test_config_is_checked():
    with pytest.raises(ValueError, match="unknown fusion method 'borda'; choose one of rrf, weighted"):
        FusionConfig(method="borda")
    with pytest.raises(ValueError, match="weights must be numbers of 0 or more"):
        FusionConfig(weights={"bm25": -1})
    with pytest.raises(ValueError, match="unknown normalisation"):
        FusionConfig(normalisation="softmax")
    with pytest.raises(ValueError, match="candidates must be a positive"):
        FusionConfig(candidates=0)
    assert FusionConfig.from_dict(FusionConfig(weights={"a": 2}).to_dict()).weights == {"a": 2.0}


def test_candidates_cut_each_list():
    config = FusionConfig(method="rrf", candidates=1)
    assert [item.product_id for item in fuse({"x": [("a", 2.0), ("b", 1.0)]}, config)] == ["a"]


@given(named_lists, configs, st.data())
@settings(max_examples=150, deadline=None)
def test_a_source_of_weight_zero_is_removed(lists, config, data):
    dropped = data.draw(st.sampled_from(sorted(lists)))
    config.weights = {name: data.draw(weights.filter(lambda w: w > 0)) for name in lists}
    config.weights[dropped] = 0.0
    without = {name: ranking for name, ranking in lists.items() if name != dropped}
    assert as_pairs(fuse(lists, config)) == as_pairs(fuse(without, config))


@given(named_lists, configs, st.randoms())
@settings(max_examples=150, deadline=None)
def test_fusion_does_not_depend_on_the_order_of_sources(lists, config, random):
    names = list(lists)
    random.shuffle(names)
    assert as_pairs(fuse(lists, config)) == as_pairs(fuse({n: lists[n] for n in names}, config))


@given(named_lists, st.dictionaries(st.sampled_from(["bm25", "semantic", "ease", "knn"]), weights),
       st.integers(0, 100))
@settings(max_examples=150, deadline=None)
def test_rrf_matches_its_formula(lists, weight_of, k):
    items = fuse_rrf_items(lists, weight_of, k)
    expected: dict[str, float] = {}
    for name, ranked in lists.items():
        for rank, (product_id, _) in enumerate(ranked, 1):
            expected[product_id] = expected.get(product_id, 0.0) + weight_of.get(name, 1.0) / (k + rank)
    assert {item.product_id: item.score for item in items} == pytest.approx(expected)
    assert [item.score for item in items] == sorted((item.score for item in items), reverse=True)


@given(named_lists, configs)
@settings(max_examples=150, deadline=None)
def test_contributions_add_up_and_every_product_is_kept(lists, config):
    items = fuse(lists, config)
    assert {item.product_id for item in items} == {p for ranked in lists.values() for p, _ in ranked}
    for item in items:
        assert sum(part.contribution for part in item.sources.values()) == pytest.approx(item.score)
        for name, part in item.sources.items():
            assert lists[name][part.rank - 1][0] == item.product_id


@given(ranking)
def test_minmax_is_within_zero_and_one_and_keeps_the_order(ranked):
    values = normalise([score for _, score in ranked], "minmax")
    assert all(0.0 <= v <= 1.0 for v in values)
    assert list(values) == sorted(values, reverse=True)


def test_a_source_floor_drops_its_items_below_it_before_fusion():
    from recsys.fusion import FusionConfig, fuse

    config = FusionConfig(weights={"bm25": 1.0, "semantic": 1.0}, min_scores={"semantic": 0.4})
    items = fuse({"bm25": [("a", 3.0)], "semantic": [("b", 0.6), ("c", 0.39)]}, config)
    assert [item.product_id for item in items] == ["a", "b"]
    assert fuse({"semantic": [("c", 0.1)]}, config) == []  # nonsense: nothing at all
    assert FusionConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="score floors must be numbers"):
        FusionConfig(min_scores={"semantic": "high"})
