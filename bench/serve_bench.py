"""Benchmark: the REST service on Home Depot's 54,667 titles against the library called directly.

Reads ``../shared/data/homedepot/products.csv`` at run time and skips, exit
status 0, when it is absent; nothing from it is written into the repo (the
database lives in a temporary folder, catalog embeddings in var/, which git
ignores).

Set-up: a temporary SQLite database gets the catalog through the app's own
ingestion (`ingest_file`) and **synthetic** purchase events (seeded: 4,000
customers buying 3 to 12 of 3,000 products each, product popularity Zipf-like
and each customer's products near each other in the catalog so co-purchase
means something), since Home Depot has no behaviour data. `python -m recsys
serve` serves it: the hybrid
retriever (BM25 + MiniLM, weighted fusion) and the hybrid recommender (EASE +
semantic).

Measured, with `bench/load.py`'s request mix (60% search, 30% recommend, 10% similar):

1. library: the same `ServingEngine` called directly in this process by
   `--concurrency` threads, as fast as it goes (requests/s);
2. service, saturated: `--concurrency` clients as fast as the service answers;
   bar: >= 70% of the library's requests/s;
3. service, paced: `--concurrency` clients at `--paced-share` of the saturated rate,
   for `--seconds`; bars: /recommend p95 < 15 ms, /search p95 < 40 ms, zero server
   errors, every request recorded in request_metrics;
4. the cost of recording one request's metrics on the request path (p50, bar < 1 ms).

    python bench/serve_bench.py                     # 60 s paced run, 20 s for the rest
    python bench/serve_bench.py --seconds 10 --saturate-seconds 10   # quick look

Prints a table and, as its last line, one JSON object (also written to
bench/results/serve.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "homedepot"
RESULTS = ROOT / "bench" / "results" / "serve.json"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402  (bench/load.py)

BARS = {"recommend_p95_ms": 15.0, "search_p95_ms": 40.0, "throughput_ratio": 0.70,
        "record_p50_ms": 1.0}


def synthetic_events(product_ids: list[str], seed: int, users: int = 4000,
                     products: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    chosen = np.array(product_ids)[rng.choice(len(product_ids), products, replace=False)]
    popularity = 1.0 / np.arange(1, products + 1) ** 0.8
    rows = []
    for user in range(users):
        centre = rng.choice(products, p=popularity / popularity.sum())
        size = rng.integers(3, 13)
        picks = np.clip(centre + rng.integers(-25, 26, size), 0, products - 1)
        day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        rows += [(f"c{user:05d}", chosen[p], "purchase", 1, day) for p in np.unique(picks)]
    return pd.DataFrame(rows, columns=["user_id", "product_id", "event_type", "value", "timestamp"])


def prepare_database(folder: Path, seed: int, data: Path = DATA,
                     products: int | None = None) -> tuple[str, str]:
    """A migrated database with the catalog (`products` of it, seeded, when given) and events
    active, and an API key."""
    from db.engine import upgrade
    from recsys.data import IngestOptions, ingest_file
    from recsys.data.clean import CleaningConfig
    from recsys.serving.keys import issue_key

    url = f"sqlite:///{folder / 'serve-bench.db'}"
    upgrade(url)
    catalog = pd.read_csv(data / "products.csv", dtype=str, keep_default_na=False)
    catalog = catalog.rename(columns={"product_uid": "product_id", "product_title": "title"})
    if products is not None and products < len(catalog):
        catalog = catalog.sample(products, random_state=seed).sort_index()
    catalog.to_csv(folder / "catalog.csv", index=False)
    ingest_file(folder / "catalog.csv", IngestOptions("catalog"), actor="bench", url=url)
    synthetic_events(catalog["product_id"].tolist(), seed).to_csv(folder / "events.csv", index=False)
    ingest_file(folder / "events.csv", IngestOptions("events", cleaning=CleaningConfig()),
                actor="bench", url=url)
    return url, issue_key("serve-bench", actor="bench", url=url).key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(url: str, port: int, extra: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "DATABASE_URL": url}
    process = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--host",
                                "127.0.0.1", "--port", str(port), *extra], cwd=ROOT, env=environment)
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: the service exited with status {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.kill()
    raise SystemExit("error: the service did not start within 10 minutes")


def stop_service(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully: the lifespan flushes
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def library_rps(engine, pool, seconds: float, concurrency: int) -> dict:
    """Requests/s of the engine called directly, `concurrency` threads, the same mix."""
    from urllib.parse import parse_qs, unquote, urlsplit

    calls = []
    for endpoint, path in pool:
        parts = urlsplit(path)
        params = parse_qs(parts.query)
        k = int(params.get("k", ["10"])[0])
        target = unquote(parts.path.rsplit("/", 1)[-1])
        if endpoint == "search":
            calls.append(lambda q=params["q"][0], k=k: engine.search(q, k))
        elif endpoint == "recommend":
            calls.append(lambda u=target, k=k, h=params.get("history", []): engine.recommend(u, k, h))
        else:
            calls.append(lambda p=target, k=k: engine.similar(p, k))
    counts = [0] * concurrency
    stop_at = time.perf_counter() + seconds

    def work(worker: int) -> None:
        position = worker * (len(calls) // concurrency)
        while time.perf_counter() < stop_at:
            calls[position % len(calls)]()
            position += 1
            counts[worker] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"requests": sum(counts), "rps": round(sum(counts) / (time.perf_counter() - started), 1),
            "threads": concurrency}


def record_cost_ms() -> dict:
    """p50 and p95 of `Service.record` (Prometheus plus the queue), the metrics' request-path cost."""
    from recsys.serving.service import Service
    from recsys.serving.metrics import MetricsWriter

    service = Service.__new__(Service)  # only what `record` uses
    from recsys.serving.service import PrometheusMetrics

    service.prometheus = PrometheusMetrics()
    service.writer = MetricsWriter("sqlite://", max_pending=10**6)
    state = {"stages_ms": {"encode": 5.0, "retrieve": 3.0, "fuse": 0.2}, "result_count": 10,
             "model_version": "hybrid+hybrid@catalog-v1.events-v2", "preset_version": "default",
             "api_key_id": 1}
    times = []
    for i in range(20_000):
        started = time.perf_counter()
        service.record("search", 200, 12.3, state, f"r{i}")
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 4),
            "p95_ms": round(float(np.percentile(times, 95)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the paced run")
    parser.add_argument("--saturate-seconds", type=float, default=20.0,
                        help="length of the library and saturated runs")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--paced-share", type=float, default=0.5,
                        help="paced rate as a share of the saturated service's rate")
    parser.add_argument("--compute-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (service and library)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-library", action="store_true")
    args = parser.parse_args()
    if not (DATA / "products.csv").exists():
        print(f"skipped: {DATA / 'products.csv'} is not there (the Home Depot data is read at "
              "run time and never shipped)", file=sys.stderr)
        return
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as folder:
        started = time.perf_counter()
        url, key = prepare_database(Path(folder), args.seed)
        print(f"database ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        pool = load.request_pool(url, args.seed)
        result = {"benchmark": "serve", "date": date.today().isoformat(),
                  "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "loadavg_before": [round(v, 2) for v in load_before]},
                  "catalog_products": 54_667, "events": "synthetic purchases (see docstring)",
                  "concurrency": args.concurrency, "compute_threads": args.compute_threads,
                  "workers": args.workers, "torch_threads": args.threads, "bars": BARS,
                  "record": record_cost_ms()}
        if not args.skip_library:
            from recsys.serving.cli import configure_threads
            from recsys.serving.engine import ServingEngine

            configure_threads(args.threads, 1)
            engine = ServingEngine.from_database(url)
            library_rps(engine, pool, 3, 1)  # warm-up
            result["library"] = max((library_rps(engine, pool, args.saturate_seconds, threads)
                                     for threads in (1, args.concurrency)), key=lambda r: r["rps"])
            del engine
        port = free_port()
        service = start_service(url, port, ["--compute-threads", str(args.compute_threads),
                                            "--threads", str(args.threads), "--workers",
                                            str(args.workers), "--alerts-interval", "0"])
        base = f"http://127.0.0.1:{port}"
        try:
            load.run_load(base, key, 3, args.concurrency, database_url=url, settle_s=0)  # warm-up
            saturated = load.run_load(base, key, args.saturate_seconds, args.concurrency,
                                      database_url=url)
            paced = load.run_load(base, key, args.seconds, args.concurrency,
                                  rps=saturated["rps"] * args.paced_share, database_url=url)
        finally:
            status = stop_service(service)
        result.update({"saturated": saturated, "paced": paced, "service_exit_status": status})
        if "library" in result:
            result["throughput_ratio"] = round(saturated["rps"] / result["library"]["rps"], 3)
        result["machine"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    for name, run in (("saturated", saturated), ("paced", paced)):
        print(f"--- service, {name} ---", file=sys.stderr)
        load.print_table(run)
    if "library" in result:
        print(f"library {result['library']['rps']}/s, service {saturated['rps']}/s: ratio "
              f"{result['throughput_ratio']} (bar {BARS['throughput_ratio']})", file=sys.stderr)
    print(f"recording one request's metrics: p50 {result['record']['p50_ms']} ms", file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
