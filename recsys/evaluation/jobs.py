"""Background runners of offline evaluation and tuning on the active shop data.

Started from the Evaluation page through `recsys.jobs.submit`; each evaluated
algorithm's scores are stored in `evaluation_results`, so runs can be compared
later.
"""

from __future__ import annotations

from db.engine import session_scope
from db.models import EvaluationResult
from recsys.data.interactions import load_active
from recsys.evaluation.recs import cannot_run, evaluate_recommender
from recsys.evaluation.splits import SplitConfig, split_interactions
from recsys.evaluation.tuning import tune
from recsys.jobs import JobContext, runner


@runner("evaluate")
def run_evaluation(context: JobContext) -> dict:
    """params: algorithms (names), split (SplitConfig dict), k."""
    params = context.params
    split = SplitConfig.from_dict(params.get("split", {}))
    k = int(params.get("k", 10))
    context.progress(0.02, "loading the active events and catalog")
    interactions, catalog, versions = load_active(context.url)
    train, test = split_interactions(interactions, split)
    results, skipped = [], {}
    algorithms = list(params["algorithms"])
    for number, name in enumerate(algorithms):
        context.progress(0.05 + 0.95 * number / len(algorithms), f"fitting and scoring {name}")
        reason = cannot_run(name, catalog)
        if reason:
            skipped[name] = reason
            continue
        scores = evaluate_recommender(name, train, test, k=k, catalog=catalog, seed=split.seed,
                                      params=params.get("configs", {}).get(name))
        with session_scope(context.url) as session:
            session.add(EvaluationResult(
                job_id=context.job_id, algorithm=name, split=split.kind, k=k,
                config=scores.get("config", {}), metrics=scores,
                events_version_id=versions["events"], created_by=context.actor))
        results.append(scores)
    return {"results": results, "skipped": skipped, "train_pairs": len(train), "test_pairs": len(test),
            "versions": versions}


@runner("tune")
def run_tuning(context: JobContext) -> dict:
    """params: algorithm, split (SplitConfig dict), k, max_configs."""
    params = context.params
    split = SplitConfig.from_dict(params.get("split", {}))
    context.progress(0.02, "loading the active events and catalog")
    interactions, catalog, versions = load_active(context.url)
    train, test = split_interactions(interactions, split)
    context.progress(0.1, f"searching the configurations of {params['algorithm']}")
    result = tune(params["algorithm"], train, split, int(params.get("k", 10)),
                  max_configs=params.get("max_configs"), seed=split.seed, catalog=catalog, test=test)
    return {**result, "versions": versions}
