"""Benchmark: a floor under the semantic source's cosine, read on Home Depot's judged queries.

Without a floor the semantic source returns its nearest products for any query, so a query
that nothing in the catalog matches ("xyzzy qqq") still gets ten arbitrary products. A floor
(`FusionConfig.min_scores["semantic"]`) drops candidates below a cosine. This reads, for each
floor, on the shipped search as served (MiniLM on onnx-int8, BM25, the default preset's
weights 0.75 / 0.25, spelling correction):

- nDCG@10 and Recall@100 of the hybrid over the whole catalog (54,667 titles, gain = grade - 1)
  on the train + validation queries (the HD split of bench/finetune.py: seeded hash, 80/10/10),
  and on the test queries, which the choice never looks at;
- the share of judged queries left with no semantic candidate;
- on nonsense queries (seeded random letter strings, and a few typed by hand), the share that
  still get a semantic candidate and the share that get any hybrid result.

The floor chosen is the highest whose train + validation nDCG@10 is within `--tolerance`
(0.001) of the best floor's and whose Recall@100 is within `--recall-tolerance` (0.005) of no
floor's: the most nonsense it removes at no measurable cost.

Reads ``../shared/data/homedepot/`` at run time and skips (exit status 0) when it is absent.

    python bench/semantic_floor.py
    python bench/semantic_floor.py --floors 0,0.2,0.3,0.4 --nonsense 300

Prints a table and, as its last line, one JSON object (also written to
bench/results/semantic_floor.json).
"""

from __future__ import annotations

import argparse
import os
import random
import string
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import data_missing, machine, save_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "semantic_floor.json"
TYPED_NONSENSE = ["xyzzy qqq", "asdfgh", "qwerty uiop", "zxcvbnm", "blorp", "jjjj kkkk", "lorem ipsum dolor",
                  "hjkl", "foo bar baz", "aaaaaa"]


def nonsense_queries(count: int, seed: int) -> list[str]:
    """`count` queries of one to three random lower-case "words" of 3-8 letters, and the typed ones."""
    rng = random.Random(seed)
    made = [" ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 8)))
                     for _ in range(rng.randint(1, 3))) for _ in range(count)]
    return TYPED_NONSENSE + made


def scores(hybrid, queries: list[str], lists: list[dict], judgments, fusion) -> dict[str, float]:
    from recsys.evaluation.metrics import ndcg_and_recall
    from recsys.evaluation.search import DEFAULT_RELEVANT_GRADE, graded_qrels, relevant_qrels

    results = hybrid.rank_candidates(queries, lists, fusion)
    run = {query: [(item.product_id, item.score) for item in result.items[:100]]
           for query, result in zip(queries, results)}
    return ndcg_and_recall(graded_qrels(judgments), relevant_qrels(judgments, DEFAULT_RELEVANT_GRADE), run)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floors", default="0,0.2,0.3,0.35,0.4,0.425,0.45,0.475,0.5,0.55")
    parser.add_argument("--nonsense", type=int, default=500, help="random nonsense queries (plus the typed ones)")
    parser.add_argument("--tolerance", type=float, default=0.001)
    parser.add_argument("--recall-tolerance", type=float, default=0.005)
    args = parser.parse_args(argv)
    if data_missing():
        return 0
    import pandas as pd

    from finetune import split
    from recsys.embeddings import configure_threads
    from recsys.fusion import FusionConfig, above_floors
    from recsys.fusion.presets import default_config
    from recsys.search import get

    threads = configure_threads()
    load_before = os.getloadavg()
    catalog, _, _, parts = split(2.33, 42)
    hybrid = get("hybrid")().fit(catalog)  # the shipped default: onnx-int8, spelling on
    base = default_config("search").to_dict()
    chosen_on = pd.concat([parts["train"], parts["validation"]])
    judged = {"train_validation": chosen_on, "test": parts["test"]}
    queries = {part: list(dict.fromkeys(frame["query"].astype(str))) for part, frame in judged.items()}
    lists = {part: hybrid.candidates(found, depth=base["candidates"]) for part, found in queries.items()}
    nonsense = nonsense_queries(args.nonsense, seed=7)
    nonsense_lists = hybrid.candidates(nonsense, depth=base["candidates"])
    rows = []
    for floor in (float(value) for value in args.floors.split(",")):
        fusion = FusionConfig.from_dict({**base, "min_scores": {"semantic": floor} if floor else {}})
        row = {"floor": floor}
        for part in judged:
            measured = scores(hybrid, queries[part], lists[part], judged[part], fusion)
            row[f"{part}_ndcg@10"] = round(measured["ndcg@10"], 4)
            row[f"{part}_recall@100"] = round(measured["recall@100"], 4)
        empty = [not above_floors(found, fusion).get("semantic") for found in lists["test"]]
        row["test_queries_without_semantic"] = round(sum(empty) / len(empty), 4)
        kept = [above_floors(found, fusion) for found in nonsense_lists]
        row["nonsense_with_semantic"] = round(sum(bool(found.get("semantic")) for found in kept) / len(kept), 4)
        row["nonsense_with_any_result"] = round(
            sum(bool(found.get("semantic") or found.get("bm25")) for found in kept) / len(kept), 4)
        rows.append(row)
        print(f"floor {floor:<5} train+validation nDCG@10 {row['train_validation_ndcg@10']:.4f} "
              f"R@100 {row['train_validation_recall@100']:.4f} | test {row['test_ndcg@10']:.4f} "
              f"R@100 {row['test_recall@100']:.4f} | test queries without semantic "
              f"{row['test_queries_without_semantic']:.1%} | nonsense with semantic {row['nonsense_with_semantic']:.1%},"
              f" with any result {row['nonsense_with_any_result']:.1%}", flush=True)
    best = max(row["train_validation_ndcg@10"] for row in rows)
    unfloored = min(rows, key=lambda row: row["floor"])["train_validation_recall@100"]
    chosen = max((row for row in rows if row["train_validation_ndcg@10"] >= best - args.tolerance
                  and row["train_validation_recall@100"] >= unfloored - args.recall_tolerance),
                 key=lambda row: row["floor"])
    print(f"chosen on train + validation: floor {chosen['floor']} (nDCG@10 {chosen['train_validation_ndcg@10']}, "
          f"best {best}, tolerance {args.tolerance}; Recall@100 {chosen['train_validation_recall@100']}, "
          f"{unfloored} without a floor, tolerance {args.recall_tolerance})")
    save_result({"queries": {part: len(found) for part, found in queries.items()}, "nonsense": len(nonsense),
                 "rows": rows, "chosen": chosen, "tolerance": args.tolerance,
                 "recall_tolerance": args.recall_tolerance,
                 "machine": machine(threads, load_before)}, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
