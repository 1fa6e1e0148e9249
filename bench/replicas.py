"""Benchmark: throughput of the REST service with 1 and 2 replicas behind nginx, on this machine.

Set-up (all on 127.0.0.1, in a temporary folder): a throw-away PostgreSQL server (Debian's
`postgresql` package; or `--database-url`), the demo loaded into it by `python -m recsys init`,
its engines fitted into a temporary artifact folder (`WORKBENCH_ARTIFACTS_DIR`; the ONNX exports
come from this checkout's var/onnx cache unless WORKBENCH_ONNX_DIR says otherwise). Two replicas,
`python -m recsys serve` on two free ports (WORKBENCH_REPLICA replica-1 and replica-2, sharing the
database and the artifact folder), and nginx with `deploy/nginx.conf` (its upstream rewritten to
the replicas' ports): one nginx whose upstream is replica-1 alone, one with both.

Measured in one run with `bench/load.py`'s clients and request mix (60% search, 30% recommend,
10% similar; the same seed and pool), `--concurrency` clients back to back for `--seconds` per
phase, after `--warm-up` seconds of the same load, three phases:

1. "direct, 1 replica": replica-1 without nginx;
2. "nginx, 1 replica";
3. "nginx, 2 replicas",

repeated for `--rounds` rounds, each round in a rotated order (so that a drift of the machine's
load hits each phase alike); the medians over the rounds are reported. For each phase:
requests/s, p50/p95 per endpoint (as the clients see them), errors, the requests each replica
recorded in request_metrics (the share nginx gave each), and the CPU seconds per second the
replicas used (from /proc): on a machine shared with other work, two processes get a larger share
of the cores than one, which shows here rather than as a gain from replication. Both replicas run
throughout, so the phases differ only in where requests go.

    python bench/replicas.py                                  # 3 rounds of 20 s phases, 8 clients
    python bench/replicas.py --seconds 5 --rounds 1           # a quick look

Prints a table and, as its last line, one JSON object (also written to
bench/results/replicas.json). Needs nginx (`apt-get install -y nginx`) and, without
--database-url, PostgreSQL's server binaries.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from load import run_load  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "replicas.json"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@contextmanager
def postgres(folder: Path):
    """A throw-away PostgreSQL server on a free 127.0.0.1 port; its URL (as tests/conftest.py)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise SystemExit("error: PostgreSQL is not installed (apt-get install postgresql), "
                         "or pass --database-url")
    # A folder of its own (not under `folder`, which only root may enter): the server runs as postgres.
    bindir, data, port = found[-1].parent, Path(tempfile.mkdtemp(prefix="bench-replicas-pg-")), free_port()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(data, "postgres")
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "workbench")
    run(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200", "start")
    try:
        yield f"postgresql+psycopg://workbench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def recsys(args: list[str], env: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "recsys", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode:
        raise SystemExit(f"error: recsys {' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout) if done.stdout.strip().startswith(("{", "[")) else {}


def wait_for(url: str, process: subprocess.Popen | None = None, timeout_s: float = 600) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"error: {url} stopped with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"error: {url} did not answer /health within {timeout_s:.0f} s")


def start_replica(name: str, port: int, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--alerts-interval", "0"], cwd=ROOT,
                            env={**env, "WORKBENCH_REPLICA": name}, stdout=subprocess.DEVNULL,
                            stderr=log.open("w"))


def nginx_config(listen_port: int, backend_ports: list[int]) -> str:
    """deploy/nginx.conf with its listen address and upstream servers replaced."""
    text = NGINX_CONF.read_text()
    servers = "".join(f"        server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n"
                      for port in backend_ports)
    text, count = re.subn(r"(        server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, text, count=1)
    text, listens = re.subn(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{listen_port};", text)
    if count != 1 or listens != 1:
        raise SystemExit(f"error: {NGINX_CONF} no longer has one upstream block of 127.0.0.1 servers "
                         "and one listen line")
    return text


def start_nginx(folder: Path, listen_port: int, backend_ports: list[int]) -> subprocess.Popen:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("error: nginx is not installed (Debian: apt-get install -y nginx)")
    folder.mkdir(parents=True)
    config = folder / "nginx.conf"
    config.write_text(nginx_config(listen_port, backend_ports))
    return subprocess.Popen([binary, "-p", str(folder), "-c", str(config), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def per_replica(database_url: str, start: datetime, end: datetime) -> dict[str, int]:
    """Requests each replica recorded with `start < at <= end` (the Monitoring page's query)."""
    from recsys.services import monitoring

    frame = monitoring.load(database_url, start, end)["frame"]
    table = monitoring.by_replica(frame, (end - start).total_seconds())
    return {row.replica: int(row.requests) for row in table.itertuples()}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes `pids` have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def phase(name: str, url: str, key: str, args, database_url: str, replica_pids: list[int]) -> dict:
    if args.warm_up:
        run_load(url, key, args.warm_up, args.concurrency, database_url=database_url, settle_s=0)
    started, cpu_before, clock = utc_now(), cpu_seconds(replica_pids), time.perf_counter()
    summary = run_load(url, key, args.seconds, args.concurrency, database_url=database_url, settle_s=15)
    # CPU the replicas got per second of the phase: on a machine shared with other work, two
    # processes are given a larger share of the cores than one, whatever they do with it.
    replica_cpu = (cpu_seconds(replica_pids) - cpu_before) / (time.perf_counter() - clock)
    ended = utc_now() + timedelta(seconds=1)
    row = {"phase": name, "rps": summary["rps"], "requests": summary["requests"],
           "replica_cpu_per_s": round(replica_cpu, 2),
           "requests_per_cpu_s": round(summary["requests"] / (replica_cpu * summary["seconds"]), 1)
           if replica_cpu else None,
           "errors": summary["errors"], "client_errors": summary["client_errors"],
           "recorded": summary["recorded"],
           "p50_ms": {e: r["p50_ms"] for e, r in summary["endpoints"].items()},
           "p95_ms": {e: r["p95_ms"] for e, r in summary["endpoints"].items()},
           "per_replica": per_replica(database_url, started, ended), "load_average": os.getloadavg()[0]}
    p50, p95 = row["p50_ms"], row["p95_ms"]
    print(f"{name:<18} {row['rps']:>7}/s  search p50/p95 {p50.get('search')}/{p95.get('search')} "
          f"ms  recommend {p50.get('recommend')}/{p95.get('recommend')} ms  "
          f"errors {row['errors']}  replicas' CPU {row['replica_cpu_per_s']} s/s  "
          f"per replica {row['per_replica']}", file=sys.stderr, flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    parser.add_argument("--warm-up", type=float, default=5.0, help="seconds of load before each phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the three phases, each round in a rotated order (medians reported)")
    parser.add_argument("--database-url",
                        help="an empty PostgreSQL database to use (default: a throw-away server)")
    args = parser.parse_args()
    if not 0 < args.seconds <= 600 or not 0 < args.concurrency <= 64:
        raise SystemExit("error: --seconds must be in (0, 600] and --concurrency in 1..64")
    folder = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    processes: list[subprocess.Popen] = []
    try:
        with (postgres(folder) if args.database_url is None else _given(args.database_url)) as url:
            artifacts = folder / "artifacts"
            artifacts.mkdir()
            env = {**os.environ, "DATABASE_URL": url, "WORKBENCH_ARTIFACTS_DIR": str(artifacts),
                   "WORKBENCH_ADMIN_PASSWORD": "bench-password", "HF_HUB_OFFLINE": "1",
                   "PYTHONPATH": str(ROOT),
                   "WORKBENCH_ONNX_DIR": os.environ.get("WORKBENCH_ONNX_DIR") or str(ROOT / "var" / "onnx")}
            for setting in ("WORKBENCH_ENGINES_DIR", "WORKBENCH_MODELS_DIR", "WORKBENCH_EMBEDDINGS_DIR"):
                env.pop(setting, None)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            os.environ["DATABASE_URL"] = url  # this process reads the request pool and the metrics
            began = time.time()
            recsys(["init"], env)
            key = recsys(["apikey", "create", "--name", "bench-replicas"], env)["key"]
            print(f"demo loaded into PostgreSQL and fitted in {time.time() - began:.0f} s", file=sys.stderr)
            ports = [free_port(), free_port()]
            for number, port in enumerate(ports, 1):
                log = folder / f"replica-{number}.log"
                processes.append(start_replica(f"replica-{number}", port, env, log))
            for process, port in zip(processes, ports, strict=True):
                wait_for(f"http://127.0.0.1:{port}", process)
            balancers = {"one": free_port(), "two": free_port()}
            processes.append(start_nginx(folder / "nginx-one", balancers["one"], ports[:1]))
            processes.append(start_nginx(folder / "nginx-two", balancers["two"], ports))
            for port in balancers.values():
                wait_for(f"http://127.0.0.1:{port}", timeout_s=30)
            targets = {"direct, 1 replica": ports[0], "nginx, 1 replica": balancers["one"],
                       "nginx, 2 replicas": balancers["two"]}
            pids = [process.pid for process in processes[:2]]
            order, rows = list(targets), []
            for number in range(args.rounds):  # rotated, so a drift of the machine's load hits each alike
                for name in order[number % 3:] + order[:number % 3]:
                    rows.append({"round": number + 1, **phase(name, f"http://127.0.0.1:{targets[name]}", key,
                                                              args, url, pids)})
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT if process.args[0] == sys.executable else signal.SIGQUIT)
        for process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)
    medians = {name: median_of([row for row in rows if row["phase"] == name]) for name in targets}
    direct, one, two = (medians[name]["rps"] for name in targets)
    result = {"medians": medians, "rounds": rows, "two_over_one": round(two / one, 2) if one else None,
              "nginx_over_direct": round(one / direct, 2) if direct else None,
              "cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
              "seconds": args.seconds, "concurrency": args.concurrency}
    for name, row in medians.items():
        print(f"median {name:<18} {row['rps']:>7}/s  p50 {row['p50_ms']}  p95 {row['p95_ms']}  "
              f"replicas' CPU {row['replica_cpu_per_s']} s/s, {row['requests_per_cpu_s']} requests per CPU s",
              file=sys.stderr)
    print(f"2 replicas / 1 replica (both behind nginx): {result['two_over_one']}x; nginx / direct: "
          f"{result['nginx_over_direct']}x; {result['cpus']} CPUs, "
          f"load average {result['load_average_at_end']}",
          file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


def median_of(rows: list[dict]) -> dict:
    """The median of each figure over the rounds of one phase (requests and errors: totals)."""
    def middle(values):
        return round(float(statistics.median(values)), 2)

    endpoints = rows[0]["p50_ms"]
    return {"rps": middle([row["rps"] for row in rows]),
            "p50_ms": {e: middle([row["p50_ms"][e] for row in rows]) for e in endpoints},
            "p95_ms": {e: middle([row["p95_ms"][e] for row in rows]) for e in endpoints},
            "replica_cpu_per_s": middle([row["replica_cpu_per_s"] for row in rows]),
            "requests_per_cpu_s": middle([row["requests_per_cpu_s"] for row in rows]),
            "requests": sum(row["requests"] for row in rows), "errors": sum(row["errors"] for row in rows),
            "recorded": sum(row["recorded"] for row in rows),
            "per_replica": {name: sum(row["per_replica"].get(name, 0) for row in rows)
                            for name in sorted({n for row in rows for n in row["per_replica"]})}}


@contextmanager
def _given(url: str):
    yield url


if __name__ == "__main__":
    raise SystemExit(main())
