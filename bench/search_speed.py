"""Benchmark: where a hybrid search's time goes on Home Depot's 54,667 titles, stage by stage.

The shipped search preset (BM25 0.75 + semantic 0.25, weighted min-max, spelling
correction, the int8 ONNX encoder) is fitted once on ``../shared/data/homedepot/``
(skipped, exit status 0, when it is absent). The same fitted sources then serve
side by side, in one process, taking turns by blocks of 50 queries (see `timings`):

- ``scan``: the semantic source scores every product (one matrix product), as before issue 16;
- ``graph``: its candidates come from the faiss HNSW graph (`recsys.ann`), what is served now;
- ``graph (per-row queries)``: the same, the query encoded on the products' int8 graph (one
  activation scale per token row, batched in evaluations), as before the queries' own graph
  (`recsys.onnx_encoder.ALONE_FILE_NAMES`);
- with ``--ranker DIR`` (a learned ranker, e.g. from ``python -m recsys train-ranker``):
  ``scan + ranker, scored again``, the ranker's signals computed as before issue 16 (each
  source scores the catalog a second time, a second query encoding), and ``graph + ranker``,
  the ranker reading the scores the candidates were found with (its trees compiled to machine
  code, `recsys.search.compiled_trees`), and ``graph + ranker (LightGBM trees)``, the same
  predicting with LightGBM's own `predict`.

For each: p50 / p95 milliseconds of one ``search(query, k=10)`` (query encoding and the
explanations included, as the evaluation times it) over ``--queries`` sampled test queries
after a warm-up, the same with ``explain=False`` (what the REST service answers by default),
the p50 / p95 of each stage of `recsys.timing` (encode, retrieve, fuse, rerank, rules; "other"
is the rest: spelling, hits, explanations), and the full-catalog nDCG@10 and Recall@100 of
the test queries of the split by query (`recsys.evaluation.splits.split_judgments`).

    python bench/search_speed.py
    python bench/search_speed.py --ranker var/models/hd-ranker --queries 300
    python bench/search_speed.py --ef-search 64,128,160   # the graph's recall against its speed
    python bench/search_speed.py --ranker var/models/hd-ranker --queries 747 \
        --only "graph,graph + ranker,graph + ranker (LightGBM trees)"

Prints a table and, as its last line, one JSON object (also written to
bench/results/search_speed.json). Bar: ``graph`` p95 at most 5 ms on a quiet machine.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import data_missing, load_data, machine, save_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "search_speed.json"
P95_BAR_MS = 5.0
STAGES = ("encode", "retrieve", "fuse", "rerank", "rules", "other")


def engines(catalog, ranker: str | None, efs: list[int]) -> dict:
    """{name: hybrid}: the configurations of the module docstring, over one set of fitted sources."""
    from recsys import embeddings
    from recsys.fusion import defaults
    from recsys.search.hybrid import HybridRetriever

    started = time.perf_counter()
    graph = HybridRetriever(fusion=defaults.SEARCH).fit(catalog)
    print(f"fitted in {time.perf_counter() - started:.1f} s (embeddings cached under var/embeddings)",
          file=sys.stderr)
    scan = graph.with_fusion(graph.fusion)
    scanning = copy.copy(graph.sources[1])
    scanning._nearest = None  # the same embeddings, scored by the full matrix product
    scan.sources[1] = scanning
    found = {"scan": scan, "graph": graph}
    before = graph.with_fusion(graph.fusion)
    rowwise = copy.copy(graph.sources[1])
    rowwise.encode_queries = lambda queries, source=rowwise: embeddings.encode(
        queries, source.config.model_path, backend=source.config.backend)
    before.sources[1] = rowwise
    found["graph (per-row queries)"] = before
    for ef in efs:  # the same graph, exploring another number of candidates a query
        other = graph.with_fusion(graph.fusion)
        semantic = copy.copy(graph.sources[1])
        semantic._nearest = copy.copy(semantic._nearest)
        semantic._nearest.config = dataclasses.replace(semantic._nearest.config, hnsw_ef_search=ef)
        other.sources[1] = semantic
        found[f"graph, ef_search {ef}"] = other
    if ranker:
        ranked = {**defaults.SEARCH, "reranker": ranker, "rerank_top": 100}
        again = scan.with_fusion(ranked)
        again.sources[1] = scanning
        again._kept_sources = lambda fusion: ()  # every source scores the catalog again for the ranker
        found["scan + ranker, scored again"] = again
        found["graph + ranker"] = graph.with_fusion(ranked)
        walked = graph.with_fusion(ranked)  # the same ranker predicting with LightGBM's own trees
        opened = copy.copy(walked._reranker(ranker))
        opened.compiled = None
        walked._rerankers[ranker] = (walked._rerankers[ranker][0], opened)
        found["graph + ranker (LightGBM trees)"] = walked
    return found


def percentiles(values: list[float]) -> dict:
    import numpy as np

    return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2)}


def timings(found: dict, queries: list[str], warmup: int, block: int = 50) -> dict:
    """Per configuration: total and per-stage milliseconds of each query. The configurations take
    turns by blocks of `block` queries, each block after `warmup` untimed searches of its own: one
    query each in turn would let the thread pools one leaves spinning (torch's after the scan,
    onnxruntime's after an encoding) slow the next, which a service running one of them never sees,
    and one configuration after the other would let the machine's drift favour some."""
    from recsys.timing import StageTimer

    runs = {name: {"total": [], "no_explain": [], **{stage: [] for stage in STAGES}} for name in found}
    for start in range(0, len(queries), block):
        chunk = queries[start:start + block]
        for name, hybrid in found.items():
            for query in (chunk * warmup)[:warmup]:
                hybrid.search(query, k=10)
            for query in chunk:
                with StageTimer() as timer:
                    started = time.perf_counter()
                    hybrid.search(query, k=10)
                    total = (time.perf_counter() - started) * 1000
                run = runs[name]
                run["total"].append(total)
                for stage in STAGES[:-1]:
                    run[stage].append(timer.ms.get(stage, 0.0))
                run["other"].append(total - sum(timer.ms.values()))
                started = time.perf_counter()
                hybrid.search(query, k=10, explain=False)
                run["no_explain"].append((time.perf_counter() - started) * 1000)
    return {name: {key: percentiles(values) for key, values in run.items()} for name, run in runs.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranker", help="a learned-ranker folder trained over the shipped preset")
    parser.add_argument("--queries", type=int, default=300, help="test queries timed (default 300)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed searches before each block")
    parser.add_argument("--part", default="test", choices=("validation", "test"),
                        help="the split's queries to score and time (validation: to choose a setting)")
    parser.add_argument("--ef-search", default="", help="also the graph exploring these numbers of candidates "
                                                        "a query, e.g. 64,128 (served: the semantic config's)")
    parser.add_argument("--only", default="", help="time only these configurations (comma-separated "
                                                   "names, e.g. graph: the served search alone)")
    args = parser.parse_args(argv)
    if data_missing():
        return 0
    import numpy as np

    from recsys import embeddings
    from recsys.evaluation.search import evaluate_full_catalog
    from recsys.evaluation.splits import split_judgments

    load_before = os.getloadavg()
    embeddings.configure_threads()
    catalog, judgments = load_data()
    test = split_judgments(judgments)[args.part]
    found = engines(catalog, args.ranker, [int(ef) for ef in args.ef_search.split(",") if ef])
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in found]
        if unknown:
            parser.error(f"--only: no configuration {unknown}; these run: {', '.join(found)}")
        found = {name: found[name] for name in wanted}
    quality = {name: evaluate_full_catalog(hybrid, test) for name, hybrid in found.items()}
    distinct = sorted(test["query"].unique())
    chosen = [distinct[i] for i in np.random.default_rng(0).permutation(len(distinct))[:args.queries]]
    latency = timings(found, chosen, args.warmup)
    print(f"\n{'configuration':32} {'nDCG@10':>8} {'R@100':>7} {'p50':>6} {'p95':>6} {'no expl. p95':>12}  "
          + "  ".join(f"{stage} p50/p95" for stage in STAGES))
    for name in found:
        row, metrics = latency[name], quality[name]
        print(f"{name:32} {metrics['ndcg@10']:8.4f} {metrics['recall@100']:7.4f} {row['total']['p50']:6.2f} "
              f"{row['total']['p95']:6.2f} {row['no_explain']['p95']:12.2f}  "
              + "  ".join(f"{row[stage]['p50']:.2f}/{row[stage]['p95']:.2f}" for stage in STAGES))
    graph_p95 = latency["graph"]["total"]["p95"] if "graph" in latency else None
    if graph_p95 is not None:
        print(f"\nbar: graph p95 {graph_p95:.2f} ms <= {P95_BAR_MS} ms: "
              f"{'met' if graph_p95 <= P95_BAR_MS else 'NOT met'}")
    save_result({"bench": "search_speed", "catalog_products": len(catalog), "test_queries": len(distinct),
                 "timed_queries": len(chosen), "quality": quality, "latency_ms": latency,
                 "bar_p95_ms": P95_BAR_MS, "graph_p95_ms": graph_p95, "ranker": args.ranker,
                 "machine": machine(embeddings.default_threads(), load_before)}, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
