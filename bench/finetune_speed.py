"""Benchmark: our fine-tune against a bare sentence-transformers training loop, same settings.

Both train all-MiniLM-L6-v2 with MultipleNegativesRankingLoss on the same
query -> product pairs (Home Depot dev judgments graded >= 2.33, train part of
the seeded 80/10/10 split by query; skipped when the data is absent), for --steps
steps of batch --batch-size, learning rate 5e-5, 10% warm-up, seed 42, the
no-duplicates batch sampler, each in a fresh Python process of its own, one
after the other (in one process the second run was the slower one, whichever
it was; a process each removes that order effect):

- bare: `SentenceTransformerTrainer(model, args, train_dataset, loss)` with no
  evaluator, no callbacks, no checkpoints: the loop of the library's docs.
- ours: `recsys.training.finetune.finetune` as a fine-tune job runs it:
  validation before, every steps/4 and after, the best checkpoint kept, and
  progress and a log line per logging step written to a job's rows in SQL
  (a temporary SQLite database).

Reported: steps per second of each (ours: of its training time without the
validations it runs, and of its whole `trainer.train()`), and their ratio. Bar:
ours >= 90% of bare. Torch uses WORKBENCH_THREADS or every core in both.

    python bench/finetune_speed.py                 # 1,000 steps each, ours first (about 35 minutes on 2 cores)
    python bench/finetune_speed.py --steps 300 --order bare,ours
    python bench/finetune_speed.py --arm ours      # one arm in this process; prints its JSON

Prints a table and, as its last line, one JSON object (also written to
bench/results/finetune_speed.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import data_missing, load_data, machine, save_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "finetune_speed.json"
BAR = 0.90


def pairs():
    """(train pairs, validation pairs, catalog, validation's judged products)."""
    from recsys.training.jobs import prepare_pairs
    from recsys.training.pairs import SplitFractions

    catalog, judgments = load_data()
    prepared = prepare_pairs("judgments", catalog, judgments=judgments, min_grade=2.33,
                             fractions=SplitFractions(validation=0.1, test=0.1, seed=42))
    parts = prepared["pairs"]
    return parts["train"], parts["validation"], catalog, prepared["judgments"]["validation"]["product_id"]


def bare(train, steps: int, batch_size: int) -> dict:
    from datasets import Dataset

    from recsys import embeddings
    from recsys.training.finetune import _st

    SentenceTransformer, Trainer, Arguments, _, Loss = _st()
    model = SentenceTransformer(str(embeddings.default_model_path()), device="cpu", local_files_only=True)
    model.max_seq_length = 64
    dataset = Dataset.from_dict({"anchor": train["anchor"].tolist(), "positive": train["positive"].tolist()})
    with tempfile.TemporaryDirectory() as output:
        arguments = Arguments(output_dir=output, max_steps=steps, per_device_train_batch_size=batch_size,
                              learning_rate=5e-5, warmup_steps=int(0.1 * steps), seed=42, data_seed=42,
                              batch_sampler="no_duplicates", save_strategy="no", report_to="none",
                              disable_tqdm=True, use_cpu=True, logging_steps=25, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset, loss=Loss(model))
        started = time.perf_counter()
        output_ = trainer.train()
        seconds = time.perf_counter() - started
    return {"steps": output_.global_step, "train_s": round(seconds, 2),
            "steps_per_s": round(output_.global_step / seconds, 4)}


def ours(train, validation, catalog, extra, steps: int, batch_size: int) -> dict:
    from db.engine import upgrade
    from recsys import jobs
    from recsys.training.finetune import FinetuneConfig, finetune
    from recsys.training.jobs import FinetuneSpec, progress_reporter

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        upgrade(url)
        job_id = jobs.submit(FinetuneSpec(), "bench", url=url, spawn=False)
        context = jobs.JobContext(job_id, FinetuneSpec(), url, "bench")
        config = FinetuneConfig(max_steps=steps, batch_size=batch_size, learning_rate=5e-5, seed=42, device="cpu")
        result = finetune(train, validation, catalog, config, Path(folder) / "model",
                          report=progress_reporter(context), validation_extra=extra)
        logged = len(jobs.job_logs(job_id, url=url))
    return {"steps": result["steps"], "train_s": result["train_s"], "validation_s": result["validation_s"],
            "evaluations": result["evaluations"], "steps_per_s": result["training_steps_per_s"],
            "steps_per_s_with_validation": result["steps_per_s"], "sql_log_rows": logged,
            "val_ndcg@10_before": result["val_ndcg@10_before"], "val_ndcg@10_after": result["val_ndcg@10_after"]}


def run_arm(name: str, steps: int, batch_size: int) -> dict:
    """One arm in a fresh process (same interpreter, environment and thread settings)."""
    command = [sys.executable, __file__, "--arm", name, "--steps", str(steps), "--batch-size", str(batch_size)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--order", default="ours,bare", help="arms in the order they run, comma-separated")
    parser.add_argument("--arm", choices=["bare", "ours"], help="run this one arm here and print its JSON")
    args = parser.parse_args(argv)
    if data_missing():
        return 0
    os.environ.setdefault("TQDM_DISABLE", "1")
    from recsys.embeddings import configure_threads

    threads = configure_threads()
    if args.arm:
        train, validation, catalog, extra = pairs()
        print(f"{args.arm}: {len(train):,} training pairs; {args.steps} steps of {args.batch_size} each",
              file=sys.stderr)
        arm = bare(train, args.steps, args.batch_size) if args.arm == "bare" else \
            ours(train, validation, catalog, extra, args.steps, args.batch_size)
        print(json.dumps({**arm, "train_pairs": len(train), "torch_threads": threads}))
        return 0
    order = [name.strip() for name in args.order.split(",")]
    if sorted(order) != ["bare", "ours"]:
        parser.error("--order names both arms once: bare,ours or ours,bare")
    load_before = os.getloadavg()
    result = {"data": "homedepot judgments >= 2.33, train part", "steps": args.steps,
              "batch_size": args.batch_size, "order": order, "processes": "one per arm"}
    for name in order:
        result[name] = run_arm(name, args.steps, args.batch_size)
    result["train_pairs"] = result["ours"].pop("train_pairs")
    result["bare"].pop("train_pairs")
    result["ratio"] = round(result["ours"]["steps_per_s"] / result["bare"]["steps_per_s"], 3)
    result["ratio_with_validation"] = round(
        result["ours"]["steps_per_s_with_validation"] / result["bare"]["steps_per_s"], 3)
    result["bar"] = BAR
    result["machine"] = machine(threads, load_before)
    print(f"bare  {result['bare']['steps_per_s']:.3f} steps/s ({result['bare']['train_s']:.0f} s)")
    print(f"ours  {result['ours']['steps_per_s']:.3f} steps/s without its validations, "
          f"{result['ours']['steps_per_s_with_validation']:.3f} with them ({result['ours']['train_s']:.0f} s)")
    print(f"ratio {result['ratio']:.3f} (bar {BAR}); with validations {result['ratio_with_validation']:.3f}")
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
