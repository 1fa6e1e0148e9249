"""Benchmark: every registered recommender on the shipped Online Retail data, top-10.

The invoice lines go through the ingest's own cleaning (`prepare_online_retail`:
products, purchase events, cancellations and charges dropped), the events into
interactions with the default `ImplicitWeights` (`to_interactions`; the pair's
last purchase is its timestamp), and the interactions into a per-user temporal
leave-last-out split: each customer's most recent product is held out (products
of one basket share a time; one of them is drawn with the seed), customers with
a single product stay in train. Every algorithm that can run (semantic gets the
catalog's titles) is fitted on train and scored by `evaluate_recommender`.

    python bench/recs.py                       # all algorithms, temporal split, k=10
    python bench/recs.py --split time          # train before, test after the 75% time quantile
    python bench/recs.py --algos ease item_knn
    python bench/recs.py --blas-threads 1      # single-threaded BLAS (see docs/benchmarks.md)

Prints a table and, as its last line, one JSON object (also written to
bench/results/recs.json). Bars: recommend p95 under 10 ms per user for every
algorithm; fitting them all under 60 s in total.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "recs.json"
P95_BAR_MS = 10.0
FIT_BAR_S = 60.0


def online_retail_interactions(path: Path):
    """(interactions, catalog) of the Online Retail file, cleaned as the ingest cleans it."""
    sys.path.insert(0, str(ROOT))
    from recsys.data.interactions import ImplicitWeights, to_interactions
    from recsys.data.online_retail import prepare_online_retail
    from recsys.data.readers import read_table

    frame, fmt = read_table(path)
    catalog, events = prepare_online_retail(frame, file=path.name, fmt=fmt)
    interactions = to_interactions(events.frame, ImplicitWeights())
    interactions = interactions.rename(columns={"last_timestamp": "timestamp"})
    return interactions, catalog.frame[["product_id", "title"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=ROOT / "data" / "online_retail.parquet")
    parser.add_argument("--split", choices=["temporal", "time"], default="temporal")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-users", type=int, default=200)
    parser.add_argument("--algos", nargs="*", help="default: every registered algorithm")
    parser.add_argument("--blas-threads", type=int,
                        help="limit BLAS to this many threads (threadpoolctl); default: as installed")
    args = parser.parse_args()
    if args.blas_threads:
        import numpy  # noqa: F401 - load numpy's BLAS first: the limit applies to loaded libraries
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")

    sys.path.insert(0, str(ROOT))
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from recsys.evaluation.recs import cannot_run, evaluate_recommender
    from recsys.evaluation.splits import SplitConfig, split_interactions
    from recsys.recommenders import names

    start = time.perf_counter()
    interactions, catalog = online_retail_interactions(args.file)
    prepare_s = time.perf_counter() - start
    config = SplitConfig(kind=args.split, seed=args.seed)
    train, test = split_interactions(interactions, config)

    k = args.k
    columns = [("algo", "algo", "{:<18}"), (f"ndcg@{k}", "ndcg", "{:>7.4f}"),
               (f"precision@{k}", "prec", "{:>7.4f}"), (f"recall@{k}", "recall", "{:>7.4f}"),
               (f"map@{k}", "map", "{:>7.4f}"), (f"coverage@{k}", "cover", "{:>6.3f}"),
               (f"diversity@{k}", "divers", "{:>6.3f}"), (f"novelty@{k}", "novel", "{:>6.2f}"),
               ("fit_s", "fit s", "{:>7.2f}"), ("recommend_ms_p50", "p50 ms", "{:>7.2f}"),
               ("recommend_ms_p95", "p95 ms", "{:>7.2f}")]
    header = "  ".join(f"{title:<18}" if key == "algo" else f"{title:>{len(fmt.format(0.0))}}"
                       for key, title, fmt in columns)
    results, skipped = [], {}
    for name in args.algos or names():
        reason = cannot_run(name, catalog)
        if reason:
            skipped[name] = reason
            continue
        try:
            results.append(evaluate_recommender(name, train, test, k=k, catalog=catalog, seed=args.seed,
                                                latency_users=args.latency_users))
        except (ValueError, MemoryError) as error:
            skipped[name] = str(error)
    print(f"Online Retail: {len(interactions):,} interactions, {interactions['user_id'].nunique():,} "
          f"users, {interactions['product_id'].nunique():,} products; {args.split} split: "
          f"{len(train):,} train, {len(test):,} test pairs; k={k}")
    print(header)
    for result in results:
        print("  ".join(fmt.format(result[key]) for key, _, fmt in columns))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")

    import pandas as pd

    fit_total = sum(r["fit_s"] for r in results)
    worst_p95 = max((r["recommend_ms_p95"] for r in results), default=0.0)
    summary = {
        "benchmark": "recommenders_online_retail",
        "date": date.today().isoformat(),
        "file": str(args.file.relative_to(ROOT) if args.file.is_relative_to(ROOT) else args.file),
        "split": {**config.to_dict(), **test.attrs.get("split", {})},
        "k": k,
        "interactions": len(interactions),
        "prepare_s": round(prepare_s, 2),
        "fit_s_total": round(fit_total, 2),
        "fit_bar_met": fit_total < FIT_BAR_S,
        "recommend_ms_p95_worst": worst_p95,
        "p95_bar_met": worst_p95 < P95_BAR_MS,
        "blas_threads": args.blas_threads,
        "skipped": skipped,
        "results": results,
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(f"fit, all algorithms: {fit_total:.1f} s (bar {FIT_BAR_S:.0f} s: "
          f"{'met' if summary['fit_bar_met'] else 'MISSED'}); worst recommend p95: {worst_p95:.2f} ms "
          f"(bar {P95_BAR_MS:.0f} ms: {'met' if summary['p95_bar_met'] else 'MISSED'})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
