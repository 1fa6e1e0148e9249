"""Tuning: the best config is the best on validation, the result is saved, Surprise models get RMSE too."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.splits import SplitConfig
from recsys.evaluation.tuning import candidate_configs, tune


def _ratings(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"p{p}", float(rng.integers(1, 6))) for u in range(12)
            for p in rng.choice(10, size=6, replace=False)]
    frame = pd.DataFrame(rows, columns=["user_id", "product_id", "rating"])
    return frame.assign(weight=frame["rating"])


def test_an_algorithm_without_a_search_space_is_not_tuned(tmp_path):
    result = tune("popularity", _ratings(), save_to=tmp_path / "t.json")
    assert result["tuned"] is False and "no search_space" in result["message"]
    assert not (tmp_path / "t.json").exists()


def test_the_best_config_wins_on_validation_and_is_saved(tmp_path):
    frame = _ratings()
    frame["timestamp"] = pd.to_datetime("2024-01-01") + pd.to_timedelta(np.arange(len(frame)) % 40, unit="D")
    space = {"window_days": [None, 3.0, 10.0]}
    test = frame.sample(10, random_state=1)
    train = frame.drop(test.index)
    result = tune("popularity", train, SplitConfig(kind="temporal"), k=3, search_space=space,
                  test=test, save_to=tmp_path / "popularity.json")
    ndcg = [entry["scores"]["ndcg@3"] for entry in result["tried"]]
    assert result["tuned"] and result["configs"] == 3 and len(ndcg) == 3
    assert result["best"]["scores"]["ndcg@3"] == max(ndcg)
    assert result["default"]["params"] == {"window_days": None}
    assert set(result["test"]) == {"best", "default"}
    assert json.loads((tmp_path / "popularity.json").read_text()) == json.loads(json.dumps(result))


def test_surprise_models_are_also_searched_on_rmse(tmp_path):
    space = {"n_factors": [2, 4], "n_epochs": [2], "lr_all": [0.005, 0.01]}
    result = tune("svd", _ratings(), k=3, search_space=space, save_to=None, surprise_cv=2)
    surprise = result["surprise"]
    assert surprise["search"] == "GridSearchCV" and len(surprise["tried"]) == 4
    assert surprise["best_rmse"] == min(entry["rmse"] for entry in surprise["tried"])
    assert surprise["best_params"] in [entry["params"] for entry in surprise["tried"]]
    limited = tune("svd", _ratings(), k=3, search_space=space, max_configs=2, save_to=None, surprise_cv=2)
    assert len(limited["tried"]) == 2 and limited["surprise"]["search"] == "RandomizedSearchCV"
    assert len(limited["surprise"]["tried"]) == 2


def test_candidates_are_the_grid_or_a_seeded_sample():
    space = {"a": [1, 2, 3], "b": [0.1, 0.2]}
    assert len(candidate_configs(space)) == 6
    sample = candidate_configs(space, max_configs=3, seed=5)
    assert sample == candidate_configs(space, max_configs=3, seed=5)
    assert len({tuple(sorted(c.items())) for c in sample}) == 3
    with pytest.raises(ValueError, match="max_configs"):
        candidate_configs(space, max_configs=0)
