"""The retriever contract, checked once for every registered retriever on a tiny catalog."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from recsys.search import REGISTRY, Retriever, SearchHit, get, names
from tests.conftest import FLOAT32
from tests.search.conftest import KNOWN_ANSWERS

ALL = names()


def test_the_three_retrievers_are_registered():
    assert {"bm25", "semantic", "hybrid"} <= set(ALL)
    with pytest.raises(KeyError, match="unknown retriever 'nope'; choose one of"):
        get("nope")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("query, expected", KNOWN_ANSWERS)
def test_known_answer_ranks_first(fitted, name, query, expected):
    hits = fitted[name].search(query, k=3)
    assert hits[0].product_id == expected, [h.product_id for h in hits]


@pytest.mark.parametrize("name", ALL)
def test_hits_are_typed_sorted_and_explained(fitted, name):
    hits = fitted[name].search("ceramic coffee mug", k=5)
    assert len(hits) == 5 and all(isinstance(hit, SearchHit) for hit in hits)
    assert all(isinstance(hit.product_id, str) and isinstance(hit.score, float) for hit in hits)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert hits[0].reasons and all(reason.text for reason in hits[0].reasons)
    assert len({hit.product_id for hit in hits}) == 5


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_blank_query_is_refused(fitted, name, query):
    with pytest.raises(ValueError, match="query is empty"):
        fitted[name].search(query)
    with pytest.raises(ValueError, match="query is empty"):
        fitted[name].search_many(["mug", query])
    with pytest.raises(ValueError, match="query is empty"):
        fitted[name].score(query, ["P01"])


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_k_must_be_positive(fitted, name, k):
    with pytest.raises(ValueError, match="k, the number of results"):
        fitted[name].search("mug", k=k)


@pytest.mark.parametrize("name", ALL)
def test_k_beyond_the_catalog_ranks_the_whole_catalog(fitted, catalog, name):
    hits = fitted[name].search("mug", k=1000)
    assert sorted(hit.product_id for hit in hits) == sorted(catalog["product_id"])
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert hits[0].product_id in {"P01", "P02"}


@pytest.mark.parametrize("name", ALL)
def test_matched_only_is_a_prefix_of_the_full_ranking(fitted, name):
    full = fitted[name].search("copper pipe", k=10)
    matched = fitted[name].search("copper pipe", k=10, matched_only=True)
    assert 1 <= len(matched) <= len(full)
    assert [h.product_id for h in matched] == [h.product_id for h in full[:len(matched)]]


@pytest.mark.parametrize("name", ALL)
def test_search_many_equals_search_one_by_one(fitted, name):
    queries = ["red mug", "garden", "pipe 1/2 inch", "lamp"]
    batched = fitted[name].search_many(queries, k=4)
    for query, hits in zip(queries, batched):
        single = fitted[name].search(query, k=4)
        assert [h.product_id for h in hits] == [h.product_id for h in single]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in single], **FLOAT32)
    assert fitted[name].search_many([], k=3) == []


@pytest.mark.parametrize("name", ALL)
def test_score_agrees_with_search_and_unknown_ids_score_minus_inf(fitted, name):
    retriever = fitted[name]
    hits = retriever.search("coffee mug", k=10)
    ids = [hit.product_id for hit in hits][::-1] + ["NOPE"]
    scores = retriever.score("coffee mug", ids)
    assert scores.shape == (len(ids),)
    assert scores[-1] == -np.inf
    np.testing.assert_allclose(scores[:-1][::-1], [hit.score for hit in hits], **FLOAT32)
    many = retriever.score_many(["coffee mug", "drill"], [ids, ["P09", "P01"]])
    # A batch of queries runs other kernels than one query.
    np.testing.assert_allclose(many[0], scores, **FLOAT32)
    assert many[1][0] > many[1][1]


@pytest.mark.parametrize("name", ALL)
def test_save_and_load_give_identical_results(fitted, name, tmp_path):
    retriever = fitted[name]
    folder = retriever.save(tmp_path / name)
    meta = json.loads((folder / "config.json").read_text())
    assert meta["retriever"] == name
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    for loaded in (Retriever.load(folder), type(retriever).load(folder)):
        assert type(loaded) is type(retriever) and loaded.config == retriever.config
        queries = ["red mug", "pipe", "garden table", "zzz unknown words"]
        assert loaded.search_many(queries, k=10) == retriever.search_many(queries, k=10)
        np.testing.assert_array_equal(loaded.score("mug", ["P02", "P01", "X"]),
                                      retriever.score("mug", ["P02", "P01", "X"]))


@pytest.mark.parametrize("name", ALL)
def test_fitting_is_deterministic(fitted, catalog, name):
    again = get(name)().fit(catalog.copy())
    queries = ["mug", "garden chair", "led bulb 60 watt"]
    assert again.search_many(queries, k=10) == fitted[name].search_many(queries, k=10)
    assert fitted[name].search("mug", k=10) == fitted[name].search("mug", k=10)


@pytest.mark.parametrize("name", ALL)
def test_config_round_trips_through_json(name):
    cls = REGISTRY[name]
    config = cls().config
    assert cls.Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="has no parameter"):
        cls(not_a_parameter=1)


@pytest.mark.parametrize("name", ALL)
def test_unfitted_and_bad_catalogs_are_refused(catalog, name):
    with pytest.raises(RuntimeError, match="not fitted"):
        get(name)().search("mug")
    with pytest.raises(ValueError, match=r"needs the column\(s\) \['title'\]"):
        get(name)().fit(catalog.drop(columns="title"))
    with pytest.raises(ValueError, match="catalog is empty"):
        get(name)().fit(catalog.head(0))


@pytest.mark.parametrize("name", ALL)
def test_extra_fields_are_searched_and_ids_are_strings(catalog, name):
    frame = catalog.assign(product_id=range(100, 110))
    retriever = get(name)(extra_fields=["category"]).fit(frame)
    hits = retriever.search("plumbing", k=2)
    assert {hit.product_id for hit in hits} == {"106", "107"}
    assert math.isfinite(retriever.score("plumbing", [106])[0])
