"""Benchmark: fine-tuning MiniLM on Home Depot judgments, and what it does to search quality.

Reads ``../shared/data/homedepot/`` at run time and skips (exit status 0) when it
is absent. Nothing derived from it is written into the repo: models and
embeddings go under var/ (ignored by git), figures to bench/results/.

The dev judgments are split by query (seeded hash, 80/10/10) into train,
validation and test; pairs are query -> product graded >= --min-grade. The
model is fine-tuned with `recsys.training.finetune` on the train part
(validated on the validation part), then the base and the fine-tuned model are
compared on the test queries, which training never saw, with the full-catalog
protocol of `evaluate-search` (54,667 titles, nDCG@10 with gain = grade - 1):
semantic alone, the hybrid with the default preset's fusion, and the hybrid
with the fine-tuned model and re-read weights, each hybrid with queries as typed
and with their misspelled words corrected first (`recsys.search.spelling`, as
served).

    python bench/finetune.py --max-steps 1000
    python bench/finetune.py --model var/models/hd-ft     # evaluate an existing model only

Prints a table and, as its last line, one JSON object (also written to
bench/results/finetune.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import data_missing, load_data, machine, save_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "finetune.json"
DEFAULT_OUT = ROOT / "var" / "models" / "homedepot-finetuned"


def split(min_grade: float, seed: int):
    from recsys.training.pairs import SplitFractions, pairs_from_judgments, split_judgments, split_pairs

    catalog, judgments = load_data()
    fractions = SplitFractions(validation=0.1, test=0.1, seed=seed)
    pairs = split_pairs(pairs_from_judgments(judgments, catalog, min_grade), fractions)
    return catalog, judgments, pairs, split_judgments(judgments, fractions)


def evaluate(catalog, parts: dict, model_path: str | None, weights: list[float]) -> dict:
    """{part: {retriever: full-catalog nDCG@10 / Recall@100}} of semantic, BM25 and hybrids
    at several semantic weights."""
    from recsys.search import get

    from recsys.training.pairs import product_texts

    semantic = get("semantic")(model_path=model_path, backend="onnx-fp32").fit(catalog)
    bm25 = get("bm25")().fit(catalog)
    texts = product_texts(catalog)
    return {part: _scores(bm25, semantic, judgments, weights, texts) for part, judgments in parts.items()}


def _scores(bm25, semantic, judgments, weights, texts) -> dict:
    """Each retriever's scores; "+spelling": queries corrected against the catalog's words first."""
    from recsys.evaluation.search import evaluate_full_catalog
    from recsys.search import get

    scores = {"semantic": evaluate_full_catalog(semantic, judgments),
              "bm25": evaluate_full_catalog(bm25, judgments)}
    for weight in weights:
        fusion = {"method": "weighted", "weights": {"bm25": 1 - weight, "semantic": weight},
                  "normalisation": "minmax", "candidates": 100, "backend": "onnx-fp32"}
        hybrid = get("hybrid").from_sources([bm25, semantic], fusion)
        scores[f"hybrid@{weight:.2f}"] = evaluate_full_catalog(hybrid, judgments)
        hybrid = get("hybrid").from_sources([bm25, semantic], fusion, texts=texts)
        scores[f"hybrid+spelling@{weight:.2f}"] = evaluate_full_catalog(hybrid, judgments)
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--min-grade", type=float, default=2.33)
    parser.add_argument("--hard-negatives", action="store_true",
                        help="one hard negative per pair: a product judged not relevant (grade <= 1.67) "
                             "for the query, else an unjudged one of BM25's top 30")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", help="evaluate this model folder instead of training one")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--weights", default="0.25,0.4,0.5,0.6")
    args = parser.parse_args(argv)
    if data_missing():
        return 0
    from recsys.embeddings import configure_threads
    from recsys.training.finetune import FinetuneConfig, finetune

    threads = configure_threads()
    load_before = os.getloadavg()
    catalog, judgments, pairs, judged = split(args.min_grade, args.seed)
    result: dict = {"min_grade": args.min_grade, "pairs": {k: len(v) for k, v in pairs.items()}}
    model = args.model
    if model is None:
        config = FinetuneConfig(max_steps=args.max_steps, batch_size=args.batch_size,
                                learning_rate=args.lr, seed=args.seed, hard_negatives=args.hard_negatives)
        from recsys.training.jobs import judged_for_negatives

        extra = judged["validation"]["product_id"].astype(str)
        exclude, low = judged_for_negatives({"pairs": pairs}, judgments)
        trained = finetune(pairs["train"], pairs["validation"], catalog, config, args.out,
                           report=lambda row: print(json.dumps(row), flush=True),
                           validation_extra=extra, negatives_exclude=exclude, judged_negatives=low)
        result["training"] = {k: v for k, v in trained.items() if k not in ("loss_history",)}
        model = args.out
    weights = [float(w) for w in args.weights.split(",")]
    started = time.perf_counter()
    parts = {part: judged[part] for part in ("validation", "test")}
    result["base"] = evaluate(catalog, parts, None, weights)
    result["finetuned"] = evaluate(catalog, parts, model, weights)
    result["evaluate_s"] = round(time.perf_counter() - started, 1)
    result["machine"] = machine(threads, load_before)
    for part in parts:
        for name in result["base"][part]:
            print(f"{part:10s} {name:14s} base {result['base'][part][name]['ndcg@10']:.4f}  "
                  f"fine-tuned {result['finetuned'][part][name]['ndcg@10']:.4f}")
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
