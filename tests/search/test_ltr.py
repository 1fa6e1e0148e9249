"""The learned ranker: its features, its training (it learns what the fusion misses, the same
seed gives the same trees), and the hybrid reranking its fused top with it before the rules."""

from __future__ import annotations

import collections
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from recsys.fusion import FusedItem, fuse
from recsys.search.bm25 import Tokenizer
from recsys.search.hybrid import HybridRetriever
from recsys.search.ltr import LEARNED_RANKER, META_FILE, MODEL_FILE, LearnedRanker, feature_names, features_of
from recsys.search.rerank import RERANK_SOURCE, kind_of, load_reranker
from recsys.timing import StageTimer
from recsys.training.ltr import RankerConfig, train_ranker
from tests.conftest import FLOAT32

# (as a title writes a size, as a query asks for it): the embedding reads sizes poorly
SIZES = [("1/2 in.", "1/2 inch"), ("3/4 in.", "3/4 inch"), ("1 in.", "1 inch"), ("2 in.", "2 inch"),
         ("10 ft.", "10 ft"), ("25 ft.", "25 ft")]
THINGS = ["mug", "kettle", "chair", "lamp", "drill", "hose", "towel", "basket"]
MATERIALS = ["ceramic", "steel"]


def shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """96 products "<thing> <material> <size>"; for each query "<size> <thing>" the two products
    of that thing and size are perfect (3) and two of other sizes judged poor (1)."""
    titles = {(thing, material, size): f"{thing.title()} {material} {size}"
              for (size, _), material, thing in itertools.product(SIZES, MATERIALS, THINGS)}
    catalog = pd.DataFrame({"product_id": [f"P{i:03d}" for i in range(len(titles))], "title": list(titles.values())})
    ids = dict(zip(titles, catalog["product_id"]))
    rows = []
    for (size, asked), thing in itertools.product(SIZES, THINGS):
        query = f"{asked} {thing}"
        rows += [(query, ids[(thing, material, size)], 3.0) for material in MATERIALS]
        rows += [(query, ids[(thing, "ceramic", other)], 1.0) for other, _ in SIZES if other != size][:2]
    return catalog, pd.DataFrame(rows, columns=["query", "product_id", "grade"])


@pytest.fixture(scope="module")
def judged(model):
    catalog, judgments = shop()
    # Semantic only: the fusion ignores BM25 (weight 0), but the ranker reads BM25's scores and
    # the words and numbers the title shares with the query, so it can learn that the size must match.
    hybrid = HybridRetriever(fusion={"weights": {"bm25": 0.0, "semantic": 1.0}, "candidates": 30,
                                     "backend": "torch"}).fit(catalog)
    queries = sorted(judgments["query"].unique())
    validation = set(queries[::4])
    parts = {"train": judgments[~judgments["query"].isin(validation)],
             "validation": judgments[judgments["query"].isin(validation)]}
    return catalog, hybrid, parts


@pytest.fixture(scope="module")
def trained(judged, tmp_path_factory):
    _, hybrid, parts = judged
    folder = tmp_path_factory.mktemp("ranker") / "model"
    config = RankerConfig(top_n=20, leaves=4, min_child_samples=5, trees=60, early_stopping=20)
    return train_ranker(hybrid, parts["train"], parts["validation"], config, folder), folder


def candidate_features(hybrid: HybridRetriever, queries: list[str], tops: list[list[FusedItem]]) -> list[np.ndarray]:
    """The feature matrices of each query's `tops`, as a ranker over all the hybrid's sources reads them."""
    sources = [source.name for source in hybrid.sources]
    return features_of(hybrid.rerank_requests(queries, tops, sources), sources)


def test_features_score_every_candidate_by_every_source(judged):
    _, hybrid, _ = judged
    query = "3/4 inch kettle"
    items = fuse(hybrid.candidates([query])[0], hybrid.fusion)[:10]
    matrix = candidate_features(hybrid, [query], [items])[0]
    names = feature_names(["bm25", "semantic"])
    assert matrix.shape == (10, len(names))
    column = dict(zip(names, matrix.T))
    ids = [item.product_id for item in items]
    bm25 = next(source for source in hybrid.sources if source.name == "bm25")
    assert "bm25" not in items[0].sources  # BM25 weighs 0, so it retrieved nothing ...
    assert column["bm25_score"] == pytest.approx(bm25.score(query, ids))  # ... but scores every item
    assert column["semantic_score"] == pytest.approx([item.sources["semantic"].score for item in items])
    assert column["semantic_rank"] == pytest.approx(range(1, 11))
    assert column["semantic_normalised"][0] == pytest.approx(1.0)
    asked = set(Tokenizer().tokens(query))
    for row, product_id in enumerate(ids):
        words = set(Tokenizer().tokens(hybrid.product_texts[product_id]))
        assert column["matched_terms"][row] == len(asked & words)
        assert column["matched_numbers"][row] == ("3/4" in words)
        assert column["last_term_matched"][row] == ("kettl" in words)
    assert set(column["query_terms"]) == {3.0} and set(column["query_numbers"]) == {1.0}


def test_numbers_units_and_adjacent_pairs_are_matched_as_bm25_reads_them(judged):
    _, hybrid, _ = judged
    hybrid = hybrid.with_fusion(hybrid.fusion)
    hybrid.product_texts = {**hybrid.product_texts, "P000": "Copper Pipe 1/2 in. x 10 ft.",
                            "P001": "Copper elbow 3/4 in."}
    matrix = candidate_features(hybrid, ["1/2 inch copper pipes"], [[FusedItem("P000", 1.0), FusedItem("P001", 0.5)]])[0]
    column = dict(zip(feature_names(["bm25", "semantic"]), matrix.T))
    assert list(column["query_terms"]) == [4, 4]  # 1/2, inch, copper, pipe
    assert list(column["matched_terms"]) == [4, 2]  # "in." is "inch", "pipes" is "pipe"
    assert list(column["matched_share"]) == [1.0, 0.5]
    assert list(column["matched_pairs"]) == [2, 0]  # "1/2 inch" and "copper pipe" are adjacent in P000
    assert list(column["query_numbers"]) == [1, 1] and list(column["matched_numbers"]) == [1, 0]
    assert list(column["first_term_matched"]) == [1, 0] and list(column["last_term_matched"]) == [1, 0]
    assert list(column["text_terms"]) == [7, 4]
    assert column["matched_trigrams"][0] > column["matched_trigrams"][1] > 0


def test_letter_trigrams_match_a_compound_word_the_terms_miss(judged):
    _, hybrid, _ = judged
    hybrid = hybrid.with_fusion(hybrid.fusion)
    hybrid.product_texts = {**hybrid.product_texts, "P000": "Snow Blower 24 in.", "P001": "Oak chair"}
    matrix = candidate_features(hybrid, ["snowblower"], [[FusedItem("P000", 1.0), FusedItem("P001", 0.5)]])[0]
    column = dict(zip(feature_names(["bm25", "semantic"]), matrix.T))
    assert list(column["matched_terms"]) == [0, 0]
    # "snowblower": sno now owb wbl blo low owe wer; "snow blower" lacks owb and wbl
    assert list(column["matched_trigrams"]) == pytest.approx([6 / 8, 0.0])


@pytest.mark.parametrize("query", ["snowblower", "1/2 in. ÉLBOW", "日本語 ü", "ab", "", "a\ud800bc"])
def test_trigram_shares_are_those_of_substrings(query):
    """The trigrams compared as integers give the share a substring search over the joined words
    gives, for any script, and for texts too short to have a trigram."""
    from recsys.search.ltr import _analysed, _text_columns, _WORD

    texts = ["Snow Blower 24 in.", "elbow 1/2 in", "日本語", "Ü", "", "ab", "snowblowers snowblower"]

    def letters(text):
        return " ".join(_WORD.findall(text.lower()))

    grams = {letters(query)[i:i + 3] for i in range(len(letters(query)) - 2)}
    expected = [sum(gram in letters(text) for gram in grams) / max(len(grams), 1) for text in texts]
    assert list(_text_columns(query, texts)[-1]) == pytest.approx(expected, abs=1e-12)
    assert len(_analysed(query).trigrams) == len(grams)


def test_the_ranker_learns_what_the_fusion_misses(trained):
    result, folder = trained
    assert (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file()
    assert not folder.with_name(folder.name + ".partial").exists()
    assert result["kind"] == LEARNED_RANKER and result["trees"] >= 1
    assert result["train_queries"] == 36 and result["train_items"] == 36 * 20
    # Semantic alone confuses sizes; the ranker reads which query words the title has.
    assert result["val_ndcg@10_after"] > result["val_ndcg@10_before"] + 0.05
    saved = json.loads((folder / META_FILE).read_text())
    assert saved["features"] == feature_names(["bm25", "semantic"])
    assert sum(value for name, value in result["importance"].items() if name.startswith("bm25")
               or "matched" in name) > 0


def test_the_same_seed_gives_the_same_trees(judged, trained, tmp_path):
    _, hybrid, parts = judged
    _, first = trained
    config = RankerConfig(top_n=20, leaves=4, min_child_samples=5, trees=60, early_stopping=20)
    train_ranker(hybrid, parts["train"], parts["validation"], config, tmp_path / "again")

    def trees(folder):  # the model text without LightGBM's parameter echo
        return (folder / MODEL_FILE).read_text().split("parameters:")[0]

    assert trees(tmp_path / "again") == trees(first)


def test_the_hybrid_reranks_its_fused_top_with_the_ranker_and_explains_it(judged, trained):
    _, hybrid, _ = judged
    _, folder = trained
    query = "3/4 inch kettle"
    plain = hybrid.search(query, k=25)
    ranked = hybrid.with_fusion({**hybrid.fusion.to_dict(), "reranker": str(folder), "rerank_top": 20})
    with StageTimer() as timer:
        hits = ranked.search(query, k=25)
    assert "rerank" in timer.ms
    ranker = LearnedRanker(folder)
    top = fuse(hybrid.candidates([query])[0], hybrid.fusion)[:20]
    scores = ranker.scores(hybrid.rerank_requests([query], [top], ranker.sources, ranker.depth))[0]
    order = np.argsort(-scores, kind="stable")
    assert [hit.product_id for hit in hits[:20]] == [plain[i].product_id for i in order]
    assert [hit.product_id for hit in hits[20:]] == [hit.product_id for hit in plain[20:]]
    assert {hybrid.product_texts[hit.product_id] for hit in hits[:2]} == {
        "Kettle ceramic 3/4 in.", "Kettle steel 3/4 in."}
    part = hits[0].sources[RERANK_SOURCE]
    assert part.by == LEARNED_RANKER and part.score == pytest.approx(scores[order[0]])
    assert any(r.kind == "rerank" and r.text.startswith("learned ranker") for r in hits[0].reasons)
    pinned = ranked.with_fusion({**ranked.fusion.to_dict(), "rules": [
        {"kind": "pin", "product_id": "P095", "position": 1}]}).search(query, k=3)
    assert pinned[0].product_id == "P095"  # the rules apply after the rerank


def test_a_search_with_the_ranker_scores_the_catalog_once_per_source(judged, trained, monkeypatch):
    # The ranker reads the scores the candidates were found with: one query encoding, one pass
    # over the catalog per source, and the same order as when the sources score its items again.
    _, hybrid, _ = judged
    _, folder = trained
    both = hybrid.with_fusion({**hybrid.fusion.to_dict(), "weights": {"bm25": 0.5, "semantic": 0.5},
                               "reranker": str(folder), "rerank_top": 20})
    queries = ["3/4 inch kettle", "25 ft hose"]
    ranker = LearnedRanker(folder)
    tops = [fuse(lists, both.fusion)[:20] for lists in both.candidates(queries)]
    expected = ranker.scores(both.rerank_requests(queries, tops, ranker.sources, ranker.depth))
    calls = collections.Counter()
    for source in both.sources:
        def counted(batch, scores=source._scores, name=source.name):
            calls[name] += 1
            return scores(batch)
        monkeypatch.setattr(source, "_scores", counted)
    found = both.search_many(queries, k=20)
    assert calls == {"bm25": 1, "semantic": 1}
    for hits, top, scores in zip(found, tops, expected):
        order = np.argsort(-scores, kind="stable")
        assert [hit.product_id for hit in hits] == [top[i].product_id for i in order]
        assert [hit.sources[RERANK_SOURCE].score for hit in hits] == pytest.approx(np.sort(scores)[::-1])


def test_a_reranker_folder_is_opened_by_what_it_holds(trained, tmp_path):
    _, folder = trained
    assert isinstance(load_reranker(folder), LearnedRanker)
    with pytest.raises(FileNotFoundError, match="holds no reranker: none of cross-encoder, learned ranker"):
        load_reranker(tmp_path)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / MODEL_FILE).write_text((folder / MODEL_FILE).read_text())
    meta = json.loads((folder / META_FILE).read_text())
    (tmp_path / "old" / META_FILE).write_text(json.dumps({**meta, "features": meta["features"][:-1]}))
    with pytest.raises(ValueError, match="train it again"):
        load_reranker(tmp_path / "old")


def test_a_ranker_over_other_sources_says_so(judged, trained):
    _, hybrid, _ = judged
    _, folder = trained
    semantic_only = HybridRetriever.from_sources([s for s in hybrid.sources if s.name == "semantic"],
                                                 {"reranker": str(folder), "rerank_top": 5},
                                                 texts=hybrid.product_texts)
    with pytest.raises(ValueError, match="has no \\['bm25'\\]"):
        semantic_only.search("1 inch mug")


def test_training_without_anything_to_learn_is_refused(judged, tmp_path):
    _, hybrid, parts = judged
    poor = parts["train"].assign(grade=1.0)
    with pytest.raises(ValueError, match="nothing to learn from"):
        train_ranker(hybrid, poor, parts["validation"], RankerConfig(top_n=5), tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("fields, message", [({"top_n": 1}, "top n must be"), ({"learning_rate": 0}, "learning rate"),
                                             ({"leaves": True}, "leaves must be")])
def test_ranker_config_checks_its_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        RankerConfig(**fields)
    assert RankerConfig.from_dict(RankerConfig(top_n=50).to_dict()) == RankerConfig(top_n=50)


def test_training_without_validation_queries_is_refused(judged, tmp_path):
    _, hybrid, parts = judged
    with pytest.raises(ValueError, match="needs validation judgments"):
        train_ranker(hybrid, parts["train"], parts["validation"].iloc[0:0], RankerConfig(top_n=5), tmp_path / "x")


def test_the_ranker_reads_the_query_as_spelling_correction_left_it(judged):
    _, hybrid, _ = judged
    assert hybrid.correct("3/4 inch kettel").query == "3/4 inch kettle"
    kettle = next(p for p, t in hybrid.product_texts.items() if t == "Kettle steel 3/4 in.")
    typed, right = (dict(zip(feature_names(["bm25", "semantic"]), matrix[-1]))
                    for matrix in candidate_features(hybrid, ["3/4 inch kettel", "3/4 inch kettle"],
                                                     [[FusedItem(kettle, 1.0)], [FusedItem(kettle, 1.0)]]))
    # The same text at two places of one batch: equal up to float32's last bits.
    assert typed == pytest.approx(right, rel=FLOAT32["rtol"], abs=FLOAT32["atol"])
    assert typed["last_term_matched"] == 1.0


def test_a_preset_reranking_with_a_ranker_starts_at_the_n_it_was_trained_with(trained, tmp_path):
    _, folder = trained
    assert kind_of(folder) is LearnedRanker and LearnedRanker.saved_top_n(folder) == 20
    assert kind_of(tmp_path) is None and LearnedRanker.saved_top_n(tmp_path) is None


def test_compiled_trees_score_as_lightgbm_does(judged, trained):
    """The ranker predicts with its trees compiled to machine code: the scores LightGBM gives,
    missing values and features beyond every split included; the library is compiled once."""
    from recsys.search.compiled_trees import compiled_trees, library_path

    import shutil

    if not (shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler (gcc or clang): `make system-deps` installs gcc")
    _, folder = trained
    ranker = LearnedRanker(folder)
    assert ranker.compiled is not None and ranker.compiled.library == library_path(folder / MODEL_FILE)
    assert compiled_trees(folder / MODEL_FILE) is ranker.compiled
    rows = np.random.default_rng(7).normal(scale=3.0, size=(300, len(ranker.features)))
    rows[::5, 3] = np.nan
    rows[1::7] = 1e12
    expected = ranker.booster.predict(rows, num_threads=1)
    np.testing.assert_array_equal(ranker.compiled.predict(rows), expected)
    matrices = candidate_features(judged[1], ["1/2 inch mug"], [judged[1].search("1/2 inch mug", k=20)])
    np.testing.assert_array_equal(ranker.predict(matrices)[0], ranker.booster.predict(matrices[0]))


def test_without_a_c_compiler_the_ranker_predicts_with_lightgbm(trained, tmp_path, monkeypatch, caplog):
    from recsys.search import compiled_trees as module

    _, folder = trained
    copy = tmp_path / "ranker"
    copy.mkdir()
    for name in (MODEL_FILE, META_FILE):
        (copy / name).write_bytes((folder / name).read_bytes())
    (copy / MODEL_FILE).write_text((folder / MODEL_FILE).read_text() + "\n")  # a file of its own
    monkeypatch.setenv("WORKBENCH_COMPILED_DIR", str(tmp_path / "compiled"))
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    with caplog.at_level("WARNING", logger=module.__name__):
        ranker = LearnedRanker(copy)
    assert ranker.compiled is None and "no C compiler (gcc or clang)" in caplog.text
    assert not (tmp_path / "compiled").exists()
    rows = np.random.default_rng(3).normal(size=(10, len(ranker.features)))
    np.testing.assert_array_equal(ranker.predict([rows])[0], LearnedRanker(folder).predict([rows])[0])
    monkeypatch.setenv(module.COMPILE_ENV, "0")
    assert module.compiled_trees(folder / MODEL_FILE) is None
