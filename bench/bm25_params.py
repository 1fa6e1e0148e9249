"""Benchmark: BM25's k1 and b on Home Depot's judged queries, queries spelling-corrected as served.

Reads ``../shared/data/homedepot/`` at run time and skips (exit status 0) when it
is absent. The dev judgments are split by query as in bench/finetune.py (seeded
hash, 80/10/10, seed 42); each (k1, b) is read on the train + validation queries
(7,494) and shown on the test queries (747), which the choice never looks at.
BM25 alone (`recsys.search.bm25`, Lucene variant) searches the whole catalog
(54,667 titles) through a lexical-only hybrid, so misspelled query words are
corrected first (`recsys.search.spelling`); nDCG@10 with gain = grade - 1.
Also times the correction alone: fitting the corrector on the product texts,
and `correct(query)` over every dev query, first (cold: each word looked up)
and second time (warm: words cached).

    python bench/bm25_params.py
    python bench/bm25_params.py --k1 0.5,0.9,1.2 --b 0.35,0.5,0.75

Prints a table and, as its last line, one JSON object (also written to
bench/results/bm25_params.json).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import data_missing, machine, save_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "bm25_params.json"


def time_spelling(texts, queries: list[str]) -> dict:
    import time

    import numpy as np

    from recsys.search.spelling import SpellingCorrector

    started = time.perf_counter()
    speller = SpellingCorrector().fit(texts.values)
    result = {"fit_s": round(time.perf_counter() - started, 2), "words": len(speller.counts),
              "queries": len(queries)}
    for run in ("cold", "warm"):
        times, changed = [], 0
        for query in queries:
            started = time.perf_counter()
            changed += speller.correct(query).changed
            times.append((time.perf_counter() - started) * 1000)
        result[f"{run}_ms_p50"] = round(float(np.percentile(times, 50)), 4)
        result[f"{run}_ms_p95"] = round(float(np.percentile(times, 95)), 4)
        result["changed"] = changed
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k1", default="0.5,0.9,1.2")
    parser.add_argument("--b", default="0.35,0.5,0.75")
    args = parser.parse_args(argv)
    if data_missing():
        return 0
    import pandas as pd

    from finetune import split
    from recsys.embeddings import configure_threads
    from recsys.evaluation.search import evaluate_full_catalog
    from recsys.search import get
    from recsys.search.hybrid import HybridRetriever
    from recsys.training.pairs import product_texts

    threads = configure_threads()
    load_before = os.getloadavg()
    catalog, _, _, parts = split(2.33, 42)
    chosen_on = pd.concat([parts["train"], parts["validation"]])
    texts = product_texts(catalog)
    rows = []
    for k1 in (float(value) for value in args.k1.split(",")):
        for b in (float(value) for value in args.b.split(",")):
            bm25 = get("bm25")(k1=k1, b=b).fit(catalog)
            lexical = HybridRetriever.from_sources([bm25], {"weights": {"bm25": 1.0}}, texts=texts)
            row = {"k1": k1, "b": b,
                   "train_validation_ndcg@10": round(evaluate_full_catalog(lexical, chosen_on)["ndcg@10"], 4),
                   "test_ndcg@10": round(evaluate_full_catalog(lexical, parts["test"])["ndcg@10"], 4)}
            print(f"k1 {k1:<5} b {b:<5} train+validation {row['train_validation_ndcg@10']:.4f}  "
                  f"test {row['test_ndcg@10']:.4f}", flush=True)
            rows.append(row)
    best = max(rows, key=lambda row: row["train_validation_ndcg@10"])
    spelling = time_spelling(texts, list(dict.fromkeys(pd.concat(parts.values())["query"])))
    print(f"spelling: fit {spelling['fit_s']} s ({spelling['words']:,} words); {spelling['changed']:,} of "
          f"{spelling['queries']:,} queries changed; correct() cold p50 {spelling['cold_ms_p50']} / p95 "
          f"{spelling['cold_ms_p95']} ms, warm p95 {spelling['warm_ms_p95']} ms")
    print(f"best on train + validation: k1 {best['k1']}, b {best['b']}")
    save_result({"queries": {"train_validation": int(chosen_on["query"].nunique()),
                             "test": int(parts["test"]["query"].nunique())},
                 "rows": rows, "best": best, "spelling": spelling,
                 "machine": machine(threads, load_before)}, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
