"""Training a learned ranker (LambdaMART with LightGBM) on a shop's judgments.

What it computes: for every training query, the hybrid's fused list
(`HybridRetriever.candidates` fused with its fusion config, no rerank, no rules)
is cut to its first `top_n` items, and each item gets the features of
`recsys.search.ltr.features_of` and a label: its judged grade, unjudged
products the lowest grade. LightGBM's ``lambdarank`` objective fits trees that
order each query's items by nDCG with a linear gain (grade minus the lowest
grade, as the search benchmarks count it; grades are read to 1/`GRADE_STEPS`
of the scale). Boosting stops when nDCG@10 of the validation queries' items has
not improved for `early_stopping` rounds, and the best round is kept.

"Before" and "after" are full-catalog nDCG@10 of the validation queries: the
fused order against the fused order with its first `top_n` reordered by the
ranker (products the fusion did not find count as missed, judged products
outside the list still count in the ideal order).

The saved folder (`ranker.txt`, `ranker.json`) is what `recsys.search.ltr.LearnedRanker`
loads; a fusion preset's `reranker` names it and `rerank_top` should be `top_n`.

Its features depend on the engine it was trained with: a ranker trained over a
fine-tuned embedding model should be trained again after another one is
activated (the semantic scores it learned to read have moved).

>>> hybrid = get("hybrid")(fusion=fusion).fit(catalog)                    # doctest: +SKIP
>>> result = train_ranker(hybrid, split["train"], split["validation"],      # doctest: +SKIP
...                       RankerConfig(), "var/models/ranker")
>>> result["val_ndcg@10_after"] > result["val_ndcg@10_before"]              # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.config import JsonConfig
from recsys.evaluation.metrics import ranking_metrics
from recsys.evaluation.search import graded_pairs, graded_qrels
from recsys.fusion import fuse
from recsys.search.base import QUERY_CHUNK
from recsys.search.compiled_trees import compiled_trees
from recsys.search.ltr import LEARNED_RANKER, META_FILE, MODEL_FILE, feature_names, features_of

CATALOG_SAMPLE = 200  # product ids a ranker keeps of its catalog
GRADE_STEPS = 30  # LightGBM's lambdarank takes whole-number labels: grades are read to 1/30 of the scale


@dataclass
class RankerConfig(JsonConfig):
    """Hyperparameters of one learned-ranker training; round-trips to JSON."""

    top_n: int = 100  # fused items per query the ranker orders (a preset's rerank_top)
    trees: int = 1000  # most boosting rounds; early stopping usually ends sooner
    learning_rate: float = 0.05
    leaves: int = 15
    min_child_samples: int = 50  # items a leaf needs at least
    early_stopping: int = 100  # rounds without a better validation nDCG@10 before stopping
    seed: int = 42
    threads: int = 2

    def __post_init__(self):
        problems = []
        for name, low in (("top_n", 2), ("trees", 1), ("leaves", 2), ("min_child_samples", 1),
                          ("early_stopping", 1), ("threads", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{name.replace('_', ' ')} must be a whole number of at least {low}, not {value!r}")
        if not 0 < self.learning_rate <= 1:
            problems.append(f"learning rate must be in (0, 1], not {self.learning_rate}")
        if problems:
            raise ValueError("invalid ranker config: " + "; ".join(problems))


@dataclass
class RankerData:
    """The fused top items of each query, their feature matrices and grades."""

    queries: list[str]
    items: list[list]  # each query's full fused list (`FusedItem`s), for the full-catalog metrics
    features: list[np.ndarray]
    grades: list[np.ndarray]


def ranker_data(hybrid, judgments: pd.DataFrame, top_n: int, floor: float) -> RankerData:
    """Each judged query's fused list, the features of its first `top_n` items and their grades
    (unjudged: `floor`, the lowest grade)."""
    graded = graded_pairs(judgments)
    by_query = {query: dict(zip(frame["product_id"], frame["grade"]))
                for query, frame in graded.groupby("query", sort=False)}
    queries = list(by_query)
    sources = [source.name for source in hybrid.sources]
    items, tops, features = [], [], []
    # A chunk at a time, each source's scores kept from the candidates for the features (as a search does).
    for start in range(0, len(queries), QUERY_CHUNK):
        chunk = queries[start:start + QUERY_CHUNK]
        lists, scored = hybrid.retrieve(chunk, keep=tuple(sources))
        fused = [fuse(candidates, hybrid.fusion) for candidates in lists]
        chunk_tops = [ranked[:top_n] for ranked in fused]
        features += features_of(hybrid.rerank_requests(chunk, chunk_tops, sources, scored=scored), sources)
        items += fused
        tops += chunk_tops
    grades = [np.array([by_query[query].get(item.product_id, floor) for item in top], dtype=np.float64)
              for query, top in zip(queries, tops)]
    return RankerData(queries, items, features, grades)


def catalog_sample(product_ids: np.ndarray, size: int = CATALOG_SAMPLE) -> dict:
    """How many products the ranker was trained over and up to `size` of their ids, evenly spaced in
    sorted order: enough for `LearnedRanker.check_fits` to tell another catalog from this one grown."""
    ids = np.sort(np.asarray(product_ids, dtype=str))
    step = max(len(ids) // size, 1)
    return {"products": int(len(ids)), "sample": ids[::step][:size].tolist()}


def grade_floor(grades: pd.Series) -> float:
    """The grade an unjudged product gets: the lowest judged grade, or one below it when every
    judgment has the same grade (a shop that only records relevant products)."""
    low, high = float(grades.min()), float(grades.max())
    return low if high > low else low - 1.0


def _labels(grades: list[np.ndarray], floor: float, top: float) -> tuple[np.ndarray, list[float]]:
    """Whole-number labels of `grades` and LightGBM's label_gain that makes each gain grade - floor."""
    scale = GRADE_STEPS / (top - floor) if top > floor else 1.0
    labels = np.rint((np.concatenate(grades) - floor) * scale).clip(0, GRADE_STEPS).astype(int)
    return labels, [level / scale for level in range(GRADE_STEPS + 1)]


def _ndcg(data: RankerData, judgments: pd.DataFrame, floor: float, scores: list[np.ndarray] | None) -> float:
    """Full-catalog nDCG@10 of the fused lists, their tops reordered by `scores` when given."""
    run = {}
    for query, items, values in zip(data.queries, data.items, scores or [None] * len(data.queries)):
        ranked = [item.product_id for item in items]
        if values is not None:
            top = len(values)
            ranked = [ranked[i] for i in np.argsort(-values, kind="stable")] + ranked[top:]
        run[query] = {product_id: float(len(ranked) - rank) for rank, product_id in enumerate(ranked)}
    return ranking_metrics(graded_qrels(judgments, floor), run, k=10, metrics=("ndcg", "recall"))["ndcg@10"]


def train_ranker(hybrid, train_judgments: pd.DataFrame, validation_judgments: pd.DataFrame,
                 config: RankerConfig | None = None, out_dir: str | Path = "var/models/ranker",
                 report: Callable[[dict], None] | None = None) -> dict:
    """Train a learned ranker for `hybrid` (fitted; its fusion makes the candidates) and save it.

    `report`, when given, is called every few rounds with a row like
    `recsys.training.finetune`'s (step, total_steps, loss None, val_ndcg@10,
    elapsed_s, left_s); it may raise to cancel. Returns the figures of the run.
    """
    import lightgbm

    config = config or RankerConfig()
    if validation_judgments.empty:
        raise ValueError("a learned ranker needs validation judgments (queries it is not trained on) to "
                         "know when to stop adding trees")
    started = time.perf_counter()
    both = pd.concat([train_judgments, validation_judgments])
    grades = pd.to_numeric(both["grade"]).astype(float)
    floor, top = grade_floor(grades), float(grades.max())
    train = ranker_data(hybrid, train_judgments, config.top_n, floor)
    validation = ranker_data(hybrid, validation_judgments, config.top_n, floor)
    kept = [i for i, g in enumerate(train.grades) if len(g) and g.max() > floor]
    if not kept:
        raise ValueError("no training query has a judged product better than the lowest grade among the "
                         f"hybrid's top {config.top_n}: the ranker has nothing to learn from")
    labels, gains = _labels([train.grades[i] for i in kept], floor, top)
    valid_labels, _ = _labels(validation.grades, floor, top)
    features_s = time.perf_counter() - started
    names = feature_names([source.name for source in hybrid.sources])
    train_set = lightgbm.Dataset(np.vstack([train.features[i] for i in kept]), labels,
                                 group=[len(train.grades[i]) for i in kept], feature_name=names)
    valid_set = lightgbm.Dataset(np.vstack(validation.features), valid_labels,
                                 group=[len(g) for g in validation.grades], reference=train_set)
    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "label_gain": gains,
              "learning_rate": config.learning_rate, "num_leaves": config.leaves,
              "min_child_samples": config.min_child_samples, "lambdarank_truncation_level": 10,
              "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8, "seed": config.seed,
              "deterministic": True, "num_threads": config.threads, "verbosity": -1}
    training_started = time.perf_counter()

    def progress(env) -> None:
        step = env.iteration + 1
        if report is None or (step % 10 and step != config.trees):
            return
        elapsed = time.perf_counter() - training_started
        value = env.evaluation_result_list[-1][2] if env.evaluation_result_list else None
        report({"step": step, "total_steps": config.trees, "loss": None, "val_ndcg@10": value,
                "elapsed_s": elapsed, "left_s": elapsed / step * (config.trees - step)})

    booster = lightgbm.train(params, train_set, num_boost_round=config.trees, valid_sets=[valid_set],
                             callbacks=[lightgbm.early_stopping(config.early_stopping, verbose=False), progress])
    train_s = time.perf_counter() - training_started
    best = booster.best_iteration or booster.current_iteration()
    scores = [booster.predict(m, num_iteration=best, num_threads=config.threads) if len(m) else np.zeros(0)
              for m in validation.features]
    result = {"kind": LEARNED_RANKER, "sources": [source.name for source in hybrid.sources], "features": names,
              "fusion": hybrid.fusion.to_dict(), "config": config.to_dict(),
              "embedding_model": hybrid.embedding_identity(), "embedding_model_path": hybrid.embedding_path(),
              "catalog": catalog_sample(hybrid.product_ids),
              "train_queries": len(kept), "train_items": int(len(labels)), "trees": int(best),
              "features_s": round(features_s, 2), "train_s": round(train_s, 2),
              "val_ndcg@10_before": _ndcg(validation, validation_judgments, floor, None),
              "val_ndcg@10_after": _ndcg(validation, validation_judgments, floor, scores),
              "importance": dict(zip(names, booster.feature_importance("gain").round(1).tolist()))}
    out = Path(out_dir)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    booster.save_model(str(partial / MODEL_FILE), num_iteration=best)
    (partial / META_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    compiled_trees(out / MODEL_FILE)  # compiled now (about 2 s), not at the first search with it
    return result
