"""Benchmark: a reranker (cross-encoder or learned ranker) trained on Home Depot judgments, on top of the hybrid.

Reads ``../shared/data/homedepot/`` at run time and skips (exit status 0) when it
is absent. Nothing derived from it is written into the repo: the model goes
under var/ (ignored by git), figures to bench/results/.

The dev judgments are split by query (`recsys.training.pairs.split_judgments`,
default shares: 80/10/10). A cross-encoder (the shipped MiniLM with a fresh
head) is trained with `recsys.training.reranker` on the train part: every
judged product labelled by --min-grade, plus --negatives unjudged BM25
negatives per query; validated on the validation part. On the test queries,
which training never saw, with the full-catalog protocol of `evaluate-search`
(nDCG@10 with gain = grade - 1, Recall@100 of grade >= 2.5):

- the hybrid: BM25 fused with the semantic retriever of --model (default the
  base MiniLM) at --semantic-weight (weighted min-max);
- the same hybrid with the cross-encoder reranking its fused top 20 and 50;

or, with ``--kind learned``, a learned ranker (`recsys.training.ltr`: LambdaMART
over the hybrid's own signals) trained on the train queries' fused top
--top-n with early stopping on the validation queries, and the hybrid with it
reordering its fused top --top-n;

and the p50 / p95 latency of one `search` (k=10) of each, on up to 200 test
queries timed one at a time after a warm-up.

    python bench/rerank.py --max-steps 1000
    python bench/rerank.py --reranker var/models/homedepot-reranker    # evaluate an existing model
    python bench/rerank.py --max-steps 5 --queries 20 --train-queries 50   # a smoke run
    python bench/rerank.py --kind learned --model var/models/homedepot-ft-hn --semantic-weight 0.4

Prints a table and, as its last line, one JSON object (also written to
bench/results/rerank.json).
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
RESULTS = ROOT / "bench" / "results" / "rerank.json"
DEFAULT_OUT = ROOT / "var" / "models" / "homedepot-reranker"
DEFAULT_LEARNED_OUT = ROOT / "var" / "models" / "homedepot-ranker"
RERANK_TOPS = (20, 50)
LATENCY_QUERIES = 200


def sample_queries(judgments, limit: int, seed: int):
    """The judgments of a seeded sample of `limit` queries (all when limit is 0)."""
    import numpy as np

    if not limit:
        return judgments
    queries = sorted(judgments["query"].unique())
    rng = np.random.default_rng(seed)
    chosen = {queries[i] for i in rng.permutation(len(queries))[:limit]}
    return judgments[judgments["query"].isin(chosen)].reset_index(drop=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("cross-encoder", "learned"), default="cross-encoder")
    parser.add_argument("--top-n", type=int, default=100, help="learned: fused items it orders")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--min-grade", type=float, default=2.33,
                        help="a judged product at or above it is relevant")
    parser.add_argument("--negatives", type=int, default=4, help="BM25 negatives per training query")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", help="semantic model folder of the hybrid (default: the base MiniLM)")
    parser.add_argument("--semantic-weight", type=float, default=0.25)
    parser.add_argument("--backend", default="onnx-int8",
                        help="the semantic encoder (recsys.embeddings.BACKENDS)")
    parser.add_argument("--reranker", help="evaluate this reranker folder instead of training one")
    parser.add_argument("--out", help=f"where the model goes (default {DEFAULT_OUT}, "
                        f"learned: {DEFAULT_LEARNED_OUT})")
    parser.add_argument("--no-spelling", action="store_true", help="search queries as typed")
    parser.add_argument("--queries", type=int, default=0,
                        help="evaluate on this many seeded validation and test queries (0: all)")
    parser.add_argument("--train-queries", type=int, default=0,
                        help="make training examples from this many seeded train queries (0: all)")
    args = parser.parse_args(argv)
    if data_missing():
        return 0
    from recsys.embeddings import configure_threads
    from recsys.evaluation.search import evaluate_full_catalog, measure_latency
    from recsys.search import get
    from recsys.training.pairs import product_texts, split_judgments
    from recsys.training.ltr import RankerConfig, train_ranker
    from recsys.training.reranker import RerankerConfig, reranker_examples, train_reranker

    threads = configure_threads()
    load_before = os.getloadavg()
    catalog, judgments = load_data()
    parts = split_judgments(judgments)
    validation = sample_queries(parts["validation"], args.queries, args.seed)
    test = sample_queries(parts["test"], args.queries, args.seed)
    result: dict = {"args": vars(args), "queries": {"train": int(parts["train"]["query"].nunique()),
                                                    "validation": int(validation["query"].nunique()),
                                                    "test": int(test["query"].nunique())}}
    started = time.perf_counter()
    bm25 = get("bm25")().fit(catalog)
    semantic = get("semantic")(model_path=args.model, backend=args.backend).fit(catalog)
    result["fit_s"] = round(time.perf_counter() - started, 1)
    weights = {"bm25": 1 - args.semantic_weight, "semantic": args.semantic_weight}
    fusion = {"method": "weighted", "weights": weights,
              "normalisation": "minmax", "candidates": 100, "backend": args.backend}
    hybrid = get("hybrid").from_sources([bm25, semantic], fusion, texts=product_texts(catalog))
    hybrid.config.spelling = not args.no_spelling
    reranker = args.reranker
    learned = args.kind == "learned"
    out = args.out or str(DEFAULT_LEARNED_OUT if learned else DEFAULT_OUT)
    train = sample_queries(parts["train"], args.train_queries, args.seed)
    if reranker is None and learned:
        trained = train_ranker(hybrid, train, validation, RankerConfig(top_n=args.top_n, seed=args.seed), out,
                               report=lambda row: print(json.dumps(row), file=sys.stderr, flush=True))
        result["training"] = trained
        reranker = out
    elif reranker is None:
        started = time.perf_counter()
        examples = reranker_examples(train, catalog, args.min_grade, args.negatives, args.seed)
        result["examples"] = {"rows": len(examples), "positives": int(examples["label"].sum()),
                              "made_s": round(time.perf_counter() - started, 1)}
        config = RerankerConfig(max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr,
                                seed=args.seed, negatives_per_query=args.negatives)
        trained = train_reranker(examples, validation, catalog, config, out,
                                 report=lambda row: print(json.dumps(row), file=sys.stderr, flush=True))
        result["training"] = {k: v for k, v in trained.items() if k != "loss_history"}
        reranker = out

    engines = {"hybrid": hybrid}
    for top in ((args.top_n,) if learned else RERANK_TOPS):
        engines[f"hybrid+rerank@{top}"] = hybrid.with_fusion({**fusion, "reranker": str(reranker),
                                                              "rerank_top": top})
    rows = []
    queries = sorted(test["query"].unique())
    for name, engine in engines.items():
        started = time.perf_counter()
        quality = evaluate_full_catalog(engine, test)
        latency = measure_latency(engine, queries, sample=LATENCY_QUERIES)
        rows.append({"method": name, **{k: round(v, 4) for k, v in quality.items()},
                     **{k: round(v, 1) for k, v in latency.items()},
                     "eval_s": round(time.perf_counter() - started, 1)})
        print(f"{name}: evaluated in {rows[-1]['eval_s']} s", file=sys.stderr)
    result["test"] = rows
    result["machine"] = machine(threads, load_before)

    print(f"\n{'test queries: ' + str(len(queries)):<22}{'nDCG@10':>9}{'R@100':>8}{'p50 ms':>8}{'p95 ms':>8}")
    for row in rows:
        print(f"{row['method']:<22}{row['ndcg@10']:>9.4f}{row['recall@100']:>8.4f}"
              f"{row['latency_ms_p50']:>8.1f}{row['latency_ms_p95']:>8.1f}")
    if "training" in result and learned:
        print(f"validation nDCG@10 (whole catalog): fused order {result['training']['val_ndcg@10_before']:.4f}, "
              f"learned ranker {result['training']['val_ndcg@10_after']:.4f} ({result['training']['trees']} trees, "
              f"features {result['training']['features_s']} s, training {result['training']['train_s']} s)")
    elif "training" in result:
        print(f"validation nDCG@10 of reranking BM25's top 30: BM25 order "
              f"{result['training']['val_ndcg@10_before']:.4f}, cross-encoder "
              f"{result['training']['val_ndcg@10_after']:.4f} ({result['training']['steps']} steps)")
    save_result(result, RESULTS.with_name("ltr.json") if learned else RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
