"""Benchmark: how fast, and in how much memory, hostile upload files are refused.

Each case runs in a fresh Python process: it imports the reader, records its peak memory so far,
then reads the file with `recsys.data.readers.read_table` under the default `IngestLimits` and
reports the refusal, the seconds it took and the peak resident memory of the whole process
(Linux `ru_maxrss`). The files are made in a temporary folder:

- wide.csv: 10 MB, a header of 1,000,000 columns and one row (ran over 10 minutes at 2.2 GB before);
- long-name.csv: one column name of 200,000 characters (a `_csv.Error` traceback before);
- rows.parquet: 10,000,000 identical rows, zstd, about 50 KB (6.0 GB and 55 s before);
- case.csv: `product_id,title,Title` (accepted before, the last column silently winning).

    python bench/hostile.py

Prints a table and, as its last line, one JSON object (also written to bench/results/hostile.json).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "hostile.json"
sys.path.insert(0, str(ROOT))
from search import save_result  # noqa: E402  (bench/search.py)

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from recsys.data.readers import read_table
from recsys.data.report import IngestError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
try:
    read_table({path!r})
    outcome = "accepted"
except IngestError as error:
    outcome = error.report.problems[0].message()
print(json.dumps({{"seconds": round(time.perf_counter() - started, 2), "outcome": outcome,
                  "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "peak_mib_before_reading": round(before)}}))
"""


def make_files(folder: Path) -> dict[str, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {"wide.csv": folder / "wide.csv", "long-name.csv": folder / "long-name.csv",
             "rows.parquet": folder / "rows.parquet", "case.csv": folder / "case.csv"}
    header = ",".join(f"c{i}" for i in range(1_000_000))
    files["wide.csv"].write_text(header + "\n" + "x," * 999_999 + "x\n")
    files["long-name.csv"].write_text("product_id," + "t" * 200_000 + "\nP1,x\n")
    same = pa.DictionaryArray.from_arrays(pa.array(np.zeros(10_000_000, dtype=np.int8)), pa.array(["same"]))
    pq.write_table(pa.table({"product_id": same, "title": same}), files["rows.parquet"], compression="zstd")
    files["case.csv"].write_text("product_id,title,Title\nP1,a,b\n")
    return files


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, path in make_files(Path(folder)).items():
            child = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(path))],
                                   capture_output=True, text=True, timeout=600)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            rows.append({"file": name, "bytes": path.stat().st_size, **result})
    print(f"{'file':<15}{'bytes':>12}{'seconds':>9}{'peak MiB':>10}  outcome")
    for row in rows:
        print(f"{row['file']:<15}{row['bytes']:>12,}{row['seconds']:>9}{row['peak_mib']:>10}  "
              f"{row['outcome']}")
    save_result({"benchmark": "hostile", "cases": rows}, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
