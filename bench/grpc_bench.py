"""Benchmark: per-call latency of the library called directly, the REST service and the gRPC service.

The same data and request mix as `bench/serve_bench.py` (Home Depot's titles, read at run time
from ``../shared/data/homedepot/products.csv`` or `--data`, skipped with exit status 0 when absent;
synthetic, seeded purchases; `bench/load.py`'s pool: 60% search, 30% recommend, half of them with a
2-product session history, 10% similar). `--products` titles of the catalog (a seeded sample; 0:
all 54,667) keep the set-up short; the protocols' costs do not depend on the catalog's size.

`python -m recsys serve` and `python -m recsys serve-grpc` run side by side on 127.0.0.1 over the
same temporary SQLite database (1 torch thread, 1 compute thread per lane, no alerts, activations
not followed), and the same engine is loaded in this process for the direct calls. For each
`--concurrency` level, `--rounds` rounds run each way in turn (library, REST, gRPC, the order
rotated each round, so that a change in the machine's load falls on all three alike) for
`--seconds` each: that many clients, each a thread calling back to back through the pool (REST:
one keep-alive connection per client, `http.client`; gRPC: one channel shared by the clients;
library: `ServingEngine` called as the service calls it, the customer id pseudonymised, OpenMP
set to one thread in each client thread as in the services' compute threads). Each
call is timed from the client's side. Before measuring, the first 200 requests of the pool are sent
both ways and their product lists compared (REST and gRPC must answer alike).

    python bench/grpc_bench.py                              # about 4 minutes, set-up included
    python bench/grpc_bench.py --seconds 4 --rounds 1 --concurrency 1      # a quick look

Prints a table and, as its last line, one JSON object (also written to bench/results/grpc.json).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "grpc.json"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402  (bench/load.py)
import serve_bench  # noqa: E402  (bench/serve_bench.py)

WAYS = ("library", "rest", "grpc")


def parsed(pool: list[tuple[str, str]]) -> list[tuple[str, dict]]:
    """(endpoint, arguments) of each (endpoint, REST path) of `load.request_pool`."""
    calls = []
    for endpoint, path in pool:
        parts = urlsplit(path)
        params = parse_qs(parts.query)
        target = unquote(parts.path.rsplit("/", 1)[-1])
        arguments = {"k": int(params.get("k", ["10"])[0])}
        if endpoint == "search":
            arguments["q"] = params["q"][0]
        elif endpoint == "recommend":
            arguments.update(user_id=target, history=params.get("history", []))
        else:
            arguments["product_id"] = target
        calls.append((endpoint, arguments))
    return calls


def library_client(engine):
    from recsys.embedding_model import configure_this_thread
    from recsys.privacy.pseudonyms import pseudonymiser

    pseudonymise = pseudonymiser()

    def send(endpoint: str, arguments: dict) -> list[str]:
        configure_this_thread()  # as the services' compute threads do (once per thread)
        if endpoint == "search":
            answer = engine.search(arguments["q"], arguments["k"])
        elif endpoint == "recommend":
            answer = engine.recommend(pseudonymise(arguments["user_id"]), arguments["k"],
                                      arguments["history"])
        else:
            answer = engine.similar(arguments["product_id"], arguments["k"])
        return [item["product_id"] for item in answer.items]

    return lambda: send


def rest_client(port: int, key: str):
    def connect():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def send(endpoint: str, arguments: dict, path: str) -> list[str]:
            connection.request("GET", path, headers={"X-API-Key": key, "X-Request-ID": uuid.uuid4().hex})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"REST {path}: {response.status} {body[:200]!r}")
            return [item["product_id"] for item in json.loads(body)["items"]]

        return send

    return connect


def grpc_client(channel, key: str):
    from recsys.serving.protos import workbench_pb2 as pb
    from recsys.serving.protos import workbench_pb2_grpc as rpc

    stub = rpc.WorkbenchStub(channel)

    def send(endpoint: str, arguments: dict) -> list[str]:
        metadata = (("x-api-key", key), ("x-request-id", uuid.uuid4().hex))
        if endpoint == "search":
            reply = stub.Search(pb.SearchRequest(q=arguments["q"], k=arguments["k"]), metadata=metadata,
                                timeout=30)
        elif endpoint == "recommend":
            reply = stub.Recommend(pb.RecommendRequest(user_id=arguments["user_id"], k=arguments["k"],
                                                       history=arguments["history"]), metadata=metadata,
                                   timeout=30)
        else:
            reply = stub.Similar(pb.SimilarRequest(product_id=arguments["product_id"], k=arguments["k"]),
                                 metadata=metadata, timeout=30)
        return [item.product_id for item in reply.items]

    return lambda: send


def run_way(way: str, connect, pool, calls, seconds: float, concurrency: int) -> list[tuple[str, float]]:
    """(endpoint, ms) of every call `concurrency` clients made in `seconds`, back to back."""
    results: list[tuple[str, float]] = []
    stop_at = time.perf_counter() + seconds

    def client(offset: int) -> None:
        send = connect()
        position = offset
        while time.perf_counter() < stop_at:
            endpoint, arguments = calls[position % len(calls)]
            path = pool[position % len(pool)][1]
            position += 1
            started = time.perf_counter()
            send(endpoint, arguments, path) if way == "rest" else send(endpoint, arguments)
            results.append((endpoint, (time.perf_counter() - started) * 1000))

    threads = [threading.Thread(target=client, args=(i * (len(calls) // concurrency),))
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def summary(results: list[tuple[str, float]], seconds: float) -> dict:
    row = {"requests": len(results), "rps": round(len(results) / seconds, 1)}
    for endpoint in ("all", "search", "recommend", "similar"):
        latencies = np.array([ms for name, ms in results if endpoint in ("all", name)])
        if len(latencies):
            row[endpoint] = {"p50_ms": round(float(np.percentile(latencies, 50)), 3),
                             "p95_ms": round(float(np.percentile(latencies, 95)), 3)}
    return row


def start_grpc(url: str, port: int, extra: list[str]) -> subprocess.Popen:
    import grpc

    process = subprocess.Popen([sys.executable, "-m", "recsys", "serve-grpc", "--host", "127.0.0.1",
                                "--port", str(port), *extra], cwd=ROOT,
                               env={**os.environ, "DATABASE_URL": url})
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"error: serve-grpc exited with status {process.returncode}")
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return process
            except grpc.FutureTimeoutError:
                pass
    process.kill()
    raise SystemExit("error: serve-grpc did not start within 10 minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=serve_bench.DATA,
                        help="the folder of Home Depot's products.csv")
    parser.add_argument("--products", type=int, default=10_000, help="catalog titles used (0: all)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each way's run in a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,4", help="client counts, comma-separated")
    parser.add_argument("--grpc-compute-threads", type=int, default=1,
                        help="serve-grpc's --compute-threads (0: model work on its event loop)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    if not (0 < args.seconds <= 120 and 0 < args.rounds <= 10 and all(0 < n <= 32 for n in levels)):
        raise SystemExit("error: --seconds in (0, 120], --rounds 1..10, --concurrency levels 1..32")
    if not (args.data / "products.csv").exists():
        print(f"skipped: {args.data / 'products.csv'} is not there (the Home Depot data is read at "
              "run time and never shipped)", file=sys.stderr)
        return
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="grpc-bench-") as folder:
        os.environ["WORKBENCH_ENGINES_DIR"] = str(Path(folder) / "engines")  # fitted here, loaded by both
        started = time.perf_counter()
        url, key = serve_bench.prepare_database(Path(folder), args.seed, args.data, args.products or None)
        print(f"database ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        pool = load.request_pool(url, args.seed)
        calls = parsed(pool)

        import grpc

        from recsys.serving.cli import configure_threads
        from recsys.serving.engine import ServingEngine

        os.environ["WORKBENCH_THREADS"] = "1"  # the query encoder's threads, as the services get them
        configure_threads(1, 1)
        engine = ServingEngine.from_database(url)  # fits and stores the engines the services load
        engine.warm_up()
        common = ["--threads", "1", "--alerts-interval", "0", "--follow", "0"]
        rest_port, grpc_port = serve_bench.free_port(), serve_bench.free_port()
        rest = serve_bench.start_service(url, rest_port, [*common, "--compute-threads", "1"])
        served = None
        try:
            served = start_grpc(url, grpc_port,
                                [*common, "--compute-threads", str(args.grpc_compute_threads)])
            channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
            connects = {"library": library_client(engine), "rest": rest_client(rest_port, key),
                        "grpc": grpc_client(channel, key)}
            rest_send, grpc_send = connects["rest"](), connects["grpc"]()
            differing = sum(rest_send(endpoint, arguments, path) != grpc_send(endpoint, arguments)
                            for (endpoint, arguments), (_, path) in zip(calls[:200], pool[:200]))
            for way in WAYS:  # warm-up: connections, first-call costs
                run_way(way, connects[way], pool, calls, 2, 1)
            results = {}
            for level in levels:
                gathered = {way: [] for way in WAYS}
                for round_number in range(args.rounds):
                    order = WAYS[round_number % 3:] + WAYS[:round_number % 3]
                    for way in order:
                        gathered[way] += run_way(way, connects[way], pool, calls, args.seconds, level)
                results[str(level)] = {way: summary(found, args.seconds * args.rounds)
                                       for way, found in gathered.items()}
            channel.close()
        finally:
            rest_status = serve_bench.stop_service(rest)
            grpc_status = serve_bench.stop_service(served) if served is not None else None
        result = {"benchmark": "grpc", "date": date.today().isoformat(),
                  "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "loadavg_before": [round(v, 2) for v in load_before],
                              "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
                  "catalog_products": args.products or "all", "seconds": args.seconds,
                  "rounds": args.rounds, "grpc_compute_threads": args.grpc_compute_threads,
                  "rest_grpc_differing_answers": int(differing), "compared": min(200, len(calls)),
                  "exit_status": {"rest": rest_status, "grpc": grpc_status}, "levels": results}
    for level, ways in results.items():
        print(f"--- {level} client(s): p50 / p95 ms per call (requests/s) ---", file=sys.stderr)
        print(f"{'way':<8} {'all':>16} {'search':>16} {'recommend':>16} {'similar':>16} {'rps':>7}",
              file=sys.stderr)
        for way, row in ways.items():
            cells = [f"{row[e]['p50_ms']:.2f} / {row[e]['p95_ms']:.2f}" if e in row else "-"
                     for e in ("all", "search", "recommend", "similar")]
            print(f"{way:<8} " + " ".join(f"{cell:>16}" for cell in cells) + f" {row['rps']:>7}",
                  file=sys.stderr)
        library, rest_row, grpc_row = (ways[w]["all"]["p50_ms"] for w in WAYS)
        print(f"medians: REST/library {rest_row / library:.2f}, gRPC/library {grpc_row / library:.2f}, "
              f"gRPC/REST {grpc_row / rest_row:.2f}", file=sys.stderr)
    print(f"REST and gRPC answers differing: {differing} of {result['compared']}", file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
