"""Benchmark: the embedding model on PyTorch, ONNX fp32 and ONNX int8, speed and nDCG.

Reads ``../shared/data/homedepot/`` (products.csv: 54,667 titles; judgments_dev.csv:
8,241 queries) at run time and skips, exit status 0, when it is absent; nothing
from it is written into the repo (catalog embeddings are cached under var/,
ONNX exports under var/onnx/, both ignored by git).

All in one process, with `recsys.embeddings.encode` (the path the semantic
retriever takes):

1. Latency of encoding one short query: 200 distinct dev queries (seeded),
   after 20 warm-up encodings, each query encoded by every backend in turn so
   that a change of load on the machine hits all backends alike; p50 and p95,
   and the speed-up of each ONNX backend over torch (ratio of p50s). Queries go
   through `recsys.embeddings.encode_queries` (on int8 the queries' own graph,
   one activation scale per query); with onnx-int8, ``onnx-int8 rows`` times the
   products' graph (one scale per token row) in the same turns.
2. Threads of the onnxruntime session: the same timing with 1 and 2 intra-op
   threads, and catalog-encoding throughput (titles/s) on a sample of titles.
3. Quality: the semantic retriever on the whole catalog with each backend's
   catalog and query embeddings; nDCG@10 and Recall@100 by
   `recsys.evaluation.search.evaluate_full_catalog`, and the p50/p95 of one
   whole `search` (query encoding and the catalog product).

Bars (issue 6): onnx-fp32 at least 3 times faster per query than torch with the
same nDCG@10 to three decimals; onnx-int8 served by default only if its nDCG@10
is within 0.01 of fp32's.

    python bench/encoders.py
    python bench/encoders.py --backends torch,onnx-fp32     # skip int8

Prints a table and, as its last line, one JSON object (also written to
bench/results/encoders.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "encoders.json"
SPEEDUP_BAR = 3.0
INT8_NDCG_TOLERANCE = 0.01
WARMUP = 20
sys.path.insert(0, str(ROOT / "bench"))

from search import data_missing, load_data, machine, save_result  # noqa: E402  (bench/search.py)


def interleaved_latency(encoders: dict, queries: list[str]) -> dict[str, dict[str, float]]:
    """p50 and p95 ms of encoding one query, per encoder; every query goes through all in turn."""
    import numpy as np

    for query in (queries * (WARMUP // len(queries) + 1))[:WARMUP]:
        for encode in encoders.values():
            encode([query])
    timings: dict[str, list[float]] = {name: [] for name in encoders}
    for i, query in enumerate(queries):
        names = list(encoders)
        # Rotate who goes first, so no encoder always runs right after another's cache misses.
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            encoders[name]([query])
            timings[name].append((time.perf_counter() - start) * 1000)
    return {name: {"p50_ms": round(float(np.percentile(values, 50)), 3),
                   "p95_ms": round(float(np.percentile(values, 95)), 3)}
            for name, values in timings.items()}


def throughput(encoders: dict, titles: list[str]) -> dict[str, float]:
    """Titles per second of each encoder on `titles`, best of two runs."""
    result = {}
    for name, encode in encoders.items():
        encode(titles[:64])
        best = 0.0
        for _ in range(2):
            start = time.perf_counter()
            encode(titles)
            best = max(best, len(titles) / (time.perf_counter() - start))
        result[name] = round(best, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,onnx-fp32,onnx-int8")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--throughput-titles", type=int, default=1000,
                        help="titles encoded per thread setting (0: skip)")
    args = parser.parse_args()
    if data_missing():
        return 0

    sys.path.insert(0, str(ROOT))
    import numpy as np
    import onnxruntime
    import torch

    from recsys import embeddings
    from recsys.embeddings import configure_threads
    from recsys.evaluation.search import evaluate_full_catalog, measure_latency
    from recsys.onnx_encoder import OnnxEncoder, export, load_encoder
    from recsys.search import get

    threads = configure_threads()
    load_before = os.getloadavg()
    backends = args.backends.split(",")
    for backend in backends:
        embeddings.check_backend(backend)
    catalog, judgments = load_data()
    distinct = sorted(set(judgments["query"]) - {""})
    rng = np.random.default_rng(0)
    queries = [distinct[i] for i in rng.permutation(len(distinct))[:args.latency_queries]]

    exports = {}
    for backend in backends:
        if backend.startswith("onnx-"):
            start = time.perf_counter()
            path = export(None, backend.removeprefix("onnx-"))
            exports[backend] = {"path": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                                "megabytes": round(path.stat().st_size / 2**20, 1),
                                "seconds": round(time.perf_counter() - start, 1)}
            load_encoder(None, backend.removeprefix("onnx-"))
    embeddings.load_model()

    print(f"timing one-query encoding on {len(queries)} queries...", file=sys.stderr)
    timed = {backend: (lambda texts, b=backend: embeddings.encode_queries(texts, backend=b))
             for backend in backends}
    if "onnx-int8" in backends:
        timed["onnx-int8 rows"] = lambda texts: embeddings.encode(texts, backend="onnx-int8")
    latency = interleaved_latency(timed, queries)
    for backend in backends:
        latency[backend]["speedup_p50"] = round(latency["torch"]["p50_ms"] / latency[backend]["p50_ms"], 2) \
            if "torch" in latency else None

    print("comparing onnxruntime thread counts...", file=sys.stderr)
    thread_encoders = {f"{backend} x{count}": OnnxEncoder(None, backend.removeprefix("onnx-"), count).encode
                       for backend in backends if backend.startswith("onnx-") for count in (1, 2)}
    thread_latency = interleaved_latency(thread_encoders, queries)
    titles = catalog["title"].tolist()
    sample = [titles[i] for i in rng.permutation(len(titles))[:args.throughput_titles]]
    thread_throughput = throughput(
        {**({"torch x%d" % threads: embeddings.encode} if "torch" in backends else {}),
         **thread_encoders}, sample) if sample else {}
    del thread_encoders

    quality = {}
    for backend in backends:
        start = time.perf_counter()
        retriever = get("semantic")(backend=backend).fit(catalog)
        fit_seconds = round(time.perf_counter() - start, 1)
        print(f"{backend}: catalog embeddings in {fit_seconds} s", file=sys.stderr)
        metrics = evaluate_full_catalog(retriever, judgments)
        search = measure_latency(retriever, list(distinct), sample=args.latency_queries)
        quality[backend] = {"ndcg@10": round(metrics["ndcg@10"], 4),
                            "recall@100": round(metrics["recall@100"], 4),
                            "search_ms_p50": round(search["latency_ms_p50"], 2),
                            "search_ms_p95": round(search["latency_ms_p95"], 2),
                            "fit_seconds": fit_seconds}
        del retriever

    print(f"\n{'backend':<11}{'p50 ms':>8}{'p95 ms':>8}{'speed-up':>9}{'nDCG@10':>9}{'R@100':>8}"
          f"{'search p50':>11}{'p95':>7}")
    for backend in backends:
        row, q = latency[backend], quality[backend]
        print(f"{backend:<11}{row['p50_ms']:>8.2f}{row['p95_ms']:>8.2f}{row['speedup_p50'] or 0:>8.2f}x"
              f"{q['ndcg@10']:>9.4f}{q['recall@100']:>8.4f}{q['search_ms_p50']:>11.2f}"
              f"{q['search_ms_p95']:>7.2f}")
    if "onnx-int8 rows" in latency:
        row = latency["onnx-int8 rows"]
        print(f"{'(int8 rows)':<11}{row['p50_ms']:>8.2f}{row['p95_ms']:>8.2f}  the products' graph, one query")
    print(f"\n{'onnxruntime threads':<20}{'p50 ms':>8}{'p95 ms':>8}{'titles/s':>10}")
    for name, row in thread_latency.items():
        print(f"{name:<20}{row['p50_ms']:>8.2f}{row['p95_ms']:>8.2f}{thread_throughput.get(name, 0):>10.1f}")
    for name in thread_throughput:
        if name.startswith("torch"):
            print(f"{name:<20}{'':>16}{thread_throughput[name]:>10.1f}")

    bars = {}
    if "torch" in backends and "onnx-fp32" in backends:
        bars["fp32_at_least_3x_faster"] = latency["onnx-fp32"]["speedup_p50"] >= SPEEDUP_BAR
        bars["fp32_same_ndcg_3_decimals"] = (round(quality["onnx-fp32"]["ndcg@10"], 3)
                                             == round(quality["torch"]["ndcg@10"], 3))
    if "onnx-fp32" in backends and "onnx-int8" in backends:
        bars["int8_ndcg_within_0.01_of_fp32"] = (abs(quality["onnx-int8"]["ndcg@10"]
                                                     - quality["onnx-fp32"]["ndcg@10"])
                                                 <= INT8_NDCG_TOLERANCE)
    serve = ("onnx-int8" if bars.get("int8_ndcg_within_0.01_of_fp32")
             else "onnx-fp32" if bars.get("fp32_same_ndcg_3_decimals") else "torch")
    result = {
        "benchmark": "onnx", "date": date.today().isoformat(),
        "machine": machine(threads, load_before, torch=torch.__version__,
                           onnxruntime=onnxruntime.__version__),
        "catalog_products": len(catalog), "queries": len(distinct),
        "latency_queries": len(queries), "exports": exports, "encode_one_query": latency,
        "onnx_threads": {"encode_one_query": thread_latency, "titles_per_s": thread_throughput,
                         "throughput_titles": len(sample)},
        "quality": quality, "bars": bars, "default_backend": serve,
    }
    print(f"\nbars: {bars}; backend to serve by default: {serve}")
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
