"""Benchmark: the nearest-neighbour indexes of `recsys.ann` on Home Depot's 54,667 titles.

The titles are encoded once with the int8 ONNX encoder, as the shipped search preset
encodes them (`recsys.embeddings.cached_encode`: read back from var/embeddings on a rerun),
and so is a bounded sample of the judged dev queries (``--queries``, default 2,000). The
data is read from ``../shared/data/homedepot/`` (or ``--data``); the benchmark skips, exit
status 0, when it is absent, and writes nothing derived from it into the repository.

For each index (`recsys.ann.build_index`): exact (faiss's flat scan), HNSW (M 32,
ef_construction 64) searched with several ef_search, IVF-PQ (about 4 sqrt(n) cells, 48 codes of
8 bits) searched with several nprobe, its shortlist re-scored exactly (refine factor 4) and
without (the codes' estimates, a separate index without the stored vectors):

- recall@100: the share of each query's exact top 100 (by cosine) the index finds, over the sample;
- build seconds (one thread), index bytes (faiss's serialisation);
- p50 / p95 milliseconds of one query's top 100 (one thread, query vectors given, ``--timed``
  queries after a warm-up); for comparison the semantic retriever's own exact scan (one torch
  matrix product over the (dim, n) matrix), what serves catalogs below the HNSW threshold;
- the semantic source's nDCG@10 and Recall@100 on the sampled queries' judgments, from each
  index's top 100 (`recsys.evaluation.metrics.ndcg_and_recall`, gain = grade - 1).

With ``--grow N``, then HNSW and IVF-PQ at their defaults over the titles' vectors grown N-fold
(each copy every vector plus Gaussian noise of norm about 0.3, normalised again: near-duplicate
titles, as a large catalog's variants are): build seconds, recall@100 against the exact top 100
of the grown set, p50 / p95 and bytes, to see how each grows with the catalog.

    python bench/ann_index.py
    python bench/ann_index.py --grow 4                         # also 218,668 vectors
    python bench/ann_index.py --queries 500 --timed 100     # quicker

Prints a table and, as its last line, one JSON object (also written to bench/results/ann_index.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import search as homedepot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ann_index.json"
K = 100
BACKEND = "onnx-int8"
HNSW_EF = (100, 128, 256, 512)  # at least k = 100 explored
IVF_NPROBE = (16, 32, 64, 128)


def percentiles(values: list[float]) -> dict:
    import numpy as np

    return {name: round(float(np.percentile(values, q)), 3) for name, q in (("p50", 50), ("p95", 95))}


def exact_top(vectors, queries, k: int):
    """Each query's exact top k rows of `vectors` by inner product, best first, shape (n_queries, k)."""
    import numpy as np

    tops = []
    for start in range(0, len(queries), 256):
        scores = queries[start:start + 256] @ vectors.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        tops.append(np.take_along_axis(part, order, axis=1))
    return np.vstack(tops)


def recall(found, exact) -> float:
    import numpy as np

    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in zip(found, exact)]))


def latency(search, queries, timed: int, warmup: int = 20) -> dict:
    """p50 / p95 ms of `search(one query vector)` over the first `timed` queries."""
    for query in queries[:warmup]:
        search(query[None, :])
    runs = []
    for query in queries[:timed]:
        started = time.perf_counter()
        search(query[None, :])
        runs.append((time.perf_counter() - started) * 1000)
    return percentiles(runs)


def quality(found, product_ids, sampled: list[str], graded: dict, relevant: dict) -> dict:
    """The semantic source's nDCG@10 and Recall@100 from each sampled query's `found` rows."""
    from recsys.evaluation.metrics import ndcg_and_recall

    run = {query: [(product_ids[i], float(-rank)) for rank, i in enumerate(row) if i >= 0]
           for query, row in zip(sampled, found)}
    metrics = ndcg_and_recall(graded, relevant, run, k=10, recall_k=K)
    return {name: round(value, 4) for name, value in metrics.items()}


def grown(vectors, copies: int, noise: float = 0.3):
    """`vectors` and `copies` - 1 noisy copies of them, each row normalised to unit length."""
    import numpy as np

    parts = [vectors]
    for copy in range(1, copies):
        shaken = vectors + noise * np.random.default_rng(copy).normal(size=vectors.shape).astype(
            np.float32) / np.sqrt(vectors.shape[1])
        parts.append(shaken / np.linalg.norm(shaken, axis=1, keepdims=True))
    return np.vstack(parts)


def growth(vectors, queries, copies: int, timed: int) -> list[dict]:
    """HNSW and IVF-PQ at their defaults over `vectors` grown `copies`-fold (see the docstring)."""
    from recsys.ann import build_index

    big = grown(vectors, copies)
    exact = exact_top(big, queries, K)
    rows = []
    for kind in ("hnsw", "ivfpq"):
        started = time.perf_counter()
        index = build_index(big, {"kind": kind})
        built = time.perf_counter() - started
        _, found = index.search(queries, K)
        rows.append({"index": kind, "vectors": len(big), "build_s": round(built, 2), "bytes": index.nbytes(),
                     "recall@100": round(recall(found, exact), 4),
                     "latency_ms": latency(lambda query: index.search(query, K), queries, timed)})
        print(f"grown {len(big)}: built {kind} in {built:.1f} s", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=homedepot.DATA, help="the Home Depot folder")
    parser.add_argument("--queries", type=int, default=2000, help="dev queries sampled (default 2,000)")
    parser.add_argument("--timed", type=int, default=300, help="queries timed one at a time (default 300)")
    parser.add_argument("--grow", type=int, default=1, help="also HNSW and IVF-PQ over the vectors grown "
                                                            "this many times (default 1: not)")
    args = parser.parse_args(argv)
    homedepot.DATA = args.data
    if homedepot.data_missing():
        return 0
    import faiss
    import numpy as np
    import torch

    from recsys.ann import IndexConfig, build_index
    from recsys.evaluation.search import graded_qrels, relevant_qrels
    from recsys.search.dense import DenseRetriever

    load_before = os.getloadavg()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    catalog, judgments = homedepot.load_data()
    started = time.perf_counter()
    source = DenseRetriever(backend=BACKEND, index={"kind": "exact"}).fit(catalog)
    vectors = np.ascontiguousarray(source.embeddings, dtype=np.float32)
    distinct = sorted(judgments["query"].astype(str).unique())
    sampled = [distinct[i] for i in np.random.default_rng(0).permutation(len(distinct))[:args.queries]]
    queries = source.encode_queries(sampled).astype(np.float32)
    print(f"{len(vectors)} titles and {len(sampled)} queries encoded in "
          f"{time.perf_counter() - started:.1f} s "
          "(titles cached under var/embeddings)", file=sys.stderr)
    exact = exact_top(vectors, queries, K)
    judged = judgments[judgments["query"].astype(str).isin(set(sampled))]
    graded, relevant = graded_qrels(judged), relevant_qrels(judged)
    product_ids = source.product_ids

    by_dimension = torch.from_numpy(np.ascontiguousarray(vectors.T))

    def torch_scan(query):
        with torch.inference_mode():
            return torch.topk(torch.from_numpy(query) @ by_dimension, K)

    rows = [{"index": "exact scan (the retriever's, torch)", "kind": "exact", "build_s": 0.0,
             "bytes": int(vectors.nbytes), "recall@100": 1.0,
             "latency_ms": latency(torch_scan, queries, args.timed),
             "quality": quality(exact, product_ids, sampled, graded, relevant)}]
    variants = [("exact", {"kind": "exact"}, "", [{}]),
                ("hnsw", {"kind": "hnsw"}, "ef_search", [{"hnsw_ef_search": ef} for ef in HNSW_EF]),
                ("ivfpq", {"kind": "ivfpq"}, "nprobe, refine 4",
                 [{"ivf_nprobe": nprobe} for nprobe in IVF_NPROBE]),
                ("ivfpq", {"kind": "ivfpq", "refine_factor": 0}, "nprobe, no refine",
                 [{"ivf_nprobe": nprobe} for nprobe in IVF_NPROBE])]
    for kind, params, label, searches in variants:
        started = time.perf_counter()
        index = build_index(vectors, params)
        built = time.perf_counter() - started
        size = index.nbytes()
        print(f"built {kind} {params} in {built:.1f} s", file=sys.stderr)
        for setting in searches:
            index.config = IndexConfig.from_dict({**index.config.to_dict(), **setting})
            _, found = index.search(queries, K)
            value = next(iter(setting.values()), None)
            rows.append({"index": f"{kind}" + (f" ({label} {value})" if label else ""), "kind": kind,
                         "config": index.config.to_dict(), "build_s": round(built, 2), "bytes": size,
                         "recall@100": round(recall(found, exact), 4),
                         "latency_ms": latency(lambda query: index.search(query, K), queries, args.timed),
                         "quality": quality(found, product_ids, sampled, graded, relevant)})

    print(f"\n{len(vectors)} titles, {len(sampled)} dev queries, top {K}, one thread")
    print(f"{'index':42} {'recall@100':>10} {'build s':>8} {'MB':>7} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'nDCG@10':>8} {'R@100':>7}")
    for row in rows:
        print(f"{row['index']:42} {row['recall@100']:10.4f} {row['build_s']:8.1f} {row['bytes'] / 1e6:7.1f} "
              f"{row['latency_ms']['p50']:7.2f} {row['latency_ms']['p95']:7.2f} "
              f"{row['quality']['ndcg@10']:8.4f} {row['quality']['recall@100']:7.4f}")
    grew = growth(vectors, queries, args.grow, args.timed) if args.grow > 1 else []
    if grew:
        print(f"\n{'grown':12} {'index':6} {'recall@100':>10} {'build s':>8} {'MB':>7} {'p50 ms':>7} "
              f"{'p95 ms':>7}")
        for row in grew:
            print(f"{row['vectors']:<12} {row['index']:6} {row['recall@100']:10.4f} {row['build_s']:8.1f} "
                  f"{row['bytes'] / 1e6:7.1f} {row['latency_ms']['p50']:7.2f} "
                  f"{row['latency_ms']['p95']:7.2f}")
    homedepot.save_result({"bench": "ann_index", "catalog_products": len(vectors), "queries": len(sampled),
                           "timed_queries": min(args.timed, len(sampled)), "k": K, "backend": BACKEND,
                           "rows": rows, "grown": grew,
                           "machine": homedepot.machine(1, load_before, faiss_threads=1)}, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
