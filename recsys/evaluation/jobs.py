"""Background runners of offline evaluation and tuning on the active shop data.

Started from the Evaluation page through `recsys.jobs.submit`; each evaluated
algorithm's scores are stored in `evaluation_results`, so runs can be compared
later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from db.engine import session_scope
from db.models import EvaluationResult
from recsys.data.interactions import load_active
from recsys.evaluation.recs import cannot_run, evaluate_recommender
from recsys.evaluation.splits import SplitConfig, split_interactions
from recsys.evaluation.tuning import tune
from recsys.jobs import JobContext, JobResult, JobSpec, runner


@dataclass
class EvaluateSpec(JobSpec):
    """Fit and score `algorithms` (recommender names) on a split of the active events, at `k`;
    `configs`: {algorithm: its config} where it is not the default."""

    kind = "evaluate"
    algorithms: list[str] = field(default_factory=list)
    split: SplitConfig = field(default_factory=SplitConfig)
    k: int = 10
    configs: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise ValueError("an evaluation needs at least one algorithm")


@dataclass
class EvaluationRun(JobResult):
    """Each evaluated algorithm's scores (also stored in `evaluation_results`), the algorithms
    that could not run and why, and the data the split was made of."""

    results: list[dict[str, Any]]
    skipped: dict[str, str]
    train_pairs: int
    test_pairs: int
    versions: dict[str, Any]


@dataclass
class TuneSpec(JobSpec):
    """Search `algorithm`'s configurations (at most `max_configs`) on a split of the active events."""

    kind = "tune"
    algorithm: str = ""
    split: SplitConfig = field(default_factory=SplitConfig)
    k: int = 10
    max_configs: int | None = None

    def __post_init__(self) -> None:
        if not self.algorithm:
            raise ValueError("a tuning run needs an algorithm")

    def lock(self) -> str:
        return self.algorithm


@dataclass
class TuningRun(JobResult):
    """What `recsys.evaluation.tuning.tune` found (see there), and the data it ran on."""

    algo: str
    metric: str
    k: int
    split: dict[str, Any]
    tuned: bool
    versions: dict[str, Any]
    message: str = ""
    search_space: dict[str, list] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    default: dict[str, Any] = field(default_factory=dict)
    tried: list[dict[str, Any]] = field(default_factory=list)
    configs: int = 0
    surprise: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    saved_to: str | None = None


@runner(EvaluateSpec, EvaluationRun)
def run_evaluation(context: JobContext) -> EvaluationRun:
    spec: EvaluateSpec = context.spec
    split, k = spec.split, int(spec.k)
    context.progress(0.02, "loading the active events and catalog")
    interactions, catalog, versions = load_active(context.url)
    train, test = split_interactions(interactions, split)
    results, skipped = [], {}
    algorithms = list(spec.algorithms)
    for number, name in enumerate(algorithms):
        context.progress(0.05 + 0.95 * number / len(algorithms), f"fitting and scoring {name}")
        reason = cannot_run(name, catalog)
        if reason:
            skipped[name] = reason
            continue
        scores = evaluate_recommender(name, train, test, k=k, catalog=catalog, seed=split.seed,
                                      params=spec.configs.get(name))
        with session_scope(context.url) as session:
            session.add(EvaluationResult(
                job_id=context.job_id, algorithm=name, split=split.kind, k=k,
                config=scores.get("config", {}), metrics=scores,
                events_version_id=versions["events"], created_by=context.actor))
        results.append(scores)
    return EvaluationRun(results=results, skipped=skipped, train_pairs=len(train), test_pairs=len(test),
                         versions=versions)


@runner(TuneSpec, TuningRun)
def run_tuning(context: JobContext) -> TuningRun:
    spec: TuneSpec = context.spec
    split = spec.split
    context.progress(0.02, "loading the active events and catalog")
    interactions, catalog, versions = load_active(context.url)
    train, test = split_interactions(interactions, split)
    context.progress(0.1, f"searching the configurations of {spec.algorithm}")
    result = tune(spec.algorithm, train, split, int(spec.k), max_configs=spec.max_configs, seed=split.seed,
                  catalog=catalog, test=test)
    return TuningRun.from_dict({**result, "versions": versions})
