"""Benchmark: the fine-tune the Fine-tune page offers by default, on the shipped demo, end to end.

Loads the shipped Online Retail demo into a temporary SQLite database (as
`python -m recsys init` does), submits a fine-tune job with the page's default
settings (co-purchase pairs, `recsys.training.jobs.DEMO_CONFIG`, starting from
the shipped MiniLM) and runs it in this process as the worker would: pairs,
training with validation, the before/after comparison on validation and test
over the whole catalog, embedding the catalog for every encoder, registering
the model. Reports the job's wall time by phase (from its log lines in SQL)
and its metrics. Bar: under 5 minutes on the project's 2-core machine.

    python bench/finetune_demo.py

Prints a summary and, as its last line, one JSON object (also written to
bench/results/finetune_demo.json).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import machine, save_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "finetune_demo.json"
BAR_S = 300


def main() -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["WORKBENCH_MODELS_DIR"] = os.path.join(folder, "models")
        os.environ["WORKBENCH_EMBEDDINGS_DIR"] = os.path.join(folder, "embeddings")
        url = f"sqlite:///{folder}/demo.db"
        os.environ["DATABASE_URL"] = url
        from db.engine import upgrade
        from recsys import jobs
        from recsys.data.online_retail import ingest_online_retail
        from recsys.embeddings import configure_threads
        from recsys.training.jobs import DEMO_CONFIG, FinetuneSpec

        threads = configure_threads()
        load_before = os.getloadavg()
        upgrade(url)
        ingest_online_retail(actor="bench")
        job_id = jobs.submit(FinetuneSpec(source="co_purchases", config=DEMO_CONFIG, start_from="shipped"),
                             "bench", url=url, spawn=False)
        started = time.perf_counter()
        status = jobs.run_job(job_id, url)
        seconds = time.perf_counter() - started
        job = jobs.get_job(job_id, url)
        logs = jobs.job_logs(job_id, url)
    result = {"status": status, "wall_s": round(seconds, 1), "bar_s": BAR_S,
              "config": DEMO_CONFIG.to_dict(), "message": job.message,
              **{key: getattr(job.result, key, None)
                 for key in ("pairs", "train_s", "steps", "steps_per_s", "val_ndcg_before", "val_ndcg_after",
                             "full_catalog")},
              "log": [{"at": str(row["at"]), "step": row["step"], "message": row["message"]} for row in logs
                      if row["step"] is None or row["message"].count("validation")],
              "machine": machine(threads, load_before)}
    print(f"{status} in {seconds:.0f} s (bar {BAR_S} s); training {result['train_s']} s")
    save_result(result, RESULTS)
    return 0 if status == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
