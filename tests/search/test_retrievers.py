"""What each retriever adds to the contract: BM25's tokens and term reasons, the dense
retriever's cosine and cache, the hybrid's fusion."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.fusion import rrf_contribution
from recsys.search import get
from recsys.search.bm25 import Tokenizer
from recsys.search.hybrid import HybridRetriever


@pytest.mark.parametrize("text, tokens", [
    ("Everbilt 1/2 in. x 10 ft. Pipe", ["everbilt", "1/2", "inch", "x", "10", "ft", "pipe"]),
    ('3/4" pipe 8\' long', ["3/4", "inch", "pipe", "8", "ft", "long"]),
    ("area rugs 9x12", ["area", "rug", "9", "x", "12"]),
    ("30in convection otr range", ["30", "inch", "convect", "otr", "rang"]),
    ("Slide-In range in stainless", ["slide", "rang", "stainless"]),
    ("6.2 cu. ft. 1,000-Watt 40 gallon", ["6.2", "cu", "ft", "1000", "watt", "40", "gal"]),
    ("angle bracket", ["angl", "bracket"]),
])
def test_tokenizer_handles_shop_texts(text, tokens):
    assert Tokenizer().tokens(text) == tokens


def test_tokenizer_options():
    assert Tokenizer(stemmer=None).tokens("The hinges") == ["hinges"]
    assert Tokenizer(stemmer=None, stopwords=False).tokens("The hinges") == ["the", "hinges"]
    assert Tokenizer().terms("Door Hinges") == [("door", "door"), ("hinges", "hing")]


def test_bm25_units_and_stems_match_across_spellings(fitted):
    bm25 = fitted["bm25"]
    assert bm25.search("copper pipe 1/2 inch", k=1)[0].product_id == "P07"
    assert bm25.search("pvc pipes 3/4\"", k=1)[0].product_id == "P08"
    assert bm25.search("20 volt drills", k=1)[0].product_id == "P09"


def test_bm25_term_reasons_add_up_to_the_score(fitted):
    hit = fitted["bm25"].search("red coffee mugs mugs", k=1)[0]
    assert hit.product_id == "P01"
    assert [(r.kind, r.term) for r in hit.reasons] == [("term", "red"), ("term", "coffe"),
                                                        ("term", "mug")]
    assert "'mugs' in the text" in hit.reasons[2].text
    assert sum(r.weight for r in hit.reasons) == pytest.approx(hit.score, rel=1e-5)
    # "mugs" twice counts twice, as in the score.
    once = fitted["bm25"].search("mug", k=1)[0]
    assert hit.reasons[2].weight == pytest.approx(2 * once.score, rel=1e-5)


def test_bm25_query_without_known_words_matches_nothing(fitted, catalog):
    bm25 = fitted["bm25"]
    assert bm25.search("the of and", k=3, matched_only=True) == []
    assert bm25.search("xylophone", k=3, matched_only=True) == []
    hits = bm25.search("xylophone", k=3)
    assert [h.product_id for h in hits] == ["P01", "P02", "P03"] and {h.score for h in hits} == {0.0}
    assert list(bm25.score("xylophone", ["P01", "P05"])) == [0.0, 0.0]


def test_bm25_parameters_change_the_scores(catalog):
    default = get("bm25")().fit(catalog).search("pipe", k=2)
    saturated = get("bm25")(k1=0.5, b=0.0).fit(catalog).search("pipe", k=2)
    assert [h.score for h in default] != [h.score for h in saturated]
    atire = get("bm25")(method="atire").fit(catalog).search("pipe", k=2)
    assert {h.product_id for h in atire} == {h.product_id for h in default}
    with pytest.raises(ValueError, match="method 'bm25l' is not supported; choose one of lucene, atire"):
        get("bm25")(method="bm25l")


def test_dense_scores_are_cosines_of_unit_vectors(fitted, model):
    dense = fitted["semantic"]
    norms = np.linalg.norm(dense.embeddings, axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    hits = dense.search("hot water for tea", k=3)
    assert {hits[0].product_id} <= {"P03", "P04"}
    for hit in hits:
        assert [r.kind for r in hit.reasons] == ["cosine"] and hit.reasons[0].weight == hit.score
        assert -1.0 <= hit.score <= 1.0
    query = model.encode(["hot water for tea"], normalize_embeddings=True)[0]
    expected = dense.embeddings[dense._index[hits[0].product_id]] @ query
    assert hits[0].score == pytest.approx(float(expected), abs=1e-5)


def test_dense_catalog_embeddings_are_cached(catalog, embedding_cache, monkeypatch):
    from recsys import embeddings

    first = get("semantic")().fit(catalog)
    assert list(embedding_cache.rglob("*.npy"))

    def refuse(*args, **kwargs):
        raise AssertionError("the catalog was encoded again")

    monkeypatch.setattr(embeddings, "encode", refuse)
    again = get("semantic")()
    again.fit(catalog)  # from the cache: encode is never called
    np.testing.assert_array_equal(again.embeddings, first.embeddings)


def test_dense_model_path_is_checked(catalog, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a sentence-transformers model folder"):
        get("semantic")(model_path=str(tmp_path)).fit(catalog)


def test_hybrid_scores_are_the_weighted_minmax_of_its_sources(fitted):
    hybrid = fitted["hybrid"]
    bm25, dense = hybrid.sources
    assert hybrid.fusion.method == "weighted" and hybrid.fusion.weights == {"bm25": 0.75, "semantic": 0.25}
    assert dense.config.backend == "onnx-int8"  # the default preset's encoder
    depth = hybrid.fusion.candidates
    lexical = {h.product_id: h.score for h in bm25.search("glass teapot", k=depth, matched_only=True)}
    floor = hybrid.fusion.min_scores["semantic"]  # the default preset's floor under the cosine
    semantic = {h.product_id: h.score for h in dense.search("glass teapot", k=depth, matched_only=True)
                if h.score >= floor}

    def minmax(scores):
        low, high = min(scores.values()), max(scores.values())
        return {p: (s - low) / (high - low) if high > low else 1.0 for p, s in scores.items()}

    expected = {p: 0.75 * minmax(lexical).get(p, 0) + 0.25 * minmax(semantic).get(p, 0)
                for p in {*lexical, *semantic}}
    hits = hybrid.search("glass teapot", k=10, matched_only=True)
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.product_id])
        assert sum(part.contribution for part in hit.sources.values()) == pytest.approx(hit.score)
    assert [h.product_id for h in hits] == sorted(expected, key=lambda p: (-expected[p], p))[:10]
    top = hits[0]
    assert top.product_id == "P03" and top.sources["bm25"].rank == 1 and top.sources["semantic"].rank == 1
    assert {reason.kind for reason in top.reasons} == {"term", "cosine"}


def test_hybrid_rrf_scores_are_the_rrf_of_its_sources(fitted):
    hybrid = fitted["hybrid"].with_fusion({"method": "rrf", "weights": {"bm25": 1.0, "semantic": 0.5}})
    bm25, dense = hybrid.sources
    bm25_ranks = {h.product_id: rank for rank, h in
                  enumerate(bm25.search("glass teapot", k=100, matched_only=True), start=1)}
    dense_ranks = {h.product_id: rank for rank, h in
                   enumerate(dense.search("glass teapot", k=100), start=1)}
    for hit in hybrid.search("glass teapot", k=10):
        expected = rrf_contribution(dense_ranks[hit.product_id], 60, weight=0.5)
        if hit.product_id in bm25_ranks:
            expected += rrf_contribution(bm25_ranks[hit.product_id], 60)
        assert hit.score == pytest.approx(expected)


def test_hybrid_from_fitted_sources_with_weights(fitted, catalog):
    bm25, dense = fitted["bm25"], fitted["semantic"]
    lexical_only = HybridRetriever.from_sources([bm25, dense], {"weights": {"bm25": 1.0, "semantic": 0.0}})
    assert [h.product_id for h in lexical_only.search("pipe", k=2)] == \
        [h.product_id for h in bm25.search("pipe", k=2)]
    assert lexical_only.config.source_configs["bm25"] == bm25.config.to_dict()
    other = get("bm25")().fit(catalog.head(5))
    with pytest.raises(ValueError, match="fitted on another catalog"):
        HybridRetriever.from_sources([other, dense])
    with pytest.raises(ValueError, match="unknown source retriever"):
        HybridRetriever(sources=["bm25", "hybrid"])


def test_hybrid_passes_configs_to_its_sources(catalog):
    hybrid = get("hybrid")(sources=["bm25"], source_configs={"bm25": {"stemmer": None}},
                           extra_fields=["category"]).fit(catalog)
    assert hybrid.sources[0].config.stemmer is None
    assert hybrid.sources[0].config.extra_fields == ["category"]
    assert hybrid.search("tools", k=1)[0].product_id == "P09"


def test_explain_gives_each_products_reasons(fitted):
    reasons = fitted["bm25"].explain("glass teapot", ["P03", "P05", "nope"])
    assert {r.term for r in reasons[0]} >= {"teapot"} and reasons[1] == [] and reasons[2] == []
    cosine = fitted["semantic"].explain("glass teapot", ["P03"])[0]
    assert cosine[0].kind == "cosine"


def test_a_large_catalog_takes_semantic_candidates_from_the_graph(fitted, catalog, tmp_path):
    # A graph over 10 products finds every neighbour, so the hybrid answers exactly as with the scan;
    # the ranker's signals are exact cosines of any product, and the graph is saved with the engine.
    from recsys.search.dense import NEAREST_FILE, NearestScores
    from recsys.search.hybrid import HybridRetriever

    scanned = fitted["hybrid"]
    graphed = HybridRetriever(source_configs={"semantic": {"ann_threshold": 5}}).fit(catalog)
    semantic = graphed.sources[1]
    assert semantic._nearest is not None and len(semantic._nearest) == len(catalog)
    said = semantic._query_scores(["garden chair"])[0]
    assert isinstance(said, NearestScores) and said.matches == len(catalog)
    row = scanned.sources[1]._scores(["garden chair"])[0]
    top, scores = said.top(4)
    assert top.tolist() == np.argsort(-row)[:4].tolist() and scores == pytest.approx(row[top], abs=1e-5)
    assert said.at(np.array([7, 2]))[0] == pytest.approx(row[[7, 2]], abs=1e-6)
    for query in ("red mug", "garden chair", "copper pipe", "drill"):
        expected = [(hit.product_id, round(hit.score, 5)) for hit in scanned.search(query, k=6)]
        assert [(hit.product_id, round(hit.score, 5)) for hit in graphed.search(query, k=6)] == expected
    folder = graphed.save(tmp_path / "hybrid")
    assert (folder / "semantic" / NEAREST_FILE).is_file()
    loaded = HybridRetriever.load(folder)
    assert len(loaded.sources[1]._nearest) == len(catalog)
    assert [hit.product_id for hit in loaded.search("teapot", k=3)] == [
        hit.product_id for hit in graphed.search("teapot", k=3)]


@pytest.mark.parametrize("index", [{"kind": "ivfpq", "pq_bits": 2}, {"kind": "hnsw"}])
def test_an_explicit_index_serves_the_semantic_candidates_and_is_saved(fitted, catalog, tmp_path, index):
    # IVF-PQ over 10 products: one cell, every candidate re-scored exactly, so the hybrid answers as
    # with the scan; the preset's index reaches the source through the fusion config.
    from recsys.fusion import FusionConfig
    from recsys.search.hybrid import HybridRetriever

    scanned = fitted["hybrid"]
    fusion = FusionConfig.resolve(scanned.fusion.to_dict(), semantic_index=index)
    indexed = HybridRetriever(fusion=fusion.to_dict()).fit(catalog)
    semantic = indexed.sources[1]
    assert semantic.index_kind == index["kind"] and semantic._nearest.kind == index["kind"]
    for query in ("red mug", "garden chair", "copper pipe"):
        expected = [(hit.product_id, round(hit.score, 5)) for hit in scanned.search(query, k=6)]
        assert [(hit.product_id, round(hit.score, 5)) for hit in indexed.search(query, k=6)] == expected
    loaded = HybridRetriever.load(indexed.save(tmp_path / "hybrid"))
    assert loaded.sources[1]._nearest.kind == index["kind"]
    assert loaded.sources[1].config.index == semantic.config.index
    assert [hit.product_id for hit in loaded.search("teapot", k=3)] == [
        hit.product_id for hit in indexed.search("teapot", k=3)]
