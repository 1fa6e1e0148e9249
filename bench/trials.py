"""Benchmark: a search trial on Home Depot, its human grades standing in for graders.

Reads ``../shared/data/homedepot/`` at run time and skips, exit status 0, when it is absent;
nothing from it is written into the repo. In a temporary SQLite database: the 54,667 titles
ingested as the catalog, the shipped default search preset and a semantic-only one, the search
engine fitted (`recsys.engines`, as the app fits it). A query set of `--queries` dev queries
(seeded draw) becomes a trial of the two presets (`recsys.trials.service.create_trial`, top 10 of
each), and Home Depot's grades of those queries are imported as the judgments of one grader
(`import_judgments`, scale 1-3, relevant from 2.5 as evaluate-search counts it). Reported: the
scorecard (nDCG@10, precision@10, judged@10 of each preset, the paired comparison) against
`recsys.evaluation.search.evaluate_full_catalog` (what `evaluate-search` runs) of the same engine
and presets on the same judgments, and the time of each step.

The two measure the same rankings with the same gains, with one difference by design: a trial
keeps what search serves (`matched_only`: a product no source found is not shown), evaluate-search
ranks the whole catalog; and the trial's nDCG@10 counts the queries with a grade of the pool,
evaluate-search all judged queries.

    python bench/trials.py [--queries 500]

Prints a table and, as its last line, one JSON object (also written to bench/results/trials.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "homedepot"
RESULTS = ROOT / "bench" / "results" / "trials.json"
sys.path.insert(0, str(ROOT))
from search import fitted_shop  # noqa: E402  (bench/search.py)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not (DATA / "products.csv").exists():
        print(f"skipped: {DATA} is absent (Home Depot is read from ../shared, never shipped)")
        return 0

    from db.engine import session_scope
    from recsys.embeddings import configure_threads
    from recsys.evaluation.search import evaluate_full_catalog
    from recsys.fusion import presets
    from recsys.fusion.defaults import SEARCH
    from recsys.trials import service as trials
    from recsys.trials.judging import Scale

    configure_threads()
    timings = {}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        catalog = pd.read_csv(DATA / "products.csv", dtype=str, keep_default_na=False)
        url = fitted_shop(Path(folder), catalog.rename(columns={"product_uid": "product_id",
                                                                "product_title": "title"}))
        with session_scope(url) as session:
            presets.save_preset(session, "search", "semantic-only",
                                {**SEARCH, "weights": {"bm25": 0.0, "semantic": 1.0}}, "bench")
        timings["ingest_and_fit_s"] = round(time.perf_counter() - started, 1)

        judgments = pd.read_csv(DATA / "judgments_dev.csv", dtype={"product_uid": str})
        judgments = judgments.rename(columns={"product_uid": "product_id", "relevance": "grade"})
        all_queries = sorted(judgments["query"].astype(str).unique())
        chosen = list(np.random.default_rng(args.seed).choice(all_queries, args.queries, replace=False))
        started = time.perf_counter()
        query_set = trials.save_query_set(url, "hd-dev-sample", chosen, "file", "bench")
        configurations = [trials.preset_configuration(url, "default"),
                          trials.preset_configuration(url, "semantic-only")]
        scale = Scale(lowest=1, highest=3, relevant=2.5, labels={"1": "irrelevant", "2": "partly", "3": "exact"})
        trial = trials.create_trial(url, "default vs semantic-only", query_set, configurations, "bench",
                                    depth=10, scale=scale)
        timings["trial_create_s"] = round(time.perf_counter() - started, 1)
        pool = sum(map(len, trial.pool().values()))
        subset = judgments[judgments["query"].isin(set(query_set.queries))]
        started = time.perf_counter()
        imported = trials.import_judgments(url, trial.id, subset[["query", "product_id", "grade"]], "homedepot",
                                           file="judgments_dev.csv")
        timings["import_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        card = trials.scorecard(url, trial.id)
        timings["scorecard_s"] = round(time.perf_counter() - started, 2)

        engine, _ = trials.search_engine(url)
        evaluated = {}
        for configuration in configurations:
            metrics = evaluate_full_catalog(engine.with_fusion(configuration.config), subset, min_grade=1)
            evaluated[configuration.name] = round(metrics["ndcg@10"], 4)

    rows = [{**config.to_dict(), "evaluate_search_ndcg@10": evaluated[config.name]} for config in card.configs]
    print(f"{len(query_set.queries)} queries, {pool:,} pooled pairs, {imported:,} grades imported; "
          f"{timings}")
    print(f"{'preset':<18}{'nDCG@10':>9}{'P@10':>8}{'judged@10':>11}{'queries':>9}{'evaluate-search':>17}")
    for row in rows:
        print(f"{row['name']:<18}{row['ndcg@10']:>9.4f}{row['precision@10']:>8.4f}{row['judged@10']:>11.4f}"
              f"{row['queries']:>9}{row['evaluate_search_ndcg@10']:>17.4f}")
    print(f"comparison: {card.comparison}")
    result = {"benchmark": "trials", "queries": len(query_set.queries), "pooled_pairs": pool,
              "grades_imported": imported, "configs": rows, "comparison": card.comparison, "timings": timings}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
