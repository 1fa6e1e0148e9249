"""Benchmark: lexical, semantic and hybrid search on Home Depot's judged queries.

Reads ``../shared/data/homedepot/`` (products.csv: 54,667 titles; judgments_dev.csv:
51,671 graded pairs over 8,241 queries) at run time and skips, exit status 0,
when it is absent; nothing from it is written into the repo (catalog
embeddings are cached under var/, which git ignores).

For each of bm25, semantic, hybrid (its default fusion: weighted min-max, BM25
0.75 and semantic 0.25, queries as typed), hybrid+spelling and bm25+spelling (the
same with misspelled query words corrected against the catalog's words first, as
served: `recsys.search.spelling`) and hybrid-rrf (reciprocal rank fusion, k 60, BM25 1
and semantic 0.5: the default before issue 4), with `recsys.evaluation.search`:
nDCG@10 over the whole catalog (gain = grade - 1), Recall@100 of products
graded >= 2.5, nDCG@10 of reranking each query's judged products, and the p50
and p95 latency of one `search` (query encoding included) over 200 queries
timed one at a time after a warm-up. Bar: semantic and hybrid p95 < 30 ms.

Then the catalog embedding throughput of our path (`recsys.embeddings.encode`,
what `cached_encode` runs on a cache miss) against a bare
`SentenceTransformer.encode` with the library's defaults, on the same titles,
alternating ours and bare twice in this one process, the faster of each pair
kept. Bar: ours >= 90% of bare.

    python bench/search.py
    python bench/search.py --throughput-titles 0     # throughput on every title (slow)

Prints a table and, as its last line, one JSON object (also written to
bench/results/search.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "homedepot"
RESULTS = ROOT / "bench" / "results" / "search.json"
LATENCY_BAR_MS = 30.0
THROUGHPUT_BAR = 0.90


def load_data():
    import pandas as pd

    catalog = pd.read_csv(DATA / "products.csv", dtype=str, keep_default_na=False)
    judgments = pd.read_csv(DATA / "judgments_dev.csv", dtype={"product_uid": str, "query": str},
                            keep_default_na=False)
    catalog = catalog.rename(columns={"product_uid": "product_id", "product_title": "title"})
    judgments = judgments.rename(columns={"product_uid": "product_id", "relevance": "grade"})
    return catalog, judgments


def fitted_shop(folder: Path, catalog) -> str:
    """The URL of a new SQLite database in `folder` holding `catalog` (product_id, title) as the
    active catalog, the shipped presets, and the engines fitted as the app fits them."""
    from db.engine import session_scope, upgrade
    from recsys.data import IngestOptions, ingest_file
    from recsys.engines import fit_active
    from recsys.fusion import presets

    url = f"sqlite:///{folder}/shop.db"
    upgrade(url)
    catalog.to_csv(Path(folder) / "catalog.csv", index=False)
    ingest_file(Path(folder) / "catalog.csv", IngestOptions("catalog"), actor="bench", url=url)
    with session_scope(url) as session:
        presets.ensure_default_presets(session)
    fit_active(url)
    return url


def save_result(result: dict, path: Path) -> None:
    """Write `result` as JSON to `path` and print it as the benchmark's last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


def data_missing() -> bool:
    """Whether the Home Depot files are absent, saying so on stderr (the benchmark then skips)."""
    if (DATA / "products.csv").exists() and (DATA / "judgments_dev.csv").exists():
        return False
    print(f"skipped: the Home Depot data is not at {DATA} (it is never copied into the repo)",
          file=sys.stderr)
    return True


def machine(threads: int, load_before: tuple[float, ...], **extra) -> dict:
    """What a result was measured on: cores, threads, Python, load before and now."""
    import torch

    return {"cpus": os.cpu_count(), "torch_threads": threads, "torch_threads_now": torch.get_num_threads(),
            "python": platform.python_version(), **extra,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


def throughput(titles: list[str]) -> dict:
    """Sentences per second of our encode and of a bare SentenceTransformer, same titles."""
    from sentence_transformers import SentenceTransformer

    from recsys import embeddings

    bare = SentenceTransformer(str(embeddings.default_model_path()), device="cpu")
    warm = titles[:256]
    embeddings.encode(warm)
    bare.encode(warm, show_progress_bar=False)
    runs: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(2):
        start = time.perf_counter()
        embeddings.encode(titles)
        runs["ours"].append(len(titles) / (time.perf_counter() - start))
        start = time.perf_counter()
        bare.encode(titles, show_progress_bar=False)
        runs["bare"].append(len(titles) / (time.perf_counter() - start))
    ours, theirs = max(runs["ours"]), max(runs["bare"])
    return {"titles": len(titles), "ours_per_s": round(ours, 1), "bare_per_s": round(theirs, 1),
            "ratio": round(ours / theirs, 3),
            "runs_per_s": {k: [round(v, 1) for v in values] for k, values in runs.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="bm25,semantic,hybrid,hybrid-rrf,bm25+spelling,hybrid+spelling",
                        help="hybrid-rrf: the hybrid fused by RRF (k 60, BM25 1, semantic 0.5)")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--throughput-titles", type=int, default=5000,
                        help="titles encoded by each side (0: the whole catalog)")
    args = parser.parse_args()
    if data_missing():
        return 0

    sys.path.insert(0, str(ROOT))
    import numpy as np

    from recsys.embeddings import configure_threads
    from recsys.evaluation.search import evaluate_search
    from recsys.search import get
    from recsys.search.hybrid import HybridRetriever

    threads = configure_threads()
    load_before = os.getloadavg()
    catalog, judgments = load_data()
    methods = args.methods.split(",")
    fitted, fit_seconds, rows = {}, {}, []
    for name in ("bm25", "semantic"):
        if name in methods or any(m.startswith("hybrid") or m.endswith("+spelling") for m in methods):
            start = time.perf_counter()
            fitted[name] = get(name)().fit(catalog)
            fit_seconds[name] = round(time.perf_counter() - start, 1)
            print(f"{name}: indexed {len(catalog):,} products in {fit_seconds[name]} s", file=sys.stderr)
    if "hybrid" in methods:
        fitted["hybrid"] = HybridRetriever.from_sources([fitted["bm25"], fitted["semantic"]])
    if "hybrid+spelling" in methods or "bm25+spelling" in methods:
        from recsys.training.pairs import product_texts

        texts = product_texts(catalog)
        fitted["hybrid+spelling"] = HybridRetriever.from_sources([fitted["bm25"], fitted["semantic"]],
                                                                 texts=texts)
        fitted["bm25+spelling"] = HybridRetriever.from_sources([fitted["bm25"]], {"weights": {"bm25": 1.0}},
                                                               texts=texts)
    if "hybrid-rrf" in methods:
        fitted["hybrid-rrf"] = HybridRetriever.from_sources(
            [fitted["bm25"], fitted["semantic"]],
            {"method": "rrf", "rrf_k": 60, "weights": {"bm25": 1.0, "semantic": 0.5}})
    for name in methods:
        start = time.perf_counter()
        metrics = evaluate_search(fitted[name], judgments, latency_sample=args.latency_queries)
        seconds = round(time.perf_counter() - start, 1)
        print(f"{name}: evaluated in {seconds} s", file=sys.stderr)
        rows.append({"method": name, **{k: (round(v, 4) if isinstance(v, float) else v)
                                        for k, v in metrics.items()}, "eval_seconds": seconds})

    titles = catalog["title"].tolist()
    if args.throughput_titles:
        rng = np.random.default_rng(0)
        titles = [titles[i] for i in rng.permutation(len(titles))[:args.throughput_titles]]
    encode = throughput(titles)

    print(f"\n{'method':<14}{'nDCG@10':>9}{'R@100':>8}{'rerank':>8}{'p50 ms':>8}{'p95 ms':>8}")
    for row in rows:
        print(f"{row['method']:<14}{row['ndcg@10']:>9.4f}{row['recall@100']:>8.4f}"
              f"{row['rerank_ndcg@10']:>8.4f}{row['latency_ms_p50']:>8.1f}{row['latency_ms_p95']:>8.1f}")
    print(f"\ncatalog embedding, {encode['titles']:,} titles: ours {encode['ours_per_s']}/s, "
          f"bare SentenceTransformer.encode {encode['bare_per_s']}/s, ratio {encode['ratio']:.2f}")
    latency_ok = all(row["latency_ms_p95"] < LATENCY_BAR_MS for row in rows
                     if row["method"] in ("semantic", "hybrid", "hybrid-rrf"))
    result = {
        "benchmark": "search", "date": date.today().isoformat(),
        "machine": machine(threads, load_before),
        "catalog_products": len(catalog), "judgments": len(judgments),
        "relevant_grade": 2.5, "fit_seconds": fit_seconds, "methods": rows, "encode": encode,
        "bars": {"latency_p95_under_30ms": latency_ok,
                 "encode_at_least_90pct_of_bare": encode["ratio"] >= THROUGHPUT_BAR},
    }
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
