"""Benchmark: how long other SQLite writers wait while the shipped Online Retail file is ingested.

Three writers keep writing during the ingest, as the REST service, a job and the login page do:
a request-metric row, a job's progress and an audit entry, each every 50 ms. Each mode runs in a
fresh process with a fresh database: one transaction for the whole upload
(`WORKBENCH_INGEST_TRANSACTION_S=0`, as before) and the bounded transactions of 1 s (the
default on SQLite). Writers wait up to SQLite's busy timeout (30 s, `WORKBENCH_SQLITE_BUSY_MS`)
and then fail with "database is locked".

    python bench/sqlite_lock.py            # about a minute

Prints a table and one JSON object (also written to bench/results/sqlite_lock.json).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "sqlite_lock.json"
MODES = {"one transaction": "0", "bounded (1 s)": "1"}


def child(folder: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from db import queries
    from db.engine import session_scope, upgrade
    from db.models import Job, utc_now
    from db.monitoring import insert_request_metrics
    from recsys.data.online_retail import ingest_online_retail
    from recsys.jobs import JobContext
    from recsys.privacy.keys import current_pseudonym_key

    url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(url)
    current_pseudonym_key()
    with session_scope(url) as session:
        job = Job(kind="fit_engines", created_by="bench", status="running")
        session.add(job)
        session.flush()
        job_id = job.id
    progress = JobContext(job_id, None, url, "bench")

    def metric() -> None:
        with session_scope(url) as session:
            insert_request_metrics(session, [{"at": utc_now(), "endpoint": "search", "status": 200,
                                              "latency_ms": 3.0}])

    def audit() -> None:
        with session_scope(url) as session:
            queries.audit(session, "someone", "login_failed")

    writes = {"metrics": metric, "job progress": lambda: progress.progress(0.5, "fitting"), "audit": audit}
    waits: list[float] = []
    errors: list[str] = []
    done = threading.Event()

    def keep_writing(name, write) -> None:
        while not done.is_set():
            started = time.perf_counter()
            try:
                write()
            except Exception as error:
                errors.append(f"{name}: {str(error).splitlines()[0]}")
            waits.append(time.perf_counter() - started)
            time.sleep(0.05)

    threads = [threading.Thread(target=keep_writing, args=item) for item in writes.items()]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    ingest_online_retail(actor="bench", url=url)
    seconds = time.perf_counter() - started
    done.set()
    for thread in threads:
        thread.join()
    waits.sort()
    return {"ingest_s": round(seconds, 2), "writes": len(waits), "errors": len(errors),
            "first_error": errors[0] if errors else None, "max_wait_s": round(waits[-1], 2),
            "p99_wait_s": round(waits[int(0.99 * (len(waits) - 1))], 3),
            "median_wait_ms": round(1000 * statistics.median(waits), 1)}


def main() -> None:
    if "--child" in sys.argv:
        print(json.dumps(child(Path(sys.argv[sys.argv.index("--child") + 1]))))
        return
    results = {}
    for mode, seconds in MODES.items():
        with tempfile.TemporaryDirectory(prefix="bench-lock-") as folder:
            env = {**os.environ, "WORKBENCH_INGEST_TRANSACTION_S": seconds, "WORKBENCH_KEYS_DIR": folder,
                   "WORKBENCH_SECRETS_FILE": str(Path(folder) / "secrets.toml")}
            done = subprocess.run([sys.executable, __file__, "--child", folder], capture_output=True,
                                  text=True, env=env, cwd=ROOT)
            if done.returncode:
                raise SystemExit(done.stdout + done.stderr)
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        row = results[mode]
        print(f"{mode:>16}: ingest {row['ingest_s']:.1f} s; {row['writes']} writes, {row['errors']} failed; "
              f"wait max {row['max_wait_s']:.2f} s, p99 {row['p99_wait_s']:.3f} s, "
              f"median {row['median_wait_ms']:.1f} ms", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
