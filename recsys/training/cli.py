"""`python -m recsys finetune`: fine-tune the embedding model on a catalog and judgments in files.

The judgments are split by query (seeded, 80/10/10); the model is trained on
the train part's query -> product pairs graded >= --min-grade and validated on
the validation part; the best checkpoint is saved to --out, a
sentence-transformers folder that `evaluate-search --model OUT` and the
workbench load. Prints one JSON object on stdout: train_pairs, train_s, steps,
steps_per_s, device, val_ndcg@10_before and val_ndcg@10_after (the validation
queries against their judged products plus seeded random catalog products, the
corpus `validation_corpus` counts), and the test queries that training never
saw are left for `evaluate-search`. With `--engine ray --workers N [--gpu]` the
training loop runs under Ray Train on the cluster $RAY_ADDRESS (or the workbench's
Ray setting) names, `local` for a Ray inside this command; the rest is unchanged.

Like `recsys.cli`, each command imports what it runs inside its function, so that the
others start without loading the models' libraries.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys

from recsys.evaluation.search import InputError, json_command, read_judged


def _judged_arguments(parser: argparse.ArgumentParser) -> None:
    """The catalog and judgment files a training command reads, and their columns (`read_judged`)."""
    parser.add_argument("--catalog", required=True, help="products: CSV, TSV or Parquet")
    parser.add_argument("--id-col", required=True, help="product id column of the catalog")
    parser.add_argument("--text-col", required=True, help="text column of the catalog")
    parser.add_argument("--judgments", required=True, help="graded (query, product) pairs")
    parser.add_argument("--query-col", default="query")
    parser.add_argument("--item-col", default="product_uid", help="product id column of the judgments")
    parser.add_argument("--grade-col", default="relevance")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune the embedding model on judgments (JSON on stdout)",
        description=__doc__.splitlines()[0])
    _judged_arguments(parser)
    parser.add_argument("--min-grade", type=float,
                        help="grade at or above which a product is a positive "
                             "(default: the top third of the grades seen, 2.33 on 1..3)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="passes over the training pairs (default 1)")
    length.add_argument("--max-steps", type=int, help="training steps (wins over epochs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5, help="learning rate (default 5e-5)")
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--hard-negatives", action="store_true",
                        help="add one hard negative per pair: a product judged not relevant for the "
                             "query (bottom third of the grades) when there is one, else an unjudged "
                             "product of BM25's top 30")
    parser.add_argument("--base-model", help="sentence-transformers folder to start from "
                                             "(default: the shipped all-MiniLM-L6-v2)")
    parser.add_argument("--validation-corpus", type=int, default=5000,
                        help="catalog products the validation queries search (default 5000)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="where the training loop runs: here (default), or Ray Train on the cluster "
                             "$RAY_ADDRESS or the workbench's Ray setting names ('local': Ray inside "
                             "this process)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Ray Train data-parallel workers (--engine ray; default 1)")
    parser.add_argument("--gpu", action="store_true", help="a GPU for each Ray Train worker (--engine ray)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0,
                        help="CPUs each Ray Train worker asks for (default 1; fractions allowed)")
    parser.add_argument("--out", required=True, help="folder the fine-tuned model is saved to")
    parser.set_defaults(func=run)
    return parser


def _inputs(args):
    from recsys.training.jobs import prepare_pairs

    catalog, judgments = read_judged(args)
    return catalog, judgments, prepare_pairs("judgments", catalog, judgments=judgments, min_grade=args.min_grade)


def _scaling(args):
    """The Ray Train workers `--engine ray` asks for, with the cluster joined; None for local."""
    from recsys.training.finetune import RayScaling

    scaling = RayScaling(workers=args.workers, use_gpu=args.gpu, cpus_per_worker=args.cpus_per_worker)
    if args.engine == "local":
        if args.workers > 1 or args.gpu:
            raise ValueError("--workers and --gpu are for Ray Train workers: add --engine ray")
        return None
    from recsys import cluster
    from recsys.training.jobs import NO_CLUSTER, join_cluster

    address = cluster.ray_address()
    if address is None:
        raise ValueError(NO_CLUSTER)
    join_cluster(address)
    return scaling


def run(args) -> int:
    from recsys.cluster import ClusterUnavailable
    from recsys.training.finetune import FinetuneConfig, finetune
    from recsys.training.jobs import judged_for_negatives
    from recsys.training.ray_train import RayTrainFailed

    stdout = sys.stdout
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            config = FinetuneConfig(
                base_model=args.base_model, epochs=args.epochs or 1.0, max_steps=args.max_steps,
                batch_size=args.batch_size, learning_rate=args.lr, warmup_ratio=args.warmup_ratio,
                seed=args.seed, hard_negatives=args.hard_negatives,
                validation_corpus=args.validation_corpus, device=args.device)
            scaling = _scaling(args)
            catalog, judgments, prepared = _inputs(args)
            pairs = prepared["pairs"]
            print(f"{len(pairs['train']):,} training pairs (grade >= {prepared['min_grade']}), "
                  f"{len(pairs['validation']):,} validation, {len(pairs['test']):,} test", file=sys.stderr)

            def report(row: dict) -> None:
                print(json.dumps(row), file=sys.stderr, flush=True)

            judged, low = judged_for_negatives(prepared, judgments)
            result = finetune(pairs["train"], pairs["validation"], catalog, config, args.out,
                              report=report, validation_extra=prepared["judgments"]["validation"]["product_id"],
                              negatives_exclude=judged, judged_negatives=low, scaling=scaling)
        except (InputError, OSError, ValueError, ClusterUnavailable, RayTrainFailed) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    summary = {key: value for key, value in result.items() if key not in ("loss_history", "validation_metrics")}
    summary.update({"min_grade": prepared["min_grade"], "test_pairs": len(pairs["test"]), "out": args.out,
                    "validation_corpus": config.validation_corpus})
    print(json.dumps(summary), file=stdout)
    return 0


def add_ranker_parser(subparsers) -> argparse.ArgumentParser:
    """Add `train-ranker` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "train-ranker", help="train a learned ranker for the hybrid search on judgments (JSON on stdout)",
        description="Split the judgments by query (seeded, 80/10/10, as finetune splits them), fit the "
                    "hybrid search on the catalog, and train a LambdaMART ranker (LightGBM) that reorders "
                    "its fused top --top-n by the signals the hybrid computed, stopping early on the "
                    "validation queries. The test queries are left for `evaluate-search --ranker OUT "
                    "--part test`. Prints one JSON object: queries, trees, val_ndcg@10_before/after, "
                    "train_s.")
    _judged_arguments(parser)
    parser.add_argument("--model", help="sentence-transformers model folder of the semantic source "
                                        "(default: the shipped all-MiniLM-L6-v2)")
    parser.add_argument("--preset", metavar="NAME", help="fuse as the stored search preset NAME says "
                                                         "(default: the shipped default fusion); its rules "
                                                         "and reranker are left out while training")
    parser.add_argument("--preset-version", type=int, metavar="N", help="default: the latest")
    parser.add_argument("--top-n", type=int, default=100, help="fused items the ranker orders (default 100)")
    parser.add_argument("--trees", type=int, default=1000, help="most boosting rounds (default 1000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True,
                        help="folder the ranker is saved to (ranker.txt, ranker.json)")
    parser.set_defaults(func=run_ranker)
    return parser


def run_ranker(args) -> int:
    """Run `train-ranker`; prints one JSON object on stdout, returns the exit status."""
    return json_command(_train_ranker, args)


def _train_ranker(args) -> dict:
    from pathlib import Path

    from recsys import factory
    from recsys.evaluation.search import preset_for
    from recsys.fusion import defaults
    from recsys.training.ltr import RankerConfig, train_ranker
    from recsys.evaluation.splits import split_judgments

    if args.model and not Path(args.model).is_dir():
        raise InputError(f"the model folder {args.model} does not exist")
    config = RankerConfig(top_n=args.top_n, trees=args.trees, seed=args.seed)
    fusion = preset_for(args.preset, args.preset_version, "hybrid")
    fusion = {**(fusion.to_dict() if fusion is not None else defaults.SEARCH),
              "rules": [], "reranker": None, "rerank_top": 0}
    catalog, judgments = read_judged(args)
    parts = split_judgments(judgments)
    if parts["train"].empty or parts["validation"].empty:
        raise InputError(f"{args.judgments}: {judgments['query'].nunique()} judged queries are too few to "
                         "split into train and validation queries; a learned ranker needs judgments of "
                         "more queries")
    print(f"indexing {len(catalog):,} products with the hybrid...", file=sys.stderr)
    hybrid = factory.retriever("hybrid", fusion=fusion, model_path=args.model).fit(catalog)
    print(f"training on {parts['train']['query'].nunique():,} queries, stopping on "
          f"{parts['validation']['query'].nunique():,}...", file=sys.stderr)
    result = train_ranker(hybrid, parts["train"], parts["validation"], config, args.out)
    return {"queries": {part: int(frame["query"].nunique()) for part, frame in parts.items()},
            "train_queries_used": result["train_queries"], "train_items": result["train_items"],
            "trees": result["trees"], "val_ndcg@10_before": round(result["val_ndcg@10_before"], 4),
            "val_ndcg@10_after": round(result["val_ndcg@10_after"], 4), "features_s": result["features_s"],
            "train_s": result["train_s"], "top_n": config.top_n, "out": args.out,
            "fusion": result["fusion"]}
