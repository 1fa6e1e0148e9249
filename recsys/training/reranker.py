"""Training a cross-encoder reranker on a shop's judgments, with sentence-transformers' trainer.

What it computes: a cross-encoder (by default the shipped all-MiniLM-L6-v2
with a fresh one-logit classification head) that reads a query and a product
text together and predicts whether the product is relevant, trained with
binary cross-entropy on labelled (query, product) pairs (Nogueira and Cho,
"Passage Re-ranking with BERT", 2019). `reranker_examples` makes the pairs:
every judged product is an example, labelled 1 when its grade is at least
`min_grade` and 0 otherwise, plus `negatives_per_query` products from BM25's
top 30 for the query that nobody judged (seeded): the near misses a first
stage actually returns, which is what the reranker has to push down.

Validation reranks each validation query's BM25 top `validation_candidates`
products by the cross-encoder and takes nDCG@10 with graded gains (grade minus
the lowest grade, unjudged 0; `recsys.evaluation.search.graded_qrels`), the
protocol of the search benchmarks. It runs every `eval_steps` and at the end;
the checkpoint with the best nDCG@10 is what is saved
(`load_best_model_at_end`). "Before" is the BM25 order of the same candidates
(an untrained head's order is noise, so it says nothing). CUDA is used when
present, the CPU otherwise (with `recsys.embeddings.configure_threads`).

The saved folder is a sentence-transformers CrossEncoder; `recsys.search.cross_encoder.CrossEncoderReranker`
loads it, and a fusion preset's `reranker` names it.

>>> examples = reranker_examples(split["train"], catalog, min_grade=2.33)   # doctest: +SKIP
>>> result = train_reranker(examples, split["validation"], catalog,         # doctest: +SKIP
...                         RerankerConfig(max_steps=1000), "var/models/reranker")
>>> result["val_ndcg@10_after"] > result["val_ndcg@10_before"]              # doctest: +SKIP
True
"""

from __future__ import annotations

import json
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
from recsys.embedding_model import resolve_device
from recsys.evaluation.metrics import ranking_metrics
from recsys.evaluation.search import graded_pairs, graded_qrels
from recsys.search import get
from recsys.training.finetune import _progress_callback, total_steps
from recsys.training.pairs import product_texts, query_group

EXAMPLE_COLUMNS = ["query", "product_id", "text", "label"]
EVALUATOR_NAME = "validation"
NDCG_KEY = "ndcg@10"
NEGATIVES_DEPTH = 30


@dataclass
class RerankerConfig(JsonConfig):
    """Hyperparameters of one reranker training; round-trips to JSON (`to_dict` / `from_dict`)."""

    base_model: str | None = None  # a transformers / sentence-transformers folder; None: the shipped MiniLM
    epochs: float = 1.0
    max_steps: int | None = None  # when set, wins over epochs
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    seed: int = 42
    negatives_per_query: int = 4  # BM25 negatives per training query (`reranker_examples`)
    max_length: int = 64  # tokens of query and text together
    eval_steps: int | None = None  # None: about four validations per run
    validation_candidates: int = 30  # BM25's top products reranked per validation query
    device: str | None = None  # None: "cuda" when available, else "cpu"

    def __post_init__(self):
        problems = []
        if self.batch_size < 1:
            problems.append(f"batch size must be at least 1, not {self.batch_size}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max steps must be at least 1, not {self.max_steps}")
        if self.epochs <= 0:
            problems.append(f"epochs must be positive, not {self.epochs}")
        if not 0 < self.learning_rate < 1:
            problems.append(f"learning rate must be in (0, 1), not {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warm-up ratio must be in [0, 1), not {self.warmup_ratio}")
        if self.negatives_per_query < 0:
            problems.append(f"negatives per query must be 0 or more, not {self.negatives_per_query}")
        if self.max_length < 8:
            problems.append(f"max length must be at least 8 tokens (query and text), not {self.max_length}")
        if self.eval_steps is not None and self.eval_steps < 1:
            problems.append(f"eval steps must be at least 1, not {self.eval_steps}")
        if self.validation_candidates < 1:
            problems.append(f"validation candidates must be at least 1, not {self.validation_candidates}")
        if problems:
            raise ValueError("invalid reranker config: " + "; ".join(problems))



def _st():
    """sentence-transformers' cross-encoder training names (module paths moved in v6)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers.cross_encoder import (
            CrossEncoder,
            CrossEncoderTrainer,
            CrossEncoderTrainingArguments,
        )
        from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
        try:
            from sentence_transformers.base.evaluation import BaseEvaluator
        except ImportError:
            from sentence_transformers.evaluation import SentenceEvaluator as BaseEvaluator
    return (CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments, BinaryCrossEntropyLoss,
            BaseEvaluator)


def _graded(judgments: pd.DataFrame, texts: pd.Series) -> pd.DataFrame:
    """query (trimmed), product_id (str), grade: one row per pair (repeats averaged), products with a text."""
    frame = graded_pairs(judgments.assign(query=judgments["query"].astype(str).str.strip()))
    return frame[frame["product_id"].isin(texts.index)].reset_index(drop=True)


def bm25_candidates(queries: list[str], catalog: pd.DataFrame, depth: int,
                    retriever=None) -> list[list[tuple[str, float]]]:
    """Each query's BM25 top `depth` [(product_id, score)] among products that contain a query word."""
    retriever = retriever or get("bm25")().fit(catalog)
    hits = retriever.search_many(queries, depth, matched_only=True) if queries else []
    return [[(hit.product_id, hit.score) for hit in found] for found in hits]


def reranker_examples(judgments: pd.DataFrame, catalog: pd.DataFrame, min_grade: float,
                      negatives_per_query: int = 4, seed: int = 42) -> pd.DataFrame:
    """Labelled (query, product) pairs: columns query, product_id, text, label (1.0 or 0.0).

    `judgments` has columns query, product_id, grade (repeated pairs are
    averaged; products not in `catalog` are dropped). A judged product is 1
    when its grade is at least `min_grade`, else 0. Each query then gets up to
    `negatives_per_query` products (label 0) drawn, seeded, from BM25's top 30
    for it that were not judged for the query at all, under any spelling of it
    that `query_group` makes equal: a judged one is already an example, and a
    relevant one must never be labelled 0.
    """
    texts = product_texts(catalog)
    texts = texts[~texts.index.duplicated()]
    graded = _graded(judgments, texts)
    judged = pd.DataFrame({"query": graded["query"], "product_id": graded["product_id"],
                           "label": (graded["grade"] >= min_grade).astype(float)})
    frames = [judged]
    if negatives_per_query > 0 and not graded.empty:
        queries = list(dict.fromkeys(graded["query"]))
        seen = graded.groupby(graded["query"].map(query_group))["product_id"].agg(set).to_dict()
        rng = np.random.default_rng(seed)
        rows = []
        for query, found in zip(queries, bm25_candidates(queries, catalog, NEGATIVES_DEPTH)):
            pool = [product_id for product_id, _ in found if product_id not in seen[query_group(query)]]
            picked = np.sort(rng.choice(len(pool), size=min(negatives_per_query, len(pool)), replace=False))
            rows += [(query, pool[i]) for i in picked]
        frames.append(pd.DataFrame(rows, columns=["query", "product_id"]).assign(label=0.0))
    examples = pd.concat(frames, ignore_index=True)
    examples["text"] = texts.reindex(examples["product_id"]).to_numpy()
    return examples[EXAMPLE_COLUMNS]


def validation_evaluator(validation: pd.DataFrame, catalog: pd.DataFrame, candidates: int = 30,
                         min_grade: float | None = None, batch_size: int = 64):
    """An evaluator (for the trainer, or called with a model) of reranking BM25's candidates.

    It reranks each validation query's BM25 top `candidates` by the model and
    returns {"validation_ndcg@10": ...}; gains are grade minus `min_grade` (by
    default the lowest grade of `validation`). Its `bm25_ndcg` is the same
    metric for BM25's own order; `latest` the last value it computed.
    """
    *_, BaseEvaluator = _st()
    texts = product_texts(catalog)
    texts = texts[~texts.index.duplicated()]
    qrels = graded_qrels(validation, min_grade)
    queries = list(qrels)
    found = bm25_candidates(queries, catalog, candidates)

    def ndcg(run: dict) -> float:
        # ranx answers a single metric with a bare float: ask for two.
        return ranking_metrics(qrels, run, k=10, metrics=("ndcg", "precision"))[NDCG_KEY]

    class RerankValidation(BaseEvaluator):
        def __init__(self):
            super().__init__()
            self.name = EVALUATOR_NAME
            self.primary_metric = f"{EVALUATOR_NAME}_{NDCG_KEY}"
            self.greater_is_better = True
            self.queries = queries
            self.bm25_ndcg = ndcg({query: ranking for query, ranking in zip(queries, found)})
            self.latest: float | None = None

        def __call__(self, model, output_path: str | None = None, epoch: int = -1,
                     steps: int = -1) -> dict[str, float]:
            pairs = [[query, texts[product_id]] for query, ranking in zip(queries, found)
                     for product_id, _ in ranking]
            scores = (model.predict(pairs, batch_size=batch_size, show_progress_bar=False,
                                    convert_to_numpy=True) if pairs else np.zeros(0))
            run, start = {}, 0
            for query, ranking in zip(queries, found):
                chosen = np.asarray(scores[start:start + len(ranking)], dtype=np.float64)
                start += len(ranking)
                order = np.argsort(-chosen, kind="stable")
                run[query] = [(ranking[i][0], float(chosen[i])) for i in order]
            self.latest = ndcg(run)
            return {self.primary_metric: self.latest}

    return RerankValidation()


def base_cross_encoder(config: RerankerConfig, device: str | None = None):
    """`config.base_model` (default: the shipped MiniLM) as a CrossEncoder with one output.

    A folder without a classification head gets a fresh one, drawn from `config.seed`.
    """
    from transformers import set_seed

    CrossEncoder, *_ = _st()
    set_seed(config.seed)
    base = str(config.base_model or embeddings.default_model_path())
    return CrossEncoder(base, num_labels=1, max_length=config.max_length,
                        device=resolve_device(device or config.device), local_files_only=True)


def _check_examples(examples: pd.DataFrame) -> None:
    missing = [column for column in ("query", "text", "label") if column not in examples.columns]
    if missing:
        raise ValueError(f"the training examples need the column(s) {missing}; they have "
                         f"{list(examples.columns)} (make them with reranker_examples)")
    labels = set(examples["label"].astype(float))
    if not labels <= {0.0, 1.0}:
        raise ValueError(f"labels must be 0 or 1, not {sorted(labels - {0.0, 1.0})[:5]}")
    if labels != {0.0, 1.0}:
        which = "relevant (1)" if 1.0 not in labels else "irrelevant (0)"
        raise ValueError(f"the training examples have no {which} pair: binary cross-entropy needs "
                         "both; lower min_grade or add judgments")


def train_reranker(train_examples: pd.DataFrame, validation_judgments: pd.DataFrame,
                   catalog: pd.DataFrame, config: RerankerConfig, out_dir: str | Path,
                   report: Callable[[dict], None] | None = None,
                   min_grade: float | None = None) -> dict:
    """Train a cross-encoder on `train_examples` (`reranker_examples`); the best model by
    validation nDCG@10 is saved to `out_dir` (a sentence-transformers CrossEncoder folder).

    `validation_judgments` has query, product_id, grade; `min_grade` is the
    lowest grade of their scale, the zero of the validation gains (None: the
    lowest grade in them). `report` is called with {step, total_steps, loss,
    val_ndcg@10, elapsed_s, left_s, epoch} at every log line and may raise to
    stop training (a cancel). Returns train_examples, steps, train_s,
    steps_per_s, device, val_ndcg@10_before (BM25's order of the candidates)
    and val_ndcg@10_after (the saved model's), with the histories and config.
    """
    _check_examples(train_examples)
    if validation_judgments.empty:
        raise ValueError("no validation judgments: the split left the validation part empty")
    from datasets import Dataset

    _, Trainer, Arguments, BinaryCrossEntropyLoss, _ = _st()
    device = resolve_device(config.device)
    if device == "cpu":
        embeddings.configure_threads()
    model = base_cross_encoder(config, device)
    evaluator = validation_evaluator(validation_judgments, catalog, config.validation_candidates, min_grade)
    before = evaluator.bm25_ndcg
    dataset = Dataset.from_dict({"query": train_examples["query"].astype(str).tolist(),
                                 "text": train_examples["text"].astype(str).tolist(),
                                 "label": train_examples["label"].astype(float).tolist()})
    # No pos_weight: a reranker is judged only by the order it gives each query's
    # candidates, and a class imbalance (about 2 negatives per positive with the
    # defaults) mostly shifts the head's bias, which leaves that order unchanged;
    # up-weighting positives would add gradient noise for no gain in ranking.
    loss = BinaryCrossEntropyLoss(model)
    steps = total_steps(len(train_examples), config)
    eval_steps = config.eval_steps or max(1, steps // 4)
    timings: dict = {}

    def progress(row: dict) -> None:
        report({**row, "val_ndcg@10": evaluator.latest})

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Named after the model folder, so that what a killed job left can be found (recsys.training.jobs).
    with tempfile.TemporaryDirectory(prefix=f"checkpoints-{out_dir.name}-", dir=out_dir.parent) as checkpoints:
        arguments = Arguments(
            output_dir=checkpoints, num_train_epochs=config.epochs, max_steps=config.max_steps or -1,
            per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
            warmup_steps=int(config.warmup_ratio * steps), seed=config.seed, data_seed=config.seed,
            eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps", save_steps=eval_steps,
            save_total_limit=2, save_only_model=True, load_best_model_at_end=True,
            metric_for_best_model=f"eval_{EVALUATOR_NAME}_{NDCG_KEY}", greater_is_better=True,
            logging_steps=max(1, min(25, eval_steps)), report_to="none", disable_tqdm=True,
            use_cpu=device == "cpu", bf16=device == "cuda", dataloader_num_workers=0)
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset, loss=loss, evaluator=evaluator,
                          # (no validation ran before training: the first one's time is learnt as it runs)
                          callbacks=[_progress_callback(progress if report else None, steps, timings, eval_steps,
                                                        validation_s=0.0)])
        train_started = time.perf_counter()
        output = trainer.train()
        train_s = time.perf_counter() - train_started
        best_checkpoint = trainer.state.best_model_checkpoint
        history = list(trainer.state.log_history)
        tmp_out = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(tmp_out, ignore_errors=True)
        model.save(str(tmp_out))
    after = evaluator(model)[evaluator.primary_metric]
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp_out.rename(out_dir)
    metric = f"eval_{EVALUATOR_NAME}_{NDCG_KEY}"
    result = {
        "train_examples": len(train_examples),
        "train_positives": int((train_examples["label"] == 1).sum()),
        "validation_queries": len(evaluator.queries),
        "steps": int(output.global_step), "train_s": round(train_s, 2),
        "steps_per_s": round(output.global_step / train_s, 3) if train_s > 0 else None,
        "device": device, "evaluations": timings.get("evaluations", 0),
        "val_ndcg@10_before": round(before, 4), "val_ndcg@10_before_is": "bm25 order",
        "val_ndcg@10_after": round(after, 4),
        "best_checkpoint": Path(best_checkpoint).name if best_checkpoint else None,
        "loss_history": [{"step": entry["step"], "loss": entry["loss"]}
                         for entry in history if "loss" in entry],
        "validation_history": [{"step": entry["step"], "ndcg@10": entry[metric]}
                               for entry in history if metric in entry],
        "config": config.to_dict(),
    }
    (out_dir / "workbench_training.json").write_text(json.dumps(result, indent=2, default=str))
    return result
