"""Benchmark: what sponsored products add to a served search, on Home Depot's 54,667 titles.

The shipped search preset (with its sponsored slots) fitted on the catalog (embeddings cached under
var/embeddings), a new SQLite database holding the catalog as the active version and `--campaigns`
seeded campaigns (1-5 real products each, drawn from the products judged for the test queries so
that many searches have a relevant ad, automatic targeting, bids around $0.40, budgets that do not
bind), then each test query searched, the two ways taking turns by blocks of 50 (after 5 untimed
searches each):

- ``organic``: `ServingEngine.search` alone (``explain=False``), what a preset without slots serves;
- ``with ads``: what the service runs for a `/search` (`Service._sponsored`): the campaigns that may
  bid (read from SQL every 2 s), the engine's search reading their products' relevance from the same
  candidate lists, the auction and the placement, and the impressions written to SQLite when an ad
  is shown (a request id each).

Prints p50 / p95 milliseconds of each, of the searches that showed an ad and of those that did not,
and the share that showed one; as its last line one JSON object (also bench/results/ads_serving.json).

    python bench/ads_serving.py [--queries 300] [--campaigns 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import data_missing, load_data, machine, save_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ads_serving.json"


def percentiles(values: list[float]) -> dict:
    import numpy as np

    if not values:
        return {"p50": None, "p95": None, "count": 0}
    return {"p50": round(float(np.percentile(values, 50)), 2),
            "p95": round(float(np.percentile(values, 95)), 2), "count": len(values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300, help="test queries timed (default 300)")
    parser.add_argument("--campaigns", type=int, default=300, help="seeded campaigns (default 300)")
    args = parser.parse_args(argv)
    if data_missing():
        return 0
    import numpy as np
    import pandas as pd

    from db.engine import upgrade
    from recsys import embeddings
    from recsys.accounts import Identity
    from recsys.ads import campaigns
    from recsys.data import IngestOptions, ingest_file
    from recsys.evaluation.splits import split_judgments
    from recsys.serving.engine import ServingEngine
    from recsys.serving.keys import KeyVerifier
    from recsys.serving.metrics import MetricsWriter
    from recsys.serving.service import Service

    load_before = os.getloadavg()
    embeddings.configure_threads()
    catalog, judgments = load_data()
    test = split_judgments(judgments)["test"]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/shop.db"
        upgrade(url)
        catalog[["product_id", "title"]].to_csv(Path(folder) / "catalog.csv", index=False)
        started = time.perf_counter()
        ingest_file(Path(folder) / "catalog.csv", IngestOptions("catalog"), actor="bench", url=url)
        print(f"catalog stored in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        users = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "product_id": catalog["product_id"][:3].tolist(),
                              "weight": 1.0})
        engine = ServingEngine.from_frames(catalog[["product_id", "title"]], users)
        judged = sorted(test["product_id"].astype(str).unique())
        operator = Identity("bench", "operator")
        for number in range(args.campaigns):
            products = rng.choice(judged, size=int(rng.integers(1, 6)), replace=False).tolist()
            bid = round(float(rng.lognormal(np.log(0.4), 0.4)), 2)
            campaigns.create_campaign(operator, advertiser=f"advertiser {number % 40}",
                                      name=f"campaign {number}", products=products, max_cpc=bid,
                                      daily_budget=1_000_000.0, url=url)
        service = Service(engine, KeyVerifier(url), MetricsWriter(url), compute_threads=1, url=url)
        distinct = sorted(test["query"].unique())
        chosen = [distinct[i] for i in rng.permutation(len(distinct))[:args.queries]]

        def organic(query: str):
            return engine.search(query, 10)

        def with_ads(query: str):
            return service._sponsored(
                "search", lambda products: engine.search(query, 10, relevance_of=products), uuid.uuid4().hex,
                query=query)

        runs = {"organic": [], "with ads": []}
        shown, not_shown = [], []
        for start in range(0, len(chosen), 50):
            block = chosen[start:start + 50]
            for name, search in (("organic", organic), ("with ads", with_ads)):
                for query in block[:5]:
                    search(query)
                for query in block:
                    began = time.perf_counter()
                    answer = search(query)
                    elapsed = (time.perf_counter() - began) * 1000
                    runs[name].append(elapsed)
                    if name == "with ads":
                        had_ad = any(item.get("sponsored") for item in answer.items)
                        (shown if had_ad else not_shown).append(elapsed)
        report = campaigns.report(operator, url=url)
    result = {"bench": "ads_serving", "catalog_products": len(catalog), "campaigns": args.campaigns,
              "timed_queries": len(chosen),
              "latency_ms": {name: percentiles(values) for name, values in runs.items()},
              "with_ads_shown": percentiles(shown), "with_ads_none_shown": percentiles(not_shown),
              "share_with_an_ad": round(len(shown) / max(len(chosen), 1), 3),
              "impressions_recorded": sum(row.impressions for row in report.campaigns),
              "machine": machine(embeddings.default_threads(), load_before)}
    print(f"\n{'':28} {'p50 ms':>8} {'p95 ms':>8} {'searches':>9}")
    for name, row in [*result["latency_ms"].items(), ("with ads, an ad shown", result["with_ads_shown"]),
                      ("with ads, none shown", result["with_ads_none_shown"])]:
        print(f"{name:28} {row['p50'] or 0:8.2f} {row['p95'] or 0:8.2f} {row.get('count', len(chosen)):9}")
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
