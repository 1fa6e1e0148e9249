"""Benchmark: fusing EASE with another recommender on Online Retail, weights chosen on validation.

The data and the outer split are `bench/recs.py`'s (leave-last-out by default, `--split time` for the
time cutoff). The training part is split again the same way (fit part + validation part, as
`python -m recsys tune` does); every source is fitted once on the fit part, each user's candidate
lists (100 per source) are computed once, and each weight of the second source (EASE gets 1 - w) is
scored on validation by fusing the cached lists with `recsys.fusion.fuse` (weighted, min-max, the
shipped method). The best weight on validation is then refitted on the whole training part as a
`hybrid` recommender and scored on test by `evaluate_recommender`, next to EASE alone. The test part
is never looked at while choosing.

    python bench/recs_fusion.py --sources ease als
    python bench/recs_fusion.py --sources ease mult_vae --split time

Prints the validation curve and the test rows, and writes bench/results/recs_fusion-<sources>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from recs import online_retail_interactions  # noqa: E402  (bench/recs.py)

WEIGHTS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def validation_curve(sources: list[str], fit_part, validation, k: int, methods: list[str]) -> list[dict]:
    """nDCG@k on `validation` of each weight of the second source (and method), sources fitted once."""
    from recsys.evaluation.metrics import ranking_metrics
    from recsys.fusion import FusionConfig
    from recsys.recommenders import get
    from recsys.recommenders.hybrid import HybridRecommender

    columns = [c for c in ("user_id", "product_id", "weight", "timestamp") if c in fit_part.columns]
    fitted = [get(name)().fit(fit_part[columns]) for name in sources]
    hybrid = HybridRecommender.from_sources(fitted, FusionConfig(weights=dict.fromkeys(sources, 1.0)))
    known = set(fit_part["user_id"].astype(str))
    pairs = validation[["user_id", "product_id"]].astype(str)
    pairs = pairs[pairs["user_id"].isin(known)]
    qrels = {user: dict.fromkeys(items, 1.0) for user, items in pairs.groupby("user_id")["product_id"]}
    users = list(qrels)
    lists = hybrid.candidates(users, depth=100)
    curve = []
    for method in methods:
        for weight in WEIGHTS:
            fusion = FusionConfig(method=method, weights={sources[0]: 1.0 - weight, sources[1]: weight})
            run = {user: [(item.product_id, item.score) for item in hybrid.fuse_candidates(found, k, fusion)]
                   for user, found in zip(users, lists)}
            score = ranking_metrics(qrels, run, k=k, metrics=["ndcg"])[f"ndcg@{k}"]
            curve.append({"method": method, "weight": weight, f"ndcg@{k}": score})
            logging.info("%s %s=%.1f: validation ndcg@%d %.4f", method, sources[1], weight, k, score)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=ROOT / "data" / "online_retail.parquet")
    parser.add_argument("--split", choices=["temporal", "time"], default="temporal")
    parser.add_argument("--sources", nargs=2, default=["ease", "als"])
    parser.add_argument("--methods", nargs="*", default=["weighted"])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from recsys.evaluation.recs import evaluate_recommender
    from recsys.evaluation.splits import SplitConfig, split_interactions

    interactions, catalog = online_retail_interactions(args.file)
    split = SplitConfig(kind=args.split, seed=args.seed)
    train, test = split_interactions(interactions, split)
    inner = replace(split, cutoff=None) if split.kind == "time" else split
    fit_part, validation = split_interactions(train, inner)
    k = args.k
    curve = validation_curve(args.sources, fit_part, validation, k, args.methods)
    best = max(curve, key=lambda row: row[f"ndcg@{k}"])
    fusion = {"method": best["method"], "weights": {args.sources[0]: 1.0 - best["weight"],
                                                    args.sources[1]: best["weight"]},
              "normalisation": "minmax", "candidates": 100}
    rows = [evaluate_recommender(args.sources[0], train, test, k=k, catalog=catalog, seed=args.seed),
            evaluate_recommender("hybrid", train, test, k=k, catalog=catalog, seed=args.seed,
                                 params={"sources": args.sources, "fusion": fusion})]
    print(f"validation ({args.split} split of train): best {best}")
    for row in curve:
        print(f"  {row['method']:<9} {args.sources[1]} weight {row['weight']:.1f}: {row[f'ndcg@{k}']:.4f}")
    for row in rows:
        print(f"test {row['algo']:<8} ndcg@{k} {row[f'ndcg@{k}']:.4f}  recall@{k} {row[f'recall@{k}']:.4f}  "
              f"coverage {row[f'coverage@{k}']:.3f}  fit {row['fit_s']:.2f} s  "
              f"p50 {row['recommend_ms_p50']:.2f} ms  p95 {row['recommend_ms_p95']:.2f} ms")
    summary = {"benchmark": "recommender_fusion_online_retail", "date": date.today().isoformat(),
               "split": args.split, "sources": args.sources, "k": k, "validation": curve,
               "chosen": fusion, "test": rows}
    out = ROOT / "bench" / "results" / f"recs_fusion-{'-'.join(args.sources)}-{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps({"chosen": fusion, "test_ndcg": {r["algo"]: r[f"ndcg@{k}"] for r in rows}}))


if __name__ == "__main__":
    main()
