"""GPU check: the Home Depot fine-tune of bench/finetune.py on CUDA, checked, with its steps per second.

Runs `recsys.training.finetune` with the same data, split and settings as the
CPU benchmark (judgments split by query 80/10/10 with seed 42, pairs graded >=
2.33, MultipleNegativesRankingLoss, batch 32, learning rate 5e-5, validation
every 250 steps on 5,000 products) for --max-steps steps on the GPU (bf16
autocast), then checks that it ran on CUDA, took every step, and raised the
validation nDCG@10 by at least --min-gain. Prints one JSON object with the
steps per second (also written to $OUT/gpu_finetune.json when OUT is set, and
to bench/results/gpu_finetune.json); exit status 1 when a check fails, 0 when
no GPU or no data is there (it says so).

    python bench/gpu_finetune.py                         # on a machine with CUDA
    python bench/gpu_finetune.py --data DIR --base-model DIR

Kept under five minutes on one H200 (1,000 steps).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "homedepot"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder of products.csv, judgments_dev.csv")
    parser.add_argument("--base-model", help="default: the shipped all-MiniLM-L6-v2")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--min-gain", type=float, default=0.02)
    parser.add_argument("--out", default=str(ROOT / "var" / "models" / "gpu-check"))
    args = parser.parse_args(argv)
    import pandas as pd
    import torch

    if not torch.cuda.is_available():
        print("skipped: no CUDA device here; run this on a machine with a GPU", file=sys.stderr)
        return 0
    data = Path(args.data)
    if not (data / "products.csv").exists():
        print(f"skipped: the Home Depot data is not at {data}", file=sys.stderr)
        return 0
    from recsys.training.finetune import FinetuneConfig, finetune
    from recsys.training.pairs import SplitFractions, pairs_from_judgments, split_judgments, split_pairs

    catalog = pd.read_csv(data / "products.csv", dtype=str, keep_default_na=False).rename(
        columns={"product_uid": "product_id", "product_title": "title"})
    judgments = pd.read_csv(data / "judgments_dev.csv", dtype={"product_uid": str, "query": str},
                            keep_default_na=False).rename(columns={"product_uid": "product_id",
                                                                   "relevance": "grade"})
    fractions = SplitFractions(validation=0.1, test=0.1, seed=42)
    pairs = split_pairs(pairs_from_judgments(judgments, catalog, 2.33), fractions)
    judged = split_judgments(judgments, fractions)
    config = FinetuneConfig(base_model=args.base_model, max_steps=args.max_steps, batch_size=args.batch_size,
                            learning_rate=5e-5, seed=42, device="cuda")
    started = time.perf_counter()
    result = finetune(pairs["train"], pairs["validation"], catalog, config, args.out,
                      validation_extra=judged["validation"]["product_id"])
    summary = {key: value for key, value in result.items()
               if key not in ("loss_history", "validation_metrics", "validation_history")}
    summary.update({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                    "wall_s": round(time.perf_counter() - started, 1)})
    import sentence_transformers
    import transformers

    summary["sentence_transformers"] = sentence_transformers.__version__
    summary["transformers"] = transformers.__version__
    gain = result["val_ndcg@10_after"] - result["val_ndcg@10_before"]
    checks = {"on_cuda": result["device"] == "cuda", "all_steps": result["steps"] == args.max_steps,
              "validation_gain": gain >= args.min_gain}
    summary["checks"] = checks
    text = json.dumps(summary)
    for folder in filter(None, [os.environ.get("OUT"), str(ROOT / "bench" / "results")]):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "gpu_finetune.json").write_text(text)
    print(text)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
