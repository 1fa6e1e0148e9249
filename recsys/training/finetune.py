"""Fine-tuning the embedding model on a shop's own pairs, with sentence-transformers' trainer.

What it computes: a bi-encoder (by default the shipped all-MiniLM-L6-v2) trained
on (anchor, positive) pairs with MultipleNegativesRankingLoss: each anchor must
score its own positive above the other positives of the batch (in-batch
negatives; Henderson et al., "Efficient Natural Language Response Suggestion",
2017), optionally above one extra hard negative per pair (`hard_negatives=True`):
a product the judgments grade low for that query when there is one (a "mostly
irrelevant" product the shop's own search returned), else one mined from BM25's
top hits. Batches never hold the same text twice
(`no_duplicates`), so a query's second relevant product is never taken for a
negative of the first.

Validation is sentence-transformers' InformationRetrievalEvaluator over the
validation queries and a corpus of their judged products plus seeded random
catalog products (`validation_corpus`); it runs before training, every
`eval_steps` and at the end, and the checkpoint with the best nDCG@10 is what
is saved (`load_best_model_at_end`). CUDA is used when present, the CPU
otherwise (with `recsys.embeddings.configure_threads`). With a `RayScaling`, the
same training loop (`train_loop`) runs on Ray Train's data-parallel workers
instead of in this process (`recsys.training.ray_train`).

>>> config = FinetuneConfig(max_steps=100, batch_size=32)      # doctest: +SKIP
>>> result = finetune(split["train"], split["validation"], catalog, config, "var/models/ft")  # doctest: +SKIP
>>> result["val_ndcg@10_after"] > result["val_ndcg@10_before"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys import embeddings
from recsys.config import JsonConfig
from recsys.embedding_model import product_texts, resolve_device
from recsys.search import get

NDCG_KEY = "cosine_ndcg@10"
EVALUATOR_NAME = "validation"


@dataclass
class FinetuneConfig(JsonConfig):
    """Hyperparameters of one fine-tune; round-trips to JSON (`to_dict` / `from_dict`)."""

    base_model: str | None = None  # a sentence-transformers folder; None: the shipped MiniLM
    epochs: float = 1.0
    max_steps: int | None = None  # when set, wins over epochs
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    seed: int = 42
    hard_negatives: bool = False
    eval_steps: int | None = None  # None: about four validations per run
    validation_corpus: int = 5000  # catalog products the validation queries search
    max_seq_length: int = 64
    device: str | None = None  # None: "cuda" when available, else "cpu"

    def __post_init__(self):
        problems = []
        if self.batch_size < 2:
            problems.append("batch size must be at least 2 (in-batch negatives)")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max steps must be at least 1")
        if self.epochs <= 0:
            problems.append("epochs must be positive")
        if not 0 < self.learning_rate < 1:
            problems.append("learning rate must be in (0, 1)")
        if not 0 <= self.warmup_ratio < 1:
            problems.append("warm-up ratio must be in [0, 1)")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class RayScaling(JsonConfig):
    """Where a fine-tune's training loop runs on a Ray cluster (Ray Train): `workers`
    data-parallel workers (DDP), each with a GPU when `use_gpu`, and `cpus_per_worker` CPUs
    (fractions allowed: a local Ray with 2 CPUs fits 2 workers of 0.5 beside other tasks)."""

    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0

    def __post_init__(self):
        if int(self.workers) != self.workers or self.workers < 1:
            raise ValueError(f"workers must be a whole number of at least 1, not {self.workers!r}")
        if not self.cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker must be positive, not {self.cpus_per_worker!r}")



def _st():
    """sentence-transformers' training names (their module paths moved in v6)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers import (
            SentenceTransformer,
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
        )
        try:
            from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
            from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        except ImportError:
            from sentence_transformers.evaluation import InformationRetrievalEvaluator
            from sentence_transformers.losses import MultipleNegativesRankingLoss
    return (SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments,
            InformationRetrievalEvaluator, MultipleNegativesRankingLoss)


def validation_evaluator(validation: pd.DataFrame, catalog: pd.DataFrame, corpus_size: int = 5000,
                         seed: int = 42, extra_products: pd.Series | None = None, batch_size: int = 64):
    """An InformationRetrievalEvaluator over the validation pairs' anchors.

    Its corpus holds every validation positive, `extra_products` (e.g. the
    other judged products of those queries: the hard distractors) and seeded
    random catalog products up to `corpus_size` in all (the whole catalog when
    it is smaller). Anchors are deduplicated. Product anchors (co-purchases) are
    kept out of the corpus unless they are another anchor's positive, so that an
    anchor rarely finds its own text.
    """
    *_, InformationRetrievalEvaluator, _ = _st()
    texts = product_texts(catalog)
    wanted = set(validation["positive_id"])
    if extra_products is not None:
        wanted |= set(extra_products.astype(str)) & set(texts.index)
    anchors = set(validation["anchor_id"].astype(str)) & set(texts.index)
    others = texts.index[~texts.index.isin(wanted | anchors)]
    room = max(0, corpus_size - len(wanted))
    if room:
        picked = np.random.default_rng(seed).choice(len(others), size=min(room, len(others)), replace=False)
        wanted |= set(others[np.sort(picked)])
    corpus = {product_id: texts[product_id] for product_id in sorted(wanted)}
    queries = dict(zip(validation["anchor_id"].astype(str), validation["anchor"]))
    relevant: dict[str, set[str]] = {}
    for anchor_id, positive_id in zip(validation["anchor_id"].astype(str), validation["positive_id"]):
        relevant.setdefault(anchor_id, set()).add(positive_id)
    from sentence_transformers.util import cos_sim

    return InformationRetrievalEvaluator(
        queries=queries, corpus=corpus, relevant_docs=relevant, name=EVALUATOR_NAME,
        score_functions={"cosine": cos_sim}, main_score_function="cosine",
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 10], precision_recall_at_k=[10, 100],
        map_at_k=[100], batch_size=batch_size, show_progress_bar=False, write_csv=False)


def hard_negatives(train: pd.DataFrame, catalog: pd.DataFrame, seed: int = 42, depth: int = 30,
                   exclude: dict[str, set[str]] | None = None,
                   judged: dict[str, list[str]] | None = None) -> list[str]:
    """One hard negative text per pair, drawn (seeded) from the anchor's `judged[anchor_id]`
    products (judged not relevant for it) when it has any, else from BM25's top `depth` for the
    anchor, leaving out the anchor's positives and `exclude[anchor_id]` (e.g. every product
    judged for the query: an unjudged BM25 hit is a likelier negative than a judged one).

    Anchors with neither get a random catalog product that is not one of their positives.
    """
    retriever = get("bm25")().fit(catalog)
    texts = product_texts(catalog)
    positives = train.groupby("anchor_id")["positive_id"].agg(set).to_dict()
    anchors = list(dict.fromkeys(train["anchor_id"]))
    anchor_text = dict(zip(train["anchor_id"], train["anchor"]))
    hits = retriever.search_many([anchor_text[anchor] for anchor in anchors], depth)
    rng = np.random.default_rng(seed)
    candidates = {}
    for anchor, found in zip(anchors, hits):
        skip = positives.get(anchor, set()) | {anchor}
        low = [product for product in (judged or {}).get(anchor, []) if product in texts.index
               and product not in skip]
        skip |= (exclude or {}).get(anchor, set())
        candidates[anchor] = low or [hit.product_id for hit in found if hit.product_id not in skip]
    negatives = []
    for anchor in train["anchor_id"]:
        pool = candidates[anchor]
        if pool:
            product = pool[rng.integers(len(pool))]
        else:  # a random product that is not one of the anchor's positives (nor the anchor)
            own = positives.get(anchor, set()) | {anchor}
            others = texts.index[~texts.index.isin(own)]
            product = others[rng.integers(len(others))] if len(others) else texts.index[0]
        negatives.append(texts[product])
    return negatives


def time_left(elapsed_s: float, validating_s: float, validations: int, step: int, total_steps: int,
              eval_steps: int, validation_s: float) -> float:
    """Seconds a fine-tune has left: its remaining steps at the pace of the training steps so far,
    plus its remaining validations at the time the ones so far took (`validation_s`, the one
    before training, until one has run).

    Counting validations apart keeps the estimate from jumping at each one (1.2 -> 3.5 min was
    seen when they were spread over the steps).

    >>> time_left(elapsed_s=30, validating_s=10, validations=1, step=10, total_steps=40, eval_steps=10,
    ...           validation_s=8)
    90.0
    """
    step = max(step, 1)
    training = max(elapsed_s - validating_s, 0.0)
    per_validation = validating_s / validations if validations else validation_s
    remaining_validations = max(total_steps // eval_steps - step // eval_steps, 0)
    return training / step * max(total_steps - step, 0) + per_validation * remaining_validations


def _progress_callback(report: Callable[[dict], None] | None, total_steps: int, timings: dict,
                       eval_steps: int, validation_s: float):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.started = time.perf_counter()
            self.loss = None
            self.validation = None
            self.step_ended = None
            self.validating = 0.0  # seconds spent in validations so far
            self.validations = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.step_ended = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                self.loss = float(logs["loss"])
            score = logs.get(f"eval_{EVALUATOR_NAME}_{NDCG_KEY}")
            if score is not None:
                self.validation = float(score)
            if report is not None:
                elapsed = time.perf_counter() - self.started
                left = time_left(elapsed, self.validating, self.validations, state.global_step, total_steps,
                                 eval_steps, validation_s)
                report({"step": state.global_step, "total_steps": total_steps, "loss": self.loss,
                        "val_ndcg@10": self.validation, "elapsed_s": round(elapsed, 1),
                        "left_s": round(left, 1), "epoch": state.epoch})

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            timings["evaluations"] = timings.get("evaluations", 0) + 1
            if self.step_ended is not None:  # the validation ran between the step's end and now
                self.validating += time.perf_counter() - self.step_ended
                self.validations += 1

    return Progress()


def _best_evaluation(history: list[dict], best: float | None) -> dict[str, float] | None:
    """The validation metrics of the kept (best) checkpoint, from the trainer's log; None if none ran."""
    prefix = f"eval_{EVALUATOR_NAME}_"
    for entry in history:
        if best is not None and entry.get(prefix + NDCG_KEY) == best:
            return {key.removeprefix(prefix): float(value) for key, value in entry.items()
                    if key.startswith(prefix)}
    return None


def total_steps(n_pairs: int, config: FinetuneConfig, workers: int = 1) -> int:
    """Optimizer steps of a run: `config.max_steps`, else the epochs over the pairs, each step
    reading one batch on each of `workers` data-parallel workers."""
    if config.max_steps:
        return config.max_steps
    return max(1, math.ceil(n_pairs / (config.batch_size * workers) * config.epochs))


@dataclass
class TrainingRun(JsonConfig):
    """What one training loop hands back to `finetune`; crosses from a Ray Train worker to the
    driver as JSON next to the saved model (`RUN_FILE`)."""

    before: float
    before_s: float
    train_s: float
    steps: int
    history: list
    best_metric: float | None
    best_checkpoint: str | None
    evaluations: int
    after_metrics: dict


RUN_FILE = "workbench_run.json"


def train_loop(columns: dict[str, list[str]], evaluator, config: FinetuneConfig, device: str, steps: int,
               checkpoints: str | Path, save_to: str | Path | None,
               report: Callable[[dict], None] | None = None, workers: int = 1) -> TrainingRun:
    """The training itself, the same in this process and on each Ray Train worker: load
    `config.base_model` on `device`, validate it (before), train it on the `columns` pairs
    (anchor, positive[, negative]) with MultipleNegativesRankingLoss, validating every
    `config.eval_steps` and keeping the best checkpoint (in `checkpoints`), and save it to
    `save_to` (None: not saved, e.g. on a worker other than rank 0).

    Under Ray Train (`workers` > 1) the transformers trainer finds the process group Ray set up
    (RANK, WORLD_SIZE, LOCAL_RANK) and wraps the model in DistributedDataParallel; each step
    reads one batch per worker, and the loss gathers every worker's embeddings so that the
    in-batch negatives are the whole global batch, as one batch of `workers` x `batch_size`.
    """
    from datasets import Dataset

    SentenceTransformer, Trainer, Arguments, _, MultipleNegativesRankingLoss = _st()
    base = str(config.base_model or embeddings.default_model_path())
    model = SentenceTransformer(base, device=device, local_files_only=True)
    # Weights stored in half precision (a smaller copy of a model) are trained in float32.
    model.float()
    model.max_seq_length = config.max_seq_length
    started = time.perf_counter()
    before = float(evaluator(model)[f"{EVALUATOR_NAME}_{NDCG_KEY}"])
    before_s = time.perf_counter() - started
    dataset = Dataset.from_dict(columns)
    eval_steps = config.eval_steps or max(1, steps // 4)
    timings: dict = {}
    on_cpu = not str(device).startswith("cuda")
    arguments = Arguments(
        output_dir=str(checkpoints), num_train_epochs=config.epochs, max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
        warmup_steps=int(config.warmup_ratio * steps), seed=config.seed, data_seed=config.seed,
        batch_sampler="no_duplicates", eval_strategy="steps", eval_steps=eval_steps,
        save_strategy="steps", save_steps=eval_steps, save_total_limit=2, save_only_model=True,
        load_best_model_at_end=True, metric_for_best_model=f"eval_{EVALUATOR_NAME}_{NDCG_KEY}",
        greater_is_better=True, logging_steps=max(1, min(25, eval_steps)), report_to="none",
        disable_tqdm=True, use_cpu=on_cpu, bf16=not on_cpu, dataloader_num_workers=0)
    loss = (MultipleNegativesRankingLoss(model, gather_across_devices=True) if workers > 1
            else MultipleNegativesRankingLoss(model))
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset, loss=loss, evaluator=evaluator,
                      callbacks=[_progress_callback(report, steps, timings, eval_steps, before_s)])
    train_started = time.perf_counter()
    output = trainer.train()
    train_s = time.perf_counter() - train_started
    history = list(trainer.state.log_history)
    best_checkpoint = trainer.state.best_model_checkpoint
    after_metrics = _best_evaluation(history, trainer.state.best_metric)
    if save_to is not None:
        model.save(str(save_to))
        if after_metrics is None:
            after_metrics = {key.removeprefix(f"{EVALUATOR_NAME}_"): float(value)
                             for key, value in evaluator(model).items()}
    return TrainingRun(before=before, before_s=before_s, train_s=train_s, steps=int(output.global_step),
                       history=history, best_metric=trainer.state.best_metric,
                       best_checkpoint=Path(best_checkpoint).name if best_checkpoint else None,
                       evaluations=timings.get("evaluations", 0), after_metrics=after_metrics or {})


def finetune(train: pd.DataFrame, validation: pd.DataFrame, catalog: pd.DataFrame,
             config: FinetuneConfig, out_dir: str | Path,
             report: Callable[[dict], None] | None = None,
             validation_extra: pd.Series | None = None,
             negatives_exclude: dict[str, set[str]] | None = None,
             judged_negatives: dict[str, list[str]] | None = None,
             scaling: RayScaling | None = None) -> dict:
    """Fine-tune `config.base_model` on `train` pairs; the best model by validation nDCG@10
    is saved to `out_dir` (a sentence-transformers folder).

    `train` and `validation` are pair frames (`recsys.training.pairs`); `report`
    is called with {step, total_steps, loss, val_ndcg@10, elapsed_s, left_s}
    at every log line and may raise to stop training (a cancel). With
    `config.hard_negatives`, `judged_negatives` ({anchor_id: product ids judged
    not relevant}) are preferred and `negatives_exclude` never mined (see
    `hard_negatives`). With `scaling`, the training loop runs under Ray Train
    (`recsys.training.ray_train`; this process must have joined the cluster,
    `recsys.cluster.connect`) on `scaling.workers` data-parallel workers; the
    pairs, the validation and the saved folder are the same as here. Returns
    train_pairs, steps, train_s, steps_per_s, device and val_ndcg@10_before /
    _after (plus the evaluator's other metrics after).
    """
    if len(train) < config.batch_size:
        raise ValueError(f"only {len(train)} training pairs: fewer than one batch of {config.batch_size}")
    if validation.empty:
        raise ValueError("no validation pairs: the split left the validation part empty")
    evaluator = validation_evaluator(validation, catalog, config.validation_corpus, config.seed,
                                     validation_extra)
    columns = {"anchor": train["anchor"].tolist(), "positive": train["positive"].tolist()}
    if config.hard_negatives:
        columns["negative"] = hard_negatives(train, catalog, config.seed, exclude=negatives_exclude,
                                             judged=judged_negatives)
    workers = scaling.workers if scaling else 1
    steps = total_steps(len(train), config, workers)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp_out, ignore_errors=True)
    # Named after the model folder, so that what a killed job left can be found (recsys.training.jobs).
    prefix = f"checkpoints-{out_dir.name}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=out_dir.parent) as checkpoints:
        if scaling is None:
            device = resolve_device(config.device)
            if device == "cpu":
                embeddings.configure_threads()
            run = train_loop(columns, evaluator, config, device, steps, checkpoints, tmp_out, report)
        else:
            from recsys.training.ray_train import train_on_ray

            device = "cuda" if scaling.use_gpu else "cpu"
            run = train_on_ray(columns, evaluator, config, steps, scaling, checkpoints, tmp_out, report)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp_out.rename(out_dir)
    history = run.history
    validation_s = sum(float(entry.get("eval_runtime", 0)) for entry in history)
    result = {
        "train_pairs": len(train), "validation_queries": int(validation["anchor_id"].nunique()),
        "steps": run.steps, "train_s": round(run.train_s, 2),
        "steps_per_s": round(run.steps / run.train_s, 3), "device": device,
        "engine": "ray" if scaling else "local", "workers": workers,
        # Time the periodic validations took inside training, and the training speed without it.
        "validation_s": round(validation_s, 2),
        "training_steps_per_s": round(run.steps / max(run.train_s - validation_s, 1e-9), 3),
        "evaluations": run.evaluations, "validation_eval_s": round(run.before_s, 2),
        "val_ndcg@10_before": round(run.before, 4),
        "val_ndcg@10_after": round(run.after_metrics[NDCG_KEY], 4),
        "best_checkpoint": run.best_checkpoint,
        "validation_metrics": run.after_metrics,
        "loss_history": [{"step": entry["step"], "loss": entry["loss"]}
                         for entry in history if "loss" in entry],
        "validation_history": [{"step": entry["step"], "ndcg@10": entry[f"eval_{EVALUATOR_NAME}_{NDCG_KEY}"]}
                               for entry in history if f"eval_{EVALUATOR_NAME}_{NDCG_KEY}" in entry],
        "config": config.to_dict(),
    }
    (out_dir / "workbench_training.json").write_text(json.dumps(result, indent=2, default=str))
    return result
