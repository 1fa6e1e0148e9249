"""Parameter tuning on a validation split: grid or seeded random search, scored by nDCG@k.

`tune` takes the training part of a split, splits it again the same way
(train -> fit part + validation), fits every candidate config of the
algorithm on the fit part and scores it on the validation part with
`evaluate_recommender`; the config with the best ``ndcg@k`` wins. The test
part of the outer split is never looked at while choosing; given as `test`,
it then scores the best and the default config, each refitted on the whole
training part, so the gain of tuning is measured on data it did not see.

Candidates come from the algorithm's ``search_space`` ClassVar (a dict of
parameter -> list of values): all combinations (scikit-learn's
`ParameterGrid`), or `max_configs` of them drawn without replacement with
the seed (`ParameterSampler`). An algorithm without a search space is not
tuned; the result says so.

Surprise's rating models (the classes with a ``surprise_algorithm()``) are
also searched by Surprise's own `GridSearchCV` (`RandomizedSearchCV` under
`max_configs`) on RMSE of the ratings, k-fold over the training part, and
both winners are reported: the best rating predictor is often not the best
ranker.

The result is written as JSON under ``var/tuning/`` and returned as a dict.
Reference: Bergstra and Bengio, "Random search for hyper-parameter
optimization", JMLR 2012.

>>> import pandas as pd
>>> from recsys.evaluation.splits import SplitConfig
>>> train = pd.DataFrame({"user_id": list("aabbccdd"), "product_id": list("xyxyxzyz"), "weight": 1.0})
>>> result = tune("popularity", train, SplitConfig(test_frac=0.5), k=2, save_to=None,
...               search_space={"window_days": [None, 30.0]})
>>> result["tuned"], len(result["tried"]), result["best"]["params"]  # a tie: the first wins
(True, 2, {'window_days': None})
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.artifacts import artifact_path
from recsys.evaluation.recs import evaluate_recommender
from recsys.evaluation.splits import SplitConfig, one_row_per_pair, split_interactions
from recsys.recommenders import get
from recsys.recommenders.base import Recommender
from recsys.recommenders.cf_surprise import ratings_of

logger = logging.getLogger(__name__)

TUNING_DIR = artifact_path("tuning")  # <artifact folder>/tuning (recsys.artifacts)
DEFAULT = object()
REPORTED = ("ndcg", "precision", "recall", "map", "mrr", "coverage")


def search_space_of(cls: type[Recommender]) -> dict[str, list] | None:
    """The algorithm's declared search space, or None."""
    space = getattr(cls, "search_space", None)
    return {name: list(values) for name, values in space.items()} if space else None


def candidate_configs(space: Mapping[str, list], max_configs: int | None = None,
                      seed: int = 42) -> list[dict[str, Any]]:
    """Every combination of `space`, or `max_configs` of them drawn with `seed`.

    >>> candidate_configs({"a": [1, 2], "b": [0.1]})
    [{'a': 1, 'b': 0.1}, {'a': 2, 'b': 0.1}]
    >>> len(candidate_configs({"a": [1, 2, 3], "b": [1, 2]}, max_configs=4))
    4
    """
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    grid = ParameterGrid(dict(space))
    if max_configs is None or len(grid) <= max_configs:
        return [dict(params) for params in grid]
    if max_configs < 1:
        raise ValueError(f"max_configs must be 1 or more, not {max_configs}")
    return [dict(params) for params in ParameterSampler(dict(space), n_iter=max_configs,
                                                        random_state=seed)]


def _scores(result: dict[str, Any], k: int) -> dict[str, float]:
    return {**{f"{m}@{k}": result[f"{m}@{k}"] for m in REPORTED}, "fit_s": result["fit_s"]}


def tune(
    algo: str,
    train: pd.DataFrame,
    split: SplitConfig | None = None,
    k: int = 10,
    *,
    max_configs: int | None = None,
    seed: int = 42,
    catalog: pd.DataFrame | None = None,
    search_space: Mapping[str, list] | None = None,
    test: pd.DataFrame | None = None,
    surprise_cv: int = 3,
    save_to: Path | str | None | object = DEFAULT,
) -> dict[str, Any]:
    """Search `algo`'s configs on a validation split of `train` (see the module docstring).

    `split` is the kind of split that made `train` (a time split re-cuts at
    the quantile of `train`, not at the outer cutoff). `search_space`
    overrides the class's. `save_to`: where the JSON goes (default
    ``var/tuning/<algo>.json``; None writes nothing).

    Returns algo, tuned, metric, split, search_space, best {params, scores},
    default {params, scores}, tried [{params, scores | error}], and where it
    applies surprise {measure, best_params, best_rmse, tried} and test
    {best, default}.
    """
    cls = get(algo)
    split = split or SplitConfig()
    metric = f"ndcg@{k}"
    space = dict(search_space) if search_space else search_space_of(cls)
    result: dict[str, Any] = {"algo": algo, "metric": metric, "k": k, "split": split.to_dict()}
    if not space:
        message = (f"{algo} declares no search_space: there is nothing to tune; "
                   "it runs with its default config")
        logger.warning(message)
        return {**result, "tuned": False, "message": message}

    inner = replace(split, cutoff=None) if split.kind == "time" else split
    fit_part, validation = split_interactions(train, inner)
    candidates = candidate_configs(space, max_configs, seed)
    logger.info("%s: %d configs on %s interactions, validated on %s", algo, len(candidates),
                f"{len(fit_part):,}", f"{len(validation):,}")

    def score(params: dict[str, Any]) -> dict[str, Any]:
        try:
            evaluated = evaluate_recommender(cls, fit_part, validation, k, catalog, seed,
                                             latency_users=0, params=params)
        except (ValueError, ArithmeticError) as error:
            logger.warning("%s %s failed: %s", algo, params, error)
            return {"params": params, "error": str(error)}
        logger.info("%s %s: %s %.4f", algo, params, metric, evaluated[metric])
        return {"params": params, "scores": _scores(evaluated, k)}

    tried = [score(params) for params in candidates]
    scored = [entry for entry in tried if "scores" in entry]
    if not scored:
        raise ValueError(f"every config of {algo} failed; the first error: {tried[0]['error']}")
    best = max(scored, key=lambda entry: entry["scores"][metric])
    defaults = {name: value for name, value in cls.Config().to_dict().items() if name in space}
    default = next((entry for entry in tried if entry["params"] == defaults), None) or score(defaults)
    result.update(tuned=True, search_space=space, best=best, default=default, tried=tried,
                  configs=len(candidates))

    if hasattr(cls, "surprise_algorithm"):
        try:
            result["surprise"] = surprise_search(cls, train, space, max_configs, seed, surprise_cv)
        except (ValueError, ArithmeticError) as error:  # e.g. pearson_baseline on constant ratings
            logger.warning("%s: Surprise's search failed: %s", algo, error)
            result["surprise"] = {"measure": "rmse", "error": f"{type(error).__name__}: {error}"}
    if test is not None:
        result["test"] = {}
        for name, entry in (("best", best), ("default", default)):
            if "scores" not in entry:
                continue
            if name == "default" and entry["params"] == best["params"]:
                result["test"]["default"] = result["test"]["best"]
                continue
            logger.info("%s: the %s config, refitted on all of train, on test", algo, name)
            result["test"][name] = _scores(evaluate_recommender(
                cls, train, test, k, catalog, seed, latency_users=0, params=entry["params"]), k)
    if save_to is DEFAULT:
        save_to = TUNING_DIR / f"{algo}.json"
    if save_to is not None:
        result["saved_to"] = str(save_to)
        save(result, Path(save_to))
    return result


def surprise_search(cls: type[Recommender], train: pd.DataFrame, space: Mapping[str, list],
                    max_configs: int | None = None, seed: int = 42, cv: int = 3) -> dict[str, Any]:
    """Surprise's `GridSearchCV` (or `RandomizedSearchCV`) on RMSE over the same `space`.

    Each candidate is built as ``cls(**params).surprise_algorithm()``, so the
    parameters keep the names of the workbench config; the ratings are the
    ones the model learns from (`cf_surprise.ratings_of`).
    """
    from surprise import Dataset, Reader  # only for the Surprise algorithms
    from surprise.model_selection import GridSearchCV, KFold, RandomizedSearchCV

    pairs = one_row_per_pair(train)
    ratings, (low, high) = ratings_of(pairs)
    frame = pd.DataFrame({"user": pairs["user_id"].astype(str), "item": pairs["product_id"].astype(str),
                          "rating": ratings.to_numpy()})
    data = Dataset.load_from_df(frame, Reader(rating_scale=(low - 1.0 if low == high else low, high)))

    def build(**params):
        return cls(**params).surprise_algorithm()

    folds = KFold(n_splits=cv, random_state=seed, shuffle=True)
    combinations = len(candidate_configs(space))
    if max_configs is not None and combinations > max_configs:
        search = RandomizedSearchCV(build, dict(space), n_iter=max_configs, measures=["rmse"], cv=folds,
                                    random_state=seed)
    else:
        search = GridSearchCV(build, dict(space), measures=["rmse"], cv=folds)
    logger.info("%s: Surprise %s on RMSE, %d-fold", cls.name, type(search).__name__, cv)
    search.fit(data)
    results = search.cv_results
    return {
        "measure": "rmse",
        "search": type(search).__name__,
        "cv": cv,
        "best_params": {k: _plain(v) for k, v in search.best_params["rmse"].items()},
        "best_rmse": float(search.best_score["rmse"]),
        "tried": [{"params": {k: _plain(v) for k, v in params.items()}, "rmse": float(rmse)}
                  for params, rmse in zip(results["params"], results["mean_test_rmse"])],
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def save(result: dict[str, Any], path: Path) -> Path:
    """Write `result` as JSON at `path` (through a temporary file, so a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=2, default=str))
    temporary.replace(path)
    return path
