"""A few real training steps on tiny data: the weights change, the same seed gives the same model,
and the CLI writes a folder that `evaluate-search --model` loads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys.training.finetune import FinetuneConfig, finetune
from recsys.training.pairs import pairs_from_judgments

TITLES = ["Red ceramic mug", "Blue coffee mug", "Petrol lawn mower", "Garden hose 20m", "Cast iron tea pot",
          "Wooden cutting board", "LED desk lamp", "Cordless drill", "Paint roller set", "Door hinge brass",
          "Shower head chrome", "Kitchen tap mixer"]
QUERIES = ["cup for coffee", "mug", "grass cutter", "watering hose", "teapot", "chopping board", "lamp",
           "drill", "roller", "hinge", "shower", "tap"]
CATALOG = pd.DataFrame({"product_id": [str(i) for i in range(len(TITLES))], "title": TITLES})
JUDGMENTS = pd.DataFrame({"query": QUERIES, "product_id": [str(i) for i in range(len(QUERIES))],
                          "grade": 3.0})


def _weights(folder) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(next(folder.glob("**/model.safetensors"))))


def _train(tmp_path, name: str, seed: int = 1) -> dict:
    pairs = pairs_from_judgments(JUDGMENTS, CATALOG, 2.5)
    config = FinetuneConfig(max_steps=3, batch_size=4, learning_rate=1e-4, seed=seed, eval_steps=3,
                            device="cpu")
    return finetune(pairs, pairs.head(4), CATALOG, config, tmp_path / name)


def test_a_few_steps_change_the_weights_and_are_reproducible_with_a_seed(tmp_path):
    from recsys.embeddings import default_model_path

    first = _train(tmp_path, "first")
    assert first["steps"] == 3 and first["train_pairs"] == len(QUERIES) and first["device"] == "cpu"
    assert {"val_ndcg@10_before", "val_ndcg@10_after", "train_s"} <= set(first)
    assert (tmp_path / "first" / "workbench_training.json").exists()
    assert not (tmp_path / "first.partial").exists()
    base, trained = _weights(default_model_path()), _weights(tmp_path / "first")
    changed = [name for name in trained if not np.array_equal(trained[name], base[name])]
    assert len(changed) > len(trained) // 2

    again = _weights(tmp_path / "first")
    second = _weights((_train(tmp_path, "second") and tmp_path / "second"))
    assert all(np.allclose(again[name], second[name], atol=1e-6) for name in again)
    other = _weights((_train(tmp_path, "other", seed=2) and tmp_path / "other"))
    assert any(not np.allclose(again[name], other[name], atol=1e-6) for name in again)


def test_hard_negatives_from_bm25_are_never_a_positive_of_their_anchor():
    from recsys.training.finetune import hard_negatives

    pairs = pairs_from_judgments(JUDGMENTS, CATALOG, 2.5)
    negatives = hard_negatives(pairs, CATALOG, seed=3)
    assert len(negatives) == len(pairs)
    assert all(negative != positive for negative, positive in zip(negatives, pairs["positive"]))


def test_hard_negatives_prefer_products_judged_not_relevant_and_never_mine_judged_ones():
    from recsys.training.finetune import hard_negatives

    pairs = pairs_from_judgments(JUDGMENTS, CATALOG, 2.5)
    mug = pairs.index[pairs["anchor"] == "mug"][0]
    drill = pairs.index[pairs["anchor"] == "drill"][0]
    judged = {pairs.at[mug, "anchor_id"]: ["2", "5"]}    # the mower and the board, judged not relevant
    exclude = {pairs.at[drill, "anchor_id"]: {str(i) for i in range(len(TITLES)) if i != 3}}
    for seed in range(5):
        negatives = hard_negatives(pairs, CATALOG, seed=seed, judged=judged, exclude=exclude)
        assert negatives[mug] in {TITLES[2], TITLES[5]}
        # Every product but the hose is excluded for "drill": BM25 finds none of its own, so a
        # random catalog product stands in, never a positive of the anchor.
        assert negatives[drill] != TITLES[7]


def test_judged_for_negatives_groups_spellings_and_keeps_the_bottom_third():
    from recsys.training.jobs import judged_for_negatives, low_grade, prepare_pairs
    from recsys.training.pairs import SplitFractions

    judgments = pd.DataFrame({"query": ["Mug", "mug ", "mug", "lamp", "lamp"],
                              "product_id": ["0", "1", "2", "6", "7"], "grade": [3.0, 1.0, 1.5, 3.0, 2.0]})
    assert low_grade(judgments["grade"]) == 1.67
    prepared = prepare_pairs("judgments", CATALOG, judgments=judgments, min_grade=2.5,
                             fractions=SplitFractions(validation=0.0, test=0.0))
    judged, low = judged_for_negatives(prepared, judgments)
    train = prepared["pairs"]["train"]
    mug = train.loc[train["group"] == "mug", "anchor_id"].iloc[0]
    lamp = train.loc[train["group"] == "lamp", "anchor_id"].iloc[0]
    assert judged[mug] == {"0", "1", "2"} and low[mug] == ["1", "2"]
    assert judged[lamp] == {"6", "7"} and lamp not in low
    assert judged_for_negatives(prepared, None) == (None, None)


def test_bad_hyperparameters_are_refused_with_a_message():
    with pytest.raises(ValueError, match="batch size"):
        FinetuneConfig(batch_size=1)
    with pytest.raises(ValueError, match="learning rate"):
        FinetuneConfig(learning_rate=2)
    assert FinetuneConfig.from_dict({"max_steps": 5}).max_steps == 5
    with pytest.raises(ValueError, match="no parameter"):
        FinetuneConfig.from_dict({"max_steps": 5, "unknown": 1})


def test_too_few_pairs_for_a_batch_is_refused(tmp_path):
    pairs = pairs_from_judgments(JUDGMENTS, CATALOG, 2.5).head(3)
    with pytest.raises(ValueError, match="fewer than one batch"):
        finetune(pairs, pairs, CATALOG, FinetuneConfig(max_steps=1, batch_size=4), tmp_path / "m")


def test_cli_finetunes_and_evaluate_search_loads_the_folder(tmp_path, capsys):
    from recsys.cli import main

    catalog = CATALOG.rename(columns={"product_id": "uid", "title": "name"})
    judgments = pd.concat([JUDGMENTS] * 3, ignore_index=True)
    judgments["query"] = [f"{q} {i // len(QUERIES)}" for i, q in enumerate(judgments["query"])]
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    judgments.rename(columns={"product_id": "uid", "grade": "relevance"}).to_csv(tmp_path / "j.csv", index=False)
    out = tmp_path / "model"
    status = main(["finetune", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "uid",
                   "--text-col", "name", "--judgments", str(tmp_path / "j.csv"), "--item-col", "uid",
                   "--max-steps", "2", "--batch-size", "4", "--seed", "5", "--out", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    result = json.loads(printed.out)
    assert result["steps"] == 2 and result["train_pairs"] > 0 and result["min_grade"] == 3.0
    assert {"train_s", "val_ndcg@10_before", "val_ndcg@10_after"} <= set(result)
    status = main(["evaluate-search", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "uid",
                   "--text-col", "name", "--judgments", str(tmp_path / "j.csv"), "--item-col", "uid",
                   "--method", "semantic", "--model", str(out), "--latency-queries", "0",
                   "--min-grade", "1"])
    assert status == 0
    assert json.loads(capsys.readouterr().out)["ndcg@10"] > 0


def test_cli_names_a_missing_column(tmp_path, capsys):
    from recsys.cli import main

    CATALOG.to_csv(tmp_path / "catalog.csv", index=False)
    JUDGMENTS.to_csv(tmp_path / "j.csv", index=False)
    status = main(["finetune", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "product_id",
                   "--text-col", "name", "--judgments", str(tmp_path / "j.csv"), "--out", str(tmp_path / "m")])
    assert status == 1
    assert "no column 'name'" in capsys.readouterr().err


def test_the_time_left_counts_the_validations_still_to_come_and_does_not_jump():
    from recsys.training.finetune import time_left

    # 40 steps of 1 s, a validation of 10 s after every 10th, as the validation before training took.
    clock, validating, validations, estimates = 0.0, 0.0, 0, []
    for step in range(1, 41):
        clock += 1.0
        truth = (40 - step) + 10 * (4 - step // 10)
        estimates.append((time_left(clock, validating, validations, step, 40, 10, 10.0), truth))
        if step % 10 == 0:
            clock += 10.0
            validating += 10.0
            validations += 1
    assert all(abs(estimate - truth) <= 1e-9 for estimate, truth in estimates)
