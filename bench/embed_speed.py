"""Benchmark: batch encoding of catalog titles, side by side, and the nDCG@10 each encoder gives.

Reads ``../shared/data/homedepot/`` (or ``$WORKBENCH_HOMEDEPOT_DIR``; products.csv,
judgments_dev.csv) at run time and skips, exit status 0, when it is absent; nothing from it is
written into the repo.

Encoders, all on the same titles in one process, torch and onnxruntime both with `--threads`
threads (torch.set_num_threads; onnxruntime intra-op `--threads`, inter-op 1):

- st-torch: sentence-transformers' own `SentenceTransformer.encode` on PyTorch, its defaults
  (batch 32, sorted by length), normalised.
- st-torch-bf16: the same under `torch.autocast("cpu", torch.bfloat16)` (the CPU has AMX-BF16).
- int8-tensor-one: the int8 served before, onnxruntime's dynamic quantisation with one
  activation scale per tensor, one text at a time (batches made it batch-dependent), on a
  session whose threads spin between operators, as before.
- int8-tensor-batch: the same in batches of 64: batch-dependent, shown for its speed only.
- onnx-fp32: the fp32 export in token-length-sorted batches of 64 (`OnnxEncoder`; catalog
  encoding on a session whose threads sleep between operators).
- onnx-int8-spinning: int8 with per-row activation scales in those batches, threads spinning.
- onnx-int8: the same with the threads sleeping between operators (`OnnxEncoder`; what the
  engines now use on the onnx-int8 backend and what `python -m recsys embed` runs by default).

1. Speed: `--titles` seeded titles; `--rounds` rounds, each encoder once per round, the order
   rotated every round; median titles/s and its ratio to st-torch's median.
2. Batch independence: the largest difference between a title encoded alone and in a batch of 64,
   over 64 titles.
3. Quality: each encoder embeds the catalog and the dev queries; nDCG@10 and Recall@100 of the
   semantic retriever over the catalog (`recsys.evaluation.search.evaluate_full_catalog`, as in
   bench/encoders.py) and the difference to onnx-fp32's nDCG@10. `--ndcg-queries N` evaluates N
   seeded queries on a catalog of their judged products plus `--ndcg-distractors` seeded other
   products (0: all queries on the whole catalog, 54,667 titles per encoder).

Goal (issue 16): onnx-int8 at least 3 times st-torch's titles/s, nDCG@10 within 0.005 of fp32.

    python bench/embed_speed.py
    python bench/embed_speed.py --ndcg-queries 0          # the whole catalog (slow)

Prints a table and, as its last line, one JSON object (also written to
bench/results/embed_speed.json).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "embed_speed.json"
SPEED_GOAL = 3.0
NDCG_TOLERANCE = 0.005
sys.path.insert(0, str(ROOT / "bench"))

import search  # noqa: E402  (bench/search.py)
from search import data_missing, load_data, machine, save_result  # noqa: E402

# A worktree outside the project's folder finds the data through $WORKBENCH_HOMEDEPOT_DIR.
search.DATA = Path(os.environ.get("WORKBENCH_HOMEDEPOT_DIR") or search.DATA)


def make_encoders(threads: int, tmp: Path) -> dict:
    """name -> encode(texts) for every encoder compared (see the module's docstring)."""
    import numpy as np
    import torch

    from recsys.embeddings import load_model
    from recsys.onnx_encoder import OnnxEncoder, _quantize_int8, export

    model = load_model()
    fp32 = OnnxEncoder(None, "fp32", threads)
    int8 = OnnxEncoder(None, "int8", threads)
    per_tensor = OnnxEncoder(None, "int8", threads)
    per_tensor_path = tmp / "model-int8-per-tensor.onnx"
    _quantize_int8(export(None, "fp32"), per_tensor_path, per_row=False)
    per_tensor.path = per_tensor_path
    # As served before: one session, its threads spinning between operators.
    per_tensor.session = per_tensor._batch_session = per_tensor._session(spinning=True)
    int8_spinning = OnnxEncoder(None, "int8", threads)
    int8_spinning._batch_session = int8_spinning.session

    def st_torch(texts):
        return np.asarray(model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                       show_progress_bar=False), dtype=np.float32)

    def st_torch_bf16(texts):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return st_torch(texts)

    return {"st-torch": st_torch, "st-torch-bf16": st_torch_bf16,
            "int8-tensor-one": lambda texts: per_tensor.encode(texts, batch_size=1),
            "int8-tensor-batch": per_tensor.encode, "onnx-fp32": fp32.encode,
            "onnx-int8-spinning": int8_spinning.encode, "onnx-int8": int8.encode}


def speed(encoders: dict, titles: list[str], rounds: int) -> dict[str, dict]:
    import numpy as np

    for encode in encoders.values():
        encode(titles[:64])
    runs: dict[str, list[float]] = {name: [] for name in encoders}
    names = list(encoders)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            encoders[name](titles)
            runs[name].append(len(titles) / (time.perf_counter() - start))
            print(f"  round {r + 1} {name}: {runs[name][-1]:.1f} titles/s", file=sys.stderr)
    base = float(np.median(runs["st-torch"]))
    return {name: {"titles_per_s": round(float(np.median(values)), 1),
                   "vs_st_torch": round(float(np.median(values)) / base, 2),
                   "runs": [round(v, 1) for v in values]} for name, values in runs.items()}


def batch_dependence(encoders: dict, titles: list[str]) -> dict[str, float]:
    """Largest |alone - in batch| over the first 64 titles, per encoder."""
    import numpy as np

    sample = titles[:64]
    result = {}
    for name, encode in encoders.items():
        batched = encode(sample)
        alone = np.vstack([encode([title]) for title in sample])
        result[name] = float(np.abs(batched - alone).max())
    return result


@contextlib.contextmanager
def encoding_with(encode):
    """The semantic retriever encodes its catalog and queries with `encode` (bench only)."""
    from recsys import embeddings

    saved = embeddings.encode, embeddings.cached_encode
    embeddings.encode = lambda texts, *args, **kwargs: encode(list(texts))
    embeddings.cached_encode = lambda texts, *args, **kwargs: encode(list(texts))
    try:
        yield
    finally:
        embeddings.encode, embeddings.cached_encode = saved


def evaluation_set(catalog, judgments, queries: int, distractors: int, seed: int = 0):
    """(catalog, judgments): all of both, or `queries` seeded queries on their judged products
    plus `distractors` seeded other products."""
    import numpy as np
    import pandas as pd

    if not queries:
        return catalog, judgments
    rng = np.random.default_rng(seed)
    distinct = sorted(set(judgments["query"]) - {""})
    chosen = {distinct[i] for i in rng.permutation(len(distinct))[:queries]}
    judgments = judgments[judgments["query"].isin(chosen)]
    judged = set(judgments["product_id"])
    others = catalog[~catalog["product_id"].isin(judged)]
    others = others.iloc[rng.permutation(len(others))[:distractors]]
    return pd.concat([catalog[catalog["product_id"].isin(judged)], others]), judgments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--titles", type=int, default=2000, help="titles timed per encoder and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    parser.add_argument("--encoders", default="st-torch,st-torch-bf16,int8-tensor-one,int8-tensor-batch,"
                                              "onnx-fp32,onnx-int8-spinning,onnx-int8")
    parser.add_argument("--ndcg-encoders", default="st-torch,int8-tensor-one,onnx-fp32,onnx-int8")
    parser.add_argument("--ndcg-queries", type=int, default=1000, help="0: all, on the whole catalog")
    parser.add_argument("--ndcg-distractors", type=int, default=5000)
    args = parser.parse_args()
    if data_missing():
        return 0

    sys.path.insert(0, str(ROOT))
    import tempfile

    import numpy as np
    import onnxruntime
    import torch

    from recsys.embeddings import configure_threads
    from recsys.evaluation.search import evaluate_full_catalog
    from recsys.search import get

    threads = configure_threads(args.threads)
    load_before = os.getloadavg()
    catalog, judgments = load_data()
    titles = catalog["title"].tolist()
    sample = [titles[i] for i in np.random.default_rng(0).permutation(len(titles))[:args.titles]]
    with tempfile.TemporaryDirectory() as tmp:
        every = make_encoders(threads, Path(tmp))
        encoders = {name: every[name] for name in args.encoders.split(",")}
        print(f"timing {len(encoders)} encoders on {len(sample)} titles...", file=sys.stderr)
        speeds = speed(encoders, sample, args.rounds)
        dependence = batch_dependence(encoders, sample)
        ndcg_catalog, ndcg_judgments = evaluation_set(catalog, judgments, args.ndcg_queries,
                                                      args.ndcg_distractors)
        quality = {}
        for name in filter(None, args.ndcg_encoders.split(",")):
            start = time.perf_counter()
            with encoding_with(every[name]):
                retriever = get("semantic")().fit(ndcg_catalog)
                metrics = evaluate_full_catalog(retriever, ndcg_judgments)
            quality[name] = {"ndcg@10": round(metrics["ndcg@10"], 4),
                             "recall@100": round(metrics["recall@100"], 4),
                             "seconds": round(time.perf_counter() - start, 1)}
            print(f"{name}: nDCG@10 {quality[name]['ndcg@10']} in {quality[name]['seconds']} s",
                  file=sys.stderr)
    reference = quality.get("onnx-fp32", {}).get("ndcg@10")
    for row in quality.values():
        row["vs_fp32"] = round(row["ndcg@10"] - reference, 4) if reference is not None else None

    print(f"\n{'encoder':<19}{'titles/s':>9}{'vs ST':>7}{'alone-batch':>13}{'nDCG@10':>9}{'vs fp32':>9}"
          f"{'R@100':>8}")
    for name in encoders:
        q = quality.get(name, {})
        print(f"{name:<19}{speeds[name]['titles_per_s']:>9.1f}{speeds[name]['vs_st_torch']:>6.2f}x"
              f"{dependence[name]:>13.1e}{q.get('ndcg@10', float('nan')):>9.4f}"
              f"{q.get('vs_fp32') if q.get('vs_fp32') is not None else float('nan'):>+9.4f}"
              f"{q.get('recall@100', float('nan')):>8.4f}")
    goals = {}
    if "onnx-int8" in speeds and "st-torch" in speeds:
        goals["int8_at_least_3x_st_torch"] = speeds["onnx-int8"]["vs_st_torch"] >= SPEED_GOAL
    if "onnx-int8" in quality and reference is not None:
        goals["int8_ndcg_within_0.005_of_fp32"] = abs(quality["onnx-int8"]["vs_fp32"]) <= NDCG_TOLERANCE
    print(f"\ngoals: {goals}")
    result = {
        "benchmark": "embed_speed", "date": date.today().isoformat(),
        "machine": machine(threads, load_before, torch=torch.__version__,
                           onnxruntime=onnxruntime.__version__, onnxruntime_threads=threads),
        "titles": len(sample), "rounds": args.rounds, "speed": speeds,
        "alone_vs_batch_max_abs": dependence,
        "ndcg_set": {"queries": int(ndcg_judgments["query"].nunique()), "products": len(ndcg_catalog)},
        "quality": quality, "goals": goals,
    }
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
