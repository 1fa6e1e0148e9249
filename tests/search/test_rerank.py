"""The cross-encoder reranker at search time: its order, the rest of the list kept, the
hybrid reranking its fused top N before the rules, the explanation, and the preset fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.fusion import FusionConfig
from recsys.search import Retriever
from recsys.search.cross_encoder import CrossEncoderReranker as Reranker
from recsys.search.hybrid import DEFAULT_FUSION, HybridRetriever
from recsys.search.rerank import RERANK_SOURCE, load_reranker
from recsys.timing import StageTimer
from recsys.training.pairs import product_texts

QUERY = "ceramic coffee mug"


@pytest.fixture(scope="session")
def texts(catalog) -> dict[str, str]:
    return product_texts(catalog).to_dict()


def reranking(hybrid: HybridRetriever, folder: str, top: int, **fusion) -> HybridRetriever:
    return hybrid.with_fusion({**hybrid.fusion.to_dict(), "reranker": folder, "rerank_top": top, **fusion})


def test_the_cross_encoder_is_loaded_once_and_reads_pairs(cross_encoder, texts):
    reranker = load_reranker(cross_encoder)
    assert isinstance(reranker, Reranker) and reranker.kind == "cross-encoder" and not reranker.uses_sources
    scores = reranker.probabilities("red mug", [texts["P05"], texts["P01"], texts["P02"]])
    assert scores.shape == (3,) and ((0 < scores) & (scores < 1)).all()
    assert [len(s) for s in reranker.probabilities_many(["a", "b"], [[texts["P01"]], []])] == [1, 0]
    assert Reranker(cross_encoder).model is reranker.model  # loaded once


def test_a_folder_without_a_model_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a cross-encoder model folder"):
        Reranker(tmp_path)


def test_the_hybrid_reranks_its_fused_top_and_explains_it(fitted, cross_encoder, texts):
    plain = fitted["hybrid"].search(QUERY, k=6)
    hits = reranking(fitted["hybrid"], cross_encoder, 3).search(QUERY, k=6)
    scores = Reranker(cross_encoder).probabilities(QUERY, [texts[hit.product_id] for hit in plain[:3]])
    order = np.argsort(-scores, kind="stable")
    assert [hit.product_id for hit in hits[:3]] == [plain[i].product_id for i in order]
    assert [hit.product_id for hit in hits[3:]] == [hit.product_id for hit in plain[3:]]
    # the reranked items take the fused scores of the places they land on
    assert [hit.score for hit in hits] == pytest.approx([hit.score for hit in plain])
    for rank, (hit, position) in enumerate(zip(hits[:3], order), 1):
        part = hit.sources[RERANK_SOURCE]
        assert (part.rank, part.fused_rank) == (rank, position + 1)
        assert part.score == pytest.approx(scores[position])
        assert {"bm25", "semantic"} & set(hit.sources)  # the sources' parts are still there
        why = [reason for reason in hit.reasons if reason.kind == "rerank"]
        assert len(why) == 1 and f"#{position + 1} in the fused list, #{rank} after the rerank" in why[0].text
    assert all(RERANK_SOURCE not in hit.sources for hit in hits[3:])


def test_rules_apply_after_the_rerank(fitted, cross_encoder):
    rules = [{"kind": "filter", "field": "category", "value": "kitchen"},
             {"kind": "pin", "product_id": "P10", "position": 1}]
    hits = reranking(fitted["hybrid"], cross_encoder, 5, rules=rules).search(QUERY, k=4)
    assert hits[0].product_id == "P10" and [e.action for e in hits[0].effects] == ["pinned"]
    assert all(fitted["hybrid"].attributes[hit.product_id]["category"] == "kitchen" for hit in hits[1:])


def test_search_many_batches_the_rerank_and_matches_search(fitted, cross_encoder):
    hybrid = reranking(fitted["hybrid"], cross_encoder, 4)
    queries = [QUERY, "garden chair", "copper pipe"]
    with StageTimer() as timer:
        many = hybrid.search_many(queries, k=5)
    assert "rerank" in timer.ms
    for query, hits in zip(queries, many):
        single = hybrid.search(query, k=5)
        assert [h.product_id for h in hits] == [h.product_id for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single])


def test_a_hybrid_without_texts_says_so(fitted, cross_encoder):
    bare = HybridRetriever.from_sources([fitted["bm25"], fitted["semantic"]],
                                        {"reranker": cross_encoder, "rerank_top": 3})
    with pytest.raises(ValueError, match="no product texts"):
        bare.search(QUERY)


def test_the_texts_are_saved_with_the_hybrid(fitted, cross_encoder, tmp_path):
    hybrid = reranking(fitted["hybrid"], cross_encoder, 3)
    loaded = Retriever.load(hybrid.save(tmp_path / "hybrid"))
    assert loaded.product_texts == fitted["hybrid"].product_texts
    assert loaded.fusion.reranks
    assert ([h.product_id for h in loaded.search(QUERY, k=5)]
            == [h.product_id for h in hybrid.search(QUERY, k=5)])


def test_fusion_config_round_trips_with_and_without_the_rerank_fields():
    config = FusionConfig(**DEFAULT_FUSION, reranker="var/models/reranker/v1", rerank_top=20)
    assert config.reranks
    assert FusionConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    old = dict(DEFAULT_FUSION)  # a preset stored before reranking existed
    loaded = FusionConfig.from_dict(old)
    assert (loaded.reranker, loaded.rerank_top, loaded.reranks) == (None, 0, False)
    assert not FusionConfig(reranker="var/models/reranker/v1").reranks  # rerank_top 0: off


@pytest.mark.parametrize("fields, message", [
    ({"rerank_top": -1}, "must be a whole number of 0 or more"),
    ({"rerank_top": 2.5, "reranker": "m"}, "must be a whole number"),
    ({"rerank_top": 10}, "no reranker is set"),
    ({"reranker": " "}, "must be the folder of a learned ranker or a cross-encoder"),
])
def test_fusion_config_checks_the_rerank_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        FusionConfig(**fields)


def test_presets_keep_the_rerank_fields_and_old_presets_load(db_url):
    from db import presets as store
    from db.engine import session_scope
    from recsys.fusion import presets

    with session_scope(db_url) as session:
        reranked = {**DEFAULT_FUSION, "reranker": "var/models/reranker/v1", "rerank_top": 20}
        saved = presets.save_preset(session, "search", "reranked", reranked, "test")
        store.save_preset(session, "search", "old", dict(DEFAULT_FUSION), "test", "")
    with session_scope(db_url) as session:
        assert presets.get_preset(session, "search", "reranked").config == saved.config
        assert presets.get_preset(session, "search", "reranked").config.rerank_top == 20
        assert presets.get_preset(session, "search", "old").config.rerank_top == 0


def test_the_cross_encoder_reads_the_query_as_spelling_correction_left_it(fitted, cross_encoder, monkeypatch):
    read = []
    original = Reranker.probabilities_many

    def recording(self, queries, texts):
        read.extend(queries)
        return original(self, queries, texts)

    monkeypatch.setattr(Reranker, "probabilities_many", recording)
    hybrid = reranking(fitted["hybrid"], cross_encoder, 3)
    assert hybrid.correct("ceramic cofee mug").query == "ceramic coffee mug"
    hybrid.search("ceramic cofee mug", k=3)
    assert read == ["ceramic coffee mug"]
