"""Benchmark: fusion quality and speed on Home Depot's judged queries.

Reads ``../shared/data/homedepot/`` at run time and skips, exit status 0, when
it is absent; nothing from it is written into the repo.

1. Quality (full-catalog protocol, `recsys.evaluation.search`): nDCG@10 and
   Recall@100 of bm25, semantic and the hybrid under the shipped default search
   preset (weighted min-max, BM25 0.75 : semantic 0.25, the semantic source on
   the int8 ONNX encoder as the preset says), plus RRF for
   comparison, on all dev queries and on two seeded halves of them (the weight
   was chosen on half A and checked on half B). Bar: the default hybrid beats
   both sources.
2. Re-fusion speed: the candidate lists of 200 seeded validation queries are
   cached once (`recsys.evaluation.live.search_sample`); then, for each of
   several weight settings, the time to re-fuse, re-rank and re-score them
   (nDCG@10, Recall@100, coverage@10, diversity@10) with
   `recsys.evaluation.live.evaluate_fusion`, as the Fusion & rules page does
   when a slider moves. Median over the settings. Bar: under 1 s.
3. Rules overhead: 200 single searches, one at a time after a warm-up, each
   timed by stage (`recsys.timing`): each source's retrieval (the encoder
   included for semantic), then fusion and four rules: a filter on in_stock, a
   boost and a bury on brand, and a query-scoped pin. Home Depot's file has no
   attributes, so both are stand-ins: brand is the first word of the title,
   and a seeded 10% of products are out of stock. The sources are timed alone
   (semantic with its encoder, BM25 keeping its 100 candidates); the fused
   search is timed as served, without explanations (and once with them, for
   reference). Reports p50 and p95 of (fused search with rules) minus (its
   slower source), and of the fuse + rules stages alone. Bar: the former
   under 5 ms p95.

    python bench/fusion.py

Prints a table and, as its last line, one JSON object (also written to
bench/results/fusion.json).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "fusion.json"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from search import data_missing, load_data, machine, save_result  # noqa: E402  (bench/search.py)

REFUSE_BAR_S = 1.0
RULES_BAR_MS = 5.0


def halves(queries: list[str], seed: int = 7) -> tuple[set[str], set[str]]:
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(queries))
    first = {queries[i] for i in order[: len(queries) // 2]}
    return first, set(queries) - first


def quality(fitted: dict, judgments) -> list[dict]:
    from recsys.evaluation.search import evaluate_full_catalog, graded_qrels

    queries = sorted(graded_qrels(judgments))
    half_a, half_b = halves(queries)
    rows = []
    for name, retriever in fitted.items():
        row = {"method": name}
        for label, subset in (("all", None), ("A", half_a), ("B", half_b)):
            part = judgments if subset is None else judgments[judgments["query"].isin(subset)]
            metrics = evaluate_full_catalog(retriever, part)
            suffix = "" if label == "all" else f"_{label}"
            row[f"ndcg@10{suffix}"] = round(metrics["ndcg@10"], 4)
            if label == "all":
                row["recall@100"] = round(metrics["recall@100"], 4)
        rows.append(row)
        print(f"{name}: nDCG@10 {row['ndcg@10']:.4f}", file=sys.stderr)
    return rows


def refusion(hybrid, judgments) -> dict:
    import numpy as np

    from recsys.evaluation.live import evaluate_fusion, fuse_search, search_sample
    from recsys.fusion import FusionConfig

    start = time.perf_counter()
    sample = search_sample(hybrid, judgments, size=200, seed=1)
    cache_s = time.perf_counter() - start
    fuse = fuse_search(hybrid)
    evaluate_fusion(sample, hybrid.fusion, fuse)  # warm-up: ranx compiles its kernels
    settings = [{"bm25": 1.0 - w, "semantic": w} for w in (0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8)]
    timings = []
    for weights in settings:
        config = FusionConfig(**{**hybrid.fusion.to_dict(), "weights": weights})
        start = time.perf_counter()
        evaluate_fusion(sample, config, fuse)
        timings.append(time.perf_counter() - start)
    with_rules = FusionConfig(**{**hybrid.fusion.to_dict(), "rules": rule_set(hybrid)})
    start = time.perf_counter()
    evaluate_fusion(sample, with_rules, fuse)
    rules_s = time.perf_counter() - start
    return {"queries": len(sample.keys), "candidate_cache_s": round(cache_s, 2),
            "refuse_and_score_s_median": round(float(np.median(timings)), 3),
            "refuse_and_score_s_max": round(max(timings), 3),
            "refuse_and_score_with_rules_s": round(rules_s, 3), "settings": len(settings)}


def rule_set(hybrid) -> list[dict]:
    """A filter on stock, a boost and a bury on the stand-in brand, and a query-scoped pin."""
    from collections import Counter

    brands = Counter(attributes["brand"] for attributes in hybrid.attributes.values())
    common = [brand for brand, _ in brands.most_common(2)]
    return [{"kind": "filter", "field": "in_stock", "value": "true"},
            {"kind": "boost", "field": "brand", "value": common[0], "strength": 0.5},
            {"kind": "bury", "field": "brand", "value": common[1], "strength": 0.2},
            {"kind": "pin", "product_id": str(hybrid.product_ids[0]), "position": 3,
             "when_query": "angle bracket"}]


def overhead(hybrid, judgments, count: int = 200, warmup: int = 20) -> dict:
    import numpy as np

    from recsys.fusion import FusionConfig
    from recsys.timing import StageTimer

    ruled = hybrid.with_fusion(FusionConfig(**{**hybrid.fusion.to_dict(), "rules": rule_set(hybrid)}))
    queries = sorted(set(judgments["query"]))
    chosen = [queries[i] for i in np.random.default_rng(3).permutation(len(queries))[:count]]
    for query in chosen[:warmup]:
        ruled.search(query, 10)
    added, fuse_rules, totals, slower, explained = [], [], [], [], []
    for query in chosen:
        sources = []
        for source in ruled.sources:
            start = time.perf_counter()
            source.search(query, ruled.fusion.candidates, matched_only=True)
            sources.append((time.perf_counter() - start) * 1000)
        with StageTimer() as timer:
            start = time.perf_counter()
            ruled.search(query, 10, explain=False)  # as served; explanations only on request
            total = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        ruled.search(query, 10)
        explained.append((time.perf_counter() - start) * 1000 - max(sources))
        totals.append(total)
        slower.append(max(sources))
        added.append(total - max(sources))
        fuse_rules.append(timer.ms.get("fuse", 0.0) + timer.ms.get("rules", 0.0))

    def percentiles(values):
        return {"p50": round(float(np.percentile(values, 50)), 2),
                "p95": round(float(np.percentile(values, 95)), 2)}

    return {"queries": len(chosen), "rules": len(ruled.fusion.rules),
            "fused_search_ms": percentiles(totals), "slower_source_ms": percentiles(slower),
            "added_over_slower_source_ms": percentiles(added),
            "added_with_explanations_ms": percentiles(explained),
            "fuse_and_rules_stages_ms": percentiles(fuse_rules)}


def main() -> int:
    if data_missing():
        return 0

    from recsys.embeddings import configure_threads
    from recsys.fusion.presets import default_config
    from recsys.search import get
    from recsys.search.hybrid import HybridRetriever

    threads = configure_threads()
    load_before = os.getloadavg()
    catalog, judgments = load_data()
    import numpy as np

    in_stock = np.random.default_rng(0).random(len(catalog)) >= 0.1
    catalog = catalog.assign(brand=catalog["title"].str.split().str[0].str.lower(), in_stock=in_stock)
    preset = default_config("search")
    bm25, semantic = get("bm25")().fit(catalog), get("semantic")(backend=preset.backend).fit(catalog)
    attributes = {p: {"brand": b, "in_stock": bool(s)}
                  for p, b, s in zip(catalog["product_id"], catalog["brand"], catalog["in_stock"])}
    hybrid = HybridRetriever.from_sources([bm25, semantic], preset, attributes)
    rrf = HybridRetriever.from_sources(
        [bm25, semantic], {"method": "rrf", "rrf_k": 60, "weights": {"bm25": 1.0, "semantic": 0.5}})
    rows = quality({"bm25": bm25, f"semantic ({preset.backend})": semantic, "hybrid (default preset)": hybrid,
                    "hybrid rrf k60 1:0.5": rrf}, judgments)
    speed = refusion(hybrid, judgments)
    rules = overhead(hybrid, judgments)

    print(f"\n{'method':<26}{'nDCG@10':>9}{'half A':>8}{'half B':>8}{'R@100':>8}")
    for row in rows:
        print(f"{row['method']:<26}{row['ndcg@10']:>9.4f}{row['ndcg@10_A']:>8.4f}"
              f"{row['ndcg@10_B']:>8.4f}{row['recall@100']:>8.4f}")
    print(f"\nre-fuse + re-score {speed['queries']} cached queries: median "
          f"{speed['refuse_and_score_s_median']} s (max {speed['refuse_and_score_s_max']} s; with rules "
          f"{speed['refuse_and_score_with_rules_s']} s; caching the candidates took "
          f"{speed['candidate_cache_s']} s once)")
    print(f"fused search with {rules['rules']} rules: {rules['fused_search_ms']} ms; slower source "
          f"{rules['slower_source_ms']} ms; added {rules['added_over_slower_source_ms']} ms "
          f"({rules['added_with_explanations_ms']} ms with explanations); "
          f"fuse + rules stages {rules['fuse_and_rules_stages_ms']} ms")
    by_name = {row["method"]: row["ndcg@10"] for row in rows}
    result = {
        "benchmark": "fusion", "date": date.today().isoformat(),
        "machine": machine(threads, load_before),
        "catalog_products": len(catalog), "default_preset": default_config("search").to_dict(),
        "quality": rows, "refusion": speed, "rules_overhead": rules,
        "bars": {
            "default_hybrid_beats_bm25_and_semantic":
                by_name["hybrid (default preset)"] > max(by_name["bm25"], by_name[f"semantic ({preset.backend})"]),
            "refuse_200_queries_under_1s": speed["refuse_and_score_s_max"] < REFUSE_BAR_S,
            "fused_search_with_rules_adds_under_5ms_p95":
                rules["added_over_slower_source_ms"]["p95"] < RULES_BAR_MS,
        },
    }
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
