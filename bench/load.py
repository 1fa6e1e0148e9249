"""Load generator for the REST service: N concurrent clients, a fixed request mix, S seconds.

    python bench/load.py --url http://127.0.0.1:8000 --key rk_... --seconds 60 --concurrency 8
    python bench/load.py ... --rps 40          # paced: 40 requests/s in all, not as fast as possible

Each client is a thread with one keep-alive connection (http.client: little CPU
taken from the service on the same machine). Requests follow a fixed, seeded
mix: 60% /search (queries made of the first words of catalog titles), 30%
/recommend (known users, every other one with a session history of two
products) and 10% /similar (catalog products). Every request sends an
X-Request-ID; afterwards the generator counts how many of its ids are in the
SQL request_metrics table (`--database-url`, default DATABASE_URL), waiting
up to `--settle` seconds for the service's batched writer. Users, products and
titles come from the same database's active versions.

Only 127.0.0.1 / localhost URLs are accepted. Prints a table and, as its last
line, one JSON object with requests, errors (status >= 500 or no answer), rps,
per endpoint count, p50_ms, p95_ms, p99_ms, and recorded (also written to
bench/results/load.json).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode, urlsplit, quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "load.json"
MIX = (("search", 0.6), ("recommend", 0.3), ("similar", 0.1))


def request_pool(database_url: str | None, seed: int, size: int = 2000) -> list[tuple[str, str]]:
    """(endpoint, path with query) for `size` requests in the fixed mix, from the active data."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import func, select

    from db import queries
    from db.engine import session_scope
    from db.models import Event, Product

    rng = random.Random(seed)
    with session_scope(database_url) as session:
        catalog = queries.active_version(session, "catalog")
        events = queries.active_version(session, "events")
        if catalog is None or events is None:
            raise SystemExit("error: the database has no active catalog and events")
        products = session.execute(select(Product.product_id, Product.title).where(
            Product.dataset_version_id == catalog.id).order_by(func.random()).limit(size)).all()
        bought = session.execute(select(Event.user_id, Event.product_id).where(
            Event.dataset_version_id == events.id).order_by(func.random()).limit(size)).all()
    users = [user for user, _ in bought]
    bought_products = [product for _, product in bought]
    pool = []
    for i in range(size):
        endpoint = rng.choices([name for name, _ in MIX], [share for _, share in MIX])[0]
        if endpoint == "search":
            words = products[rng.randrange(len(products))][1].split()
            query = " ".join(words[:rng.choice((1, 2, 3))]) or "drill"
            pool.append((endpoint, "/search?" + urlencode({"q": query, "k": 10})))
        elif endpoint == "recommend":
            params = [("k", 10)]
            if i % 2:
                params += [("history", rng.choice(bought_products)) for _ in range(2)]
            pool.append((endpoint, f"/recommend/{quote(rng.choice(users), safe='')}?" + urlencode(params)))
        else:
            product = rng.choice(bought_products)
            pool.append((endpoint, f"/similar/{quote(product, safe='')}?k=10"))
    return pool


def client(host: str, port: int, key: str, pool, offset: int, stop_at: float,
           interval_s: float, results: list, seed: int = 0, answers: list | None = None) -> None:
    """One client: requests from `pool` until `stop_at`, on average one every `interval_s`.

    Paced clients send at the times of a seeded Poisson process (exponential gaps
    of mean `interval_s`), as independent shoppers do; clients started together
    on a fixed beat would all hit the service at the same instant. `interval_s`
    0: back to back. With `answers`, each answer's (end time, endpoint, model_version,
    preset_version) is kept too (bench/live_activations.py reads them).
    """
    connection = http.client.HTTPConnection(host, port, timeout=30)
    gaps = random.Random(seed)
    position, next_at = offset, time.perf_counter()
    if interval_s:
        next_at += gaps.expovariate(1 / interval_s)
    while True:
        now = time.perf_counter()
        if now >= stop_at:
            break
        if interval_s and now < next_at:
            time.sleep(next_at - now)
        if interval_s:
            next_at += gaps.expovariate(1 / interval_s)
        endpoint, path = pool[position % len(pool)]
        position += 1
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers={"X-API-Key": key, "X-Request-ID": request_id})
            response = connection.getresponse()
            body = response.read()
            status = response.status
            if answers is not None and status == 200:
                served = json.loads(body)
                answers.append((time.time(), endpoint, served["model_version"], served["preset_version"]))
        except (OSError, http.client.HTTPException):
            status = 0
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=30)
        results.append((endpoint, status, (time.perf_counter() - started) * 1000, request_id))
    connection.close()


def count_recorded(database_url: str | None, request_ids: list[str], settle_s: float) -> int:
    from sqlalchemy import func, select

    from db.engine import session_scope
    from db.models import RequestMetric

    deadline, found = time.monotonic() + settle_s, 0
    wanted = set(request_ids)
    while True:
        with session_scope(database_url) as session:
            found = 0
            ids = list(wanted)
            for start in range(0, len(ids), 5000):
                found += session.scalar(select(func.count()).select_from(RequestMetric).where(
                    RequestMetric.request_id.in_(ids[start:start + 5000])))
        if found >= len(wanted) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def summarise(results: list, seconds: float) -> dict:
    summary = {"requests": len(results),
               "errors": sum(1 for _, status, _, _ in results if status == 0 or status >= 500),
               "client_errors": sum(1 for _, status, _, _ in results if 400 <= status < 500),
               "rps": round(len(results) / seconds, 1), "endpoints": {}}
    for endpoint, _ in MIX:
        latencies = np.array([ms for name, _, ms, _ in results if name == endpoint])
        if len(latencies):
            summary["endpoints"][endpoint] = {
                "requests": len(latencies), "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                "p95_ms": round(float(np.percentile(latencies, 95)), 2),
                "p99_ms": round(float(np.percentile(latencies, 99)), 2)}
    return summary


def run_load(url: str, key: str, seconds: float, concurrency: int, rps: float | None = None,
             database_url: str | None = None, seed: int = 42, settle_s: float = 15.0,
             answers: list | None = None) -> dict:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"error: the load generator only targets 127.0.0.1 or localhost, not {url}")
    pool = request_pool(database_url, seed)
    results: list = []  # list.append is atomic: the clients share it without a lock
    interval = concurrency / rps if rps else 0.0
    started = time.perf_counter()
    stop_at = started + seconds
    threads = [threading.Thread(target=client, args=(parts.hostname, parts.port or 80, key, pool,
                                                     i * (len(pool) // concurrency), stop_at,
                                                     interval, results, seed + i, answers))
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    summary = summarise(results, elapsed)
    summary.update({"seconds": round(elapsed, 1), "concurrency": concurrency, "target_rps": rps,
                    "recorded": count_recorded(database_url, [r[3] for r in results], settle_s)})
    return summary


def print_table(summary: dict) -> None:
    print(f"{'endpoint':<10} {'requests':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}", file=sys.stderr)
    for endpoint, row in summary["endpoints"].items():
        print(f"{endpoint:<10} {row['requests']:>9} {row['p50_ms']:>8} {row['p95_ms']:>8} "
              f"{row['p99_ms']:>8}", file=sys.stderr)
    print(f"{summary['requests']} requests in {summary['seconds']} s ({summary['rps']}/s), "
          f"{summary['errors']} errors, {summary['recorded']} recorded in SQL", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="an API key (python -m recsys apikey create)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rps", type=float, help="total requests per second (default: as fast as "
                                                  "the service answers)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="the service's database, to count recorded requests")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--settle", type=float, default=15.0,
                        help="seconds to wait for the metrics to reach SQL")
    args = parser.parse_args()
    if not 0 < args.seconds <= 3600 or not 0 < args.concurrency <= 256:
        raise SystemExit("error: --seconds must be in (0, 3600] and --concurrency in 1..256")
    summary = run_load(args.url, args.key, args.seconds, args.concurrency, args.rps,
                       args.database_url, args.seed, args.settle)
    print_table(summary)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
