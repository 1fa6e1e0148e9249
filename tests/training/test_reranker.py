"""The cross-encoder reranker's training: labelled examples with BM25 negatives, a few real
steps on a tiny catalog (weights move, a seed reproduces them), and the saved folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.search import get
from recsys.search.cross_encoder import CrossEncoderReranker as Reranker
from recsys.training.pairs import product_texts
from recsys.training.reranker import (RerankerConfig, base_cross_encoder, reranker_examples, train_reranker,
                                      validation_evaluator)

CATALOG = pd.DataFrame({
    "product_id": ["P01", "P02", "P03", "P04", "P05", "P06", "P07", "P08", "P09", "P10", "P11", "P12"],
    "title": ["Red ceramic coffee mug", "Blue ceramic coffee mug", "Red enamel camping mug",
              "Travel mug with lid", "Oak garden chair", "Folding garden chair", "Garden chair cushion",
              "Plastic garden chair, white", "Copper pipe elbow", "PVC pipe 10 ft.", "Pipe wrench",
              "Cordless drill"],
    "description": ["", "", "Light steel mug", "", "", "", "", "", "", "", "", ""],
})
JUDGMENTS = pd.DataFrame({
    "query": ["red mug", "red mug", "Red Mug", "garden chair", "garden chair", "garden chair", "pipe",
              "pipe"],
    "product_id": ["P01", "P02", "P03", "P05", "P07", "P05", "P10", "P11"],
    "grade": [3.0, 1.0, 3.0, 3.0, 1.0, 2.0, 3.0, 1.0],
})
TINY = RerankerConfig(max_steps=2, batch_size=4, eval_steps=2, max_length=32, seed=7, negatives_per_query=2)
PAIRS = [("red mug", "Red ceramic coffee mug"), ("red mug", "Pipe wrench"),
         ("garden chair", "Oak garden chair")]


def test_judged_products_are_labelled_by_grade_and_negatives_are_never_judged():
    examples = reranker_examples(JUDGMENTS, CATALOG, min_grade=2.5, negatives_per_query=2, seed=0)
    assert list(examples.columns) == ["query", "product_id", "text", "label"]
    # "garden chair" / P05 was judged twice: 3 and 2 average to 2.5, which is relevant.
    labels = {(q, p): l for q, p, l in zip(examples["query"], examples["product_id"], examples["label"])}
    assert labels[("red mug", "P01")] == 1.0 and labels[("red mug", "P02")] == 0.0
    assert labels[("garden chair", "P05")] == 1.0 and labels[("garden chair", "P07")] == 0.0
    assert labels[("pipe", "P10")] == 1.0 and labels[("pipe", "P11")] == 0.0
    assert examples["text"].tolist() == product_texts(CATALOG).reindex(examples["product_id"]).tolist()

    negatives = examples.iloc[len(JUDGMENTS) - 1:]  # the repeated judgment is one example
    assert (negatives["label"] == 0.0).all()
    bm25 = get("bm25")().fit(CATALOG)
    judged_for = {"red mug": {"P01", "P02", "P03"}, "garden chair": {"P05", "P07"}, "pipe": {"P10", "P11"}}
    for query, found in negatives.groupby(negatives["query"].str.lower())["product_id"]:
        assert 1 <= len(found) <= 2
        # never a judged product: "Red Mug"'s relevant P03 is not a negative of "red mug"
        assert not set(found) & judged_for[query]
        assert set(found) <= {hit.product_id for hit in bm25.search(query, 30, matched_only=True)}


def test_examples_are_seeded():
    first = reranker_examples(JUDGMENTS, CATALOG, 2.5, negatives_per_query=1, seed=3)
    assert first.equals(reranker_examples(JUDGMENTS, CATALOG, 2.5, negatives_per_query=1, seed=3))
    assert len(reranker_examples(JUDGMENTS, CATALOG, 2.5, negatives_per_query=0)) == len(JUDGMENTS) - 1


def test_config_round_trips_and_is_checked():
    assert RerankerConfig.from_dict(TINY.to_dict()) == TINY
    assert RerankerConfig.from_dict({}) == RerankerConfig()
    assert RerankerConfig().learning_rate == 5e-5 and RerankerConfig().negatives_per_query == 4
    with pytest.raises(ValueError, match="batch size must be at least 1, not 0.*learning rate"):
        RerankerConfig(batch_size=0, learning_rate=2.0)
    with pytest.raises(ValueError, match="max length must be at least 8"):
        RerankerConfig(max_length=4)


def test_training_needs_both_labels(tmp_path):
    examples = reranker_examples(JUDGMENTS, CATALOG, 2.5, 0)
    with pytest.raises(ValueError, match="no irrelevant \\(0\\) pair"):
        train_reranker(examples[examples["label"] == 1], JUDGMENTS, CATALOG, TINY, tmp_path / "m")
    with pytest.raises(ValueError, match="need the column"):
        train_reranker(examples.drop(columns="label"), JUDGMENTS, CATALOG, TINY, tmp_path / "m")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(folder, result) of two real steps on the tiny examples."""
    folder = tmp_path_factory.mktemp("reranker") / "model"
    reports = []
    examples = reranker_examples(JUDGMENTS, CATALOG, 2.5, 2, seed=0)
    result = train_reranker(examples, JUDGMENTS, CATALOG, TINY, folder, report=reports.append)
    return folder, result, reports


def test_a_few_steps_train_and_report(trained):
    folder, result, reports = trained
    assert result["steps"] == 2 and result["device"] == "cpu"
    assert result["train_examples"] == len(reranker_examples(JUDGMENTS, CATALOG, 2.5, 2, seed=0))
    assert 0 < result["val_ndcg@10_before"] <= 1 and 0 < result["val_ndcg@10_after"] <= 1
    assert result["validation_history"] and result["best_checkpoint"] == "checkpoint-2"
    assert reports[-1]["step"] == 2 and reports[-1]["total_steps"] == 2
    assert reports[-1]["val_ndcg@10"] == pytest.approx(result["val_ndcg@10_after"], abs=1e-4)
    assert (folder / "workbench_training.json").exists()


def test_training_changes_the_weights(trained):
    folder, _, _ = trained
    untrained = base_cross_encoder(TINY).predict([list(pair) for pair in PAIRS], show_progress_bar=False)
    after = Reranker(folder).model.predict([list(pair) for pair in PAIRS], show_progress_bar=False)
    assert np.abs(np.asarray(after) - np.asarray(untrained)).max() > 1e-4


def test_the_same_seed_gives_the_same_model(trained, tmp_path):
    folder, result, _ = trained
    examples = reranker_examples(JUDGMENTS, CATALOG, 2.5, 2, seed=0)
    again = train_reranker(examples, JUDGMENTS, CATALOG, TINY, tmp_path / "again")
    queries = [query for query, _ in PAIRS]
    texts = [[text] for _, text in PAIRS]
    first = np.concatenate(Reranker(folder).probabilities_many(queries, texts))
    second = np.concatenate(Reranker(tmp_path / "again").probabilities_many(queries, texts))
    np.testing.assert_allclose(first, second, atol=1e-6)
    assert again["val_ndcg@10_after"] == result["val_ndcg@10_after"]


def test_the_saved_folder_is_the_model_that_was_validated(trained):
    folder, result, _ = trained
    reranker = Reranker(folder)
    assert reranker.model.max_seq_length == TINY.max_length
    scores = reranker.probabilities("red mug", ["Red ceramic coffee mug", "Pipe wrench"])
    assert scores.shape == (2,) and ((0 < scores) & (scores < 1)).all()  # sigmoid probabilities
    evaluator = validation_evaluator(JUDGMENTS, CATALOG, TINY.validation_candidates)
    assert evaluator(reranker.model)["validation_ndcg@10"] == pytest.approx(result["val_ndcg@10_after"],
                                                                            abs=1e-4)
