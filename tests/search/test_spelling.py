"""Query spelling correction: which words change and to what, and the hybrid searching the
corrected query, saying so in its explanations, saving the corrector and turning it off."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.search import Retriever
from recsys.search.hybrid import HybridRetriever
from recsys.search.spelling import SpellingCorrector
from recsys.training.pairs import product_texts

TEXTS = ["White Toilet Seat", "Ceiling Fan with Light", "Snow Blower 24 in.", "Porcelain Floor Tile",
         "Door Hinges 3-Pack", "Rust-Oleum Spray Paint", "Stainless Steel Sink", "Steel Shelving Unit",
         "Light Bulb 60-Watt", "Garden Hose 50 ft."]
KNOWN_WORDS = sorted({word for text in TEXTS for word in text.lower().replace("-", " ").split()
                      if word.isalpha()})


@pytest.fixture(scope="module")
def speller() -> SpellingCorrector:
    return SpellingCorrector().fit(TEXTS)


@pytest.mark.parametrize("query, searched", [
    ("toliet seat", "toilet seat"),            # two letters swapped: one edit
    ("cieling fan", "ceiling fan"),
    ("porcelin tile", "porcelain tile"),       # a letter left out
    ("snowblower", "snow blower"),             # two catalog words run together
    ("rustoleum paint", "rust oleum paint"),
    ("stainles stell sink", "stainless steel sink"),
    ("procelian tile", "porcelain tile"),      # two edits, in a long word
])
def test_misspelled_words_are_corrected_to_catalog_words(speller, query, searched):
    correction = speller.correct(query)
    assert correction.query == searched
    assert correction.changed


@pytest.mark.parametrize("query", [
    "hinge",          # its stem is in the catalog ("hinges"): left alone
    "fans",           # a plural of a catalog word
    "sku 2x4",        # short words and words with digits are never changed
    "gidget",         # nothing within two edits, no split: kept as typed
    "xyzw hose",
    "hose that fits",  # "that" is a stop word: never read as "hat", even if no title has "that"
])
def test_known_short_and_unmatched_words_are_kept(speller, query):
    correction = speller.correct(query)
    assert correction.query == query
    assert not correction.changed and correction.describe() == ""


def test_short_words_allow_one_edit_only(speller):
    # "sink" -> "silk" would be one edit, but "xxnk" is two edits from "sink": a 4-letter word
    # two edits away is usually another word, so it stays.
    assert speller.correct("xink").query == "sink"
    assert speller.correct("xxnk").query == "xxnk"


def test_changes_name_the_words_as_written(speller):
    correction = speller.correct("White TOLIET Seat")
    assert correction.query == "White toilet Seat"
    assert [(change.written, change.read_as) for change in correction.changes] == [("TOLIET", "toilet")]
    assert correction.describe() == "'TOLIET' read as 'toilet'"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(KNOWN_WORDS), st.from_regex(r"[0-9]{1,3}(x[0-9]{1,2})?",
                                                                      fullmatch=True)),
                min_size=1, max_size=6))
def test_queries_of_catalog_words_and_numbers_are_never_changed(speller, words):
    query = " ".join(words)
    assert speller.correct(query).query == query


def test_round_trip_keeps_the_corrections(speller):
    again = SpellingCorrector.from_dict(speller.to_dict())
    for query in ("toliet seat", "snowblower", "hinge", "procelian tile"):
        assert again.correct(query) == speller.correct(query)


def test_unfitted_corrector_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        SpellingCorrector().correct("toliet")


# --- in the hybrid -------------------------------------------------------------------------

def test_hybrid_searches_the_corrected_query_and_explains_it(fitted):
    hybrid = fitted["hybrid"]
    assert hybrid.correct("ceramic mugg").query == "ceramic mug"
    hits = hybrid.search("red ceramic coffe mugg", k=3, matched_only=True)
    assert hits[0].product_id == "P01"
    reasons = [reason for reason in hits[0].reasons if reason.kind == "spelling"]
    assert reasons and "'coffe' read as 'coffee'" in reasons[0].text
    # The source reasons are those of the corrected query: "mug" is a matched term.
    assert any(reason.kind == "term" and reason.term == "mug" for reason in hits[0].reasons)
    assert not [r for r in hybrid.search("red mug", k=1)[0].reasons if r.kind == "spelling"]


def test_spelling_off_searches_the_query_as_typed(catalog):
    lexical = {"weights": {"bm25": 1.0, "semantic": 0.0}}
    on = HybridRetriever(fusion=lexical).fit(catalog)
    off = HybridRetriever(fusion=lexical, spelling=False).fit(catalog)
    assert [hit.product_id for hit in on.search("kettel", k=1, matched_only=True)] == ["P04"]
    assert off.search("kettel", k=1, matched_only=True) == []
    assert off.correct("kettel").query == "kettel"


def test_scores_of_judged_products_use_the_corrected_query(fitted):
    hybrid = fitted["hybrid"]
    assert list(hybrid.score("coffe mugg", ["P01", "P05"])) == list(hybrid.score("coffee mug", ["P01", "P05"]))


def test_rules_still_see_the_query_as_typed(fitted):
    pin = {"kind": "pin", "product_id": "P10", "position": 1, "when_query": "mugg"}
    hybrid = fitted["hybrid"].with_fusion({**fitted["hybrid"].fusion.to_dict(), "rules": [pin]})
    assert hybrid.search("mugg", k=1)[0].product_id == "P10"
    assert hybrid.search("mug", k=1)[0].product_id != "P10"


def test_save_load_and_with_fusion_keep_the_corrector(fitted, tmp_path):
    hybrid = fitted["hybrid"]
    loaded = Retriever.load(hybrid.save(tmp_path / "hybrid"))
    assert loaded.correct("stainles kettel").query == "stainless kettle"
    refused = hybrid.with_fusion({"method": "rrf"})
    assert refused.correct("kettel").query == "kettle"


def test_from_sources_corrects_only_with_texts(fitted, catalog):
    sources = [fitted["bm25"], fitted["semantic"]]
    assert HybridRetriever.from_sources(sources).correct("kettel").query == "kettel"
    with_texts = HybridRetriever.from_sources(sources, texts=product_texts(catalog))
    assert with_texts.config.spelling and with_texts.correct("kettel").query == "kettle"
