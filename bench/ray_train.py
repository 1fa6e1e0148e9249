"""Benchmark (and GPU check): fine-tuning steps per second under Ray Train, by number of workers.

Loads the shipped Online Retail demo into a temporary SQLite database (as
`python -m recsys init` does), prepares the co-purchase pairs as the Fine-tune
job does (`recsys.training.jobs.prepare_pairs`, split seed 42), and trains the
shipped MiniLM for --steps steps (batch --batch-size, learning rate 5e-5, one
validation on --validation-corpus products before and after) once in this
process (the local engine, with a worker's torch threads unless --local-threads
says otherwise; skip with --no-local) and once under Ray Train for each number
of workers in --workers (all of it --repeat times, the median run shown), on a Ray started inside this process
(`recsys.cluster.connect("local")`, $WORKBENCH_RAY_CPUS CPUs, default: the
cores) or on the cluster $RAY_ADDRESS names. Each worker reads its own batch of
every step (DDP), so a step of N workers reads N batches: the table gives
steps/s without the validations, pairs/s (steps/s x batch x workers) and the
scaling of pairs/s against 1 worker, with each run's wall time (Ray's worker
start included).

    python bench/ray_train.py --workers 1,2 --steps 20            # CPU, local Ray
    python bench/ray_train.py --workers 1,2,4 --gpu --steps 200   # a GPU per worker

Bounded by --steps (and --max-s, after which no further run starts). Talks to
no network beyond Ray on 127.0.0.1 (or $RAY_ADDRESS). Prints a table and, as its
last line, one JSON object (also written to bench/results/ray_train.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import machine, save_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ray_train.json"


def _row(name: str, workers: int, result: dict, wall_s: float, batch: int) -> dict:
    steps_per_s = result["training_steps_per_s"]
    return {"engine": name, "workers": workers, "device": result["device"], "steps": result["steps"],
            "train_s": result["train_s"], "validation_s": result["validation_s"],
            "steps_per_s": steps_per_s, "pairs_per_s": round(steps_per_s * batch * workers, 1),
            "wall_s": round(wall_s, 1), "val_ndcg@10_before": result["val_ndcg@10_before"],
            "val_ndcg@10_after": result["val_ndcg@10_after"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--gpu", action="store_true", help="a GPU per Ray Train worker (and cuda locally)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run (default 20)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--validation-corpus", type=int, default=500)
    parser.add_argument("--no-local", action="store_true", help="skip the run in this process")
    parser.add_argument("--local-threads", type=int,
                        help="torch threads of the run in this process (default: a worker's, "
                             "--cpus-per-worker rounded down, at least 1: the same compute as one worker)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting; the median is shown")
    parser.add_argument("--max-s", type=float, default=900, help="start no further run after this (s)")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.workers.split(",") if part.strip()]
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["WORKBENCH_MODELS_DIR"] = os.path.join(folder, "models")
        os.environ["WORKBENCH_EMBEDDINGS_DIR"] = os.path.join(folder, "embeddings")
        url = f"sqlite:///{folder}/demo.db"
        os.environ["DATABASE_URL"] = url
        from db.engine import upgrade
        from recsys import cluster
        from recsys.data.online_retail import ingest_online_retail
        from recsys.embeddings import configure_threads
        from recsys.training.finetune import FinetuneConfig, RayScaling, finetune
        from recsys.training.jobs import _load_active_data, prepare_pairs

        if args.gpu:
            import torch

            if not torch.cuda.is_available():
                print("skipped: --gpu but no CUDA device here; run this on a machine with a GPU",
                      file=sys.stderr)
                return 0
        threads = configure_threads()
        load_before = os.getloadavg()
        upgrade(url)
        ingest_online_retail(actor="bench")
        catalog, data, _ = _load_active_data(url, "co_purchases")
        prepared = prepare_pairs("co_purchases", catalog, **data)
        train, validation = prepared["pairs"]["train"], prepared["pairs"]["validation"]
        config = FinetuneConfig(max_steps=args.steps, batch_size=args.batch_size, learning_rate=5e-5,
                                eval_steps=args.steps, validation_corpus=args.validation_corpus, seed=42,
                                device="cuda" if args.gpu else "cpu")
        print(f"{len(train):,} training pairs, {len(validation):,} validation; {args.steps} steps of "
              f"{args.batch_size} per worker", file=sys.stderr)
        local_threads = args.local_threads or max(1, int(args.cpus_per_worker))
        os.environ["WORKBENCH_THREADS"] = str(local_threads)  # what finetune's configure_threads gives torch
        address = os.environ.get("RAY_ADDRESS") or cluster.LOCAL
        settings = ([] if args.no_local else [("local", 1)]) + [("ray", workers) for workers in counts]
        runs: dict = {setting: [] for setting in settings}
        started = time.perf_counter()
        for round_ in range(args.repeat):
            for engine, workers in settings:
                if time.perf_counter() - started > args.max_s:
                    print(f"stopped before {engine} x {workers}, round {round_ + 1}: past --max-s "
                          f"{args.max_s:g} s", file=sys.stderr)
                    break
                scaling = None
                if engine == "ray":
                    cluster.connect(address)
                    scaling = RayScaling(workers=workers, use_gpu=args.gpu,
                                         cpus_per_worker=args.cpus_per_worker)
                began = time.perf_counter()
                result = finetune(train, validation, catalog, config,
                                  Path(folder) / "models" / f"{engine}{workers}-{round_}", scaling=scaling)
                runs[(engine, workers)].append(_row(engine, workers, result, time.perf_counter() - began,
                                                    args.batch_size))
        rows = []
        for (engine, workers), measured in runs.items():
            if measured:  # the median run by steps/s, with how many runs it is the median of
                middle = sorted(measured, key=lambda row: row["steps_per_s"])[(len(measured) - 1) // 2]
                rows.append({**middle, "runs": len(measured),
                             "steps_per_s_all": [row["steps_per_s"] for row in measured]})
        cluster.connect(address)
        resources = cluster.check(address).to_dict()
        cluster.disconnect()
    one = next((row["pairs_per_s"] for row in rows if row["engine"] == "ray" and row["workers"] == 1), None)
    for row in rows:
        row["scaling_vs_1_worker"] = round(row["pairs_per_s"] / one, 2) if one else None
    print(f"{'engine':<7}{'workers':>8}{'device':>8}{'steps/s':>9}{'pairs/s':>9}{'scaling':>9}{'wall s':>8}"
          f"{'nDCG before':>13}{'after':>8}")
    for row in rows:
        scaling = "" if row["scaling_vs_1_worker"] is None else f"{row['scaling_vs_1_worker']:.2f}"
        print(f"{row['engine']:<7}{row['workers']:>8}{row['device']:>8}{row['steps_per_s']:>9.3f}"
              f"{row['pairs_per_s']:>9.1f}{scaling:>9}{row['wall_s']:>8.1f}"
              f"{row['val_ndcg@10_before']:>13.4f}{row['val_ndcg@10_after']:>8.4f}")
    result = {"steps": args.steps, "batch_size": args.batch_size, "gpu": args.gpu,
              "cpus_per_worker": args.cpus_per_worker, "local_threads": local_threads,
              "repeat": args.repeat, "train_pairs": len(train), "rows": rows,
              "ray": resources, "machine": machine(threads, load_before)}
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
