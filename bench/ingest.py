"""Benchmark: ingest the whole shipped Online Retail file (541,909 invoice lines)
into a fresh SQLite database, and measure the time and the peak memory it takes.

Each run is a child process of its own with a database of its own: peak memory
is read from ``getrusage(RUSAGE_SELF).ru_maxrss``, a high-water mark that only a
fresh process resets, and it counts the native allocations of pandas and Arrow
that ``tracemalloc`` cannot see. The child migrates its database first and then
times only `ingest_online_retail` (read, validate, clean and store).

    python bench/ingest.py              # 5 runs
    python bench/ingest.py --runs 3

Prints a table of the runs and, as its last line, one JSON object (also written
to bench/results/ingest.json): rows, seconds (the median), seconds_runs, peak_mb
(the largest of the runs), peak_mb_runs, catalog_rows, events_rows, users_rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest.json"


def _peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def child(db_path: Path, source: Path) -> dict:
    """One run in this process: migrate, then time the ingest alone."""
    sys.path.insert(0, str(ROOT))
    from db import queries
    from db.engine import session_scope, upgrade
    from recsys.data.online_retail import ingest_online_retail

    url = f"sqlite:///{db_path}"
    upgrade(url)
    from recsys.privacy.keys import current_pseudonym_key

    current_pseudonym_key()  # made at the first start (`recsys init`), before the ingest
    baseline_mb = _peak_mb()
    start = time.perf_counter()
    result = ingest_online_retail(source, actor="bench", url=url)
    seconds = time.perf_counter() - start
    peak_mb = _peak_mb()

    with session_scope(url) as session:
        versions = queries.list_versions(session)
        catalog_id, events_id = result.version_ids
        rows = dict(zip(versions["version"], versions["rows"]))
        users_rows = len(queries.users_frame(session, events_id))
    catalog, events = result.reports
    assert rows[catalog_id] == catalog.rows_out and rows[events_id] == events.rows_out
    return {
        "rows": catalog.rows_in,
        "seconds": round(seconds, 3),
        "peak_mb": round(peak_mb, 1),
        "baseline_mb": round(baseline_mb, 1),
        "catalog_rows": int(rows[catalog_id]),
        "events_rows": int(rows[events_id]),
        "users_rows": users_rows,
        "customers_pseudonymised": events.privacy["pseudonymised"]["user_id"]["customers"],
    }


def run_once(source: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        # The run's own keys (made at its start), not the checkout's.
        keys = {"WORKBENCH_KEYS_DIR": folder, "WORKBENCH_SECRETS_FILE": str(Path(folder) / "secrets.toml")}
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child",
             "--db", str(Path(folder) / "bench.db"), "--file", str(source)],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, **keys})
        if completed.returncode != 0:
            sys.stderr.write(completed.stdout + completed.stderr)
            raise SystemExit(f"run failed with exit status {completed.returncode}")
        return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions, each in a fresh process")
    parser.add_argument("--file", type=Path, default=ROOT / "data" / "online_retail.parquet")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.db, args.file)))
        return

    runs = []
    print(f"{'run':>3}  {'seconds':>8}  {'peak MB':>8}  {'base MB':>8}  {'catalog':>8}  "
          f"{'events':>8}  {'users':>6}")
    for number in range(1, args.runs + 1):
        run = run_once(args.file)
        runs.append(run)
        print(f"{number:>3}  {run['seconds']:>8.2f}  {run['peak_mb']:>8.0f}  {run['baseline_mb']:>8.0f}  "
              f"{run['catalog_rows']:>8,}  {run['events_rows']:>8,}  {run['users_rows']:>6,}", flush=True)

    import pandas as pd
    import sqlalchemy

    first = runs[0]
    summary = {
        "benchmark": "ingest_online_retail",
        "file": str(args.file.relative_to(ROOT) if args.file.is_relative_to(ROOT) else args.file),
        "database": "sqlite",
        "rows": first["rows"],
        "seconds": round(statistics.median(r["seconds"] for r in runs), 3),
        "seconds_runs": [r["seconds"] for r in runs],
        "peak_mb": max(r["peak_mb"] for r in runs),
        "peak_mb_runs": [r["peak_mb"] for r in runs],
        "catalog_rows": first["catalog_rows"],
        "events_rows": first["events_rows"],
        "users_rows": first["users_rows"],
        "customers_pseudonymised": first["customers_pseudonymised"],
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"median {summary['seconds']:.2f} s, peak {summary['peak_mb']:.0f} MB; written to "
          f"{RESULTS.relative_to(ROOT)}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
