"""Benchmark: the REST service under load while a preset, a data version and a model are activated.

On a fresh copy of the demo (`recsys init` in a temporary folder), `python -m recsys serve` runs
on a free 127.0.0.1 port, following activations (every 2 s), and `bench/load.py`'s clients (8,
back to back, 90 s) send the usual mix. During the run, from the command line as an operator
would: at 10 s a search preset is saved and activated (`presets save --activate`); at 25 s a
catalog version is stored and activated (`ingest --kind catalog --merge`: the demo catalog with one
product more; its fit job starts); at 50 s an embedding model is activated (the shipped weights
under another folder, registered as a model: no fit job is started for it, so the service fits
its engines itself).

Reported: requests, errors (5xx or no answer), whether every request is in SQL, whether every
answer names a state that existed (its preset and data versions together), and for each
activation the seconds until the first answer that names it.

`--throughput`: also runs the same load without activations for `--throughput-seconds` against
the service of the code before live activations (`--before REV`, checked out into a temporary git
worktree and run with this venv) and against this code, one after the other, each on its own
fresh demo database: their requests per second side by side. The load starts once the service
accepts the new key (the older service read its keys every 5 s and answered 401, fast, until then).

    python bench/live_activations.py
    python bench/live_activations.py --throughput --before 5431ced

Prints a table and, as its last line, one JSON object (also written to
bench/results/live_activations.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from load import run_load  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "live_activations.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: list[str], env: dict, cwd: Path = ROOT) -> dict:
    done = subprocess.run([sys.executable, "-m", "recsys", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode:
        raise SystemExit(f"error: recsys {' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout) if done.stdout.strip().startswith(("{", "[")) else {}


class Service:
    """`python -m recsys serve` in a process of its own, from `cwd` (this code or an older one)."""

    def __init__(self, env: dict, cwd: Path = ROOT):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--port", str(self.port)],
                                        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"error: the service stopped: {self.process.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise SystemExit("error: the service did not start within 10 minutes")

    def health(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:
            return json.load(answer)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def fresh_demo(folder: Path, cwd: Path = ROOT) -> dict:
    """The environment of a new demo database in `folder`, initialised by the code in `cwd`."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'demo.db'}", "HF_HUB_OFFLINE": "1",
           "WORKBENCH_ADMIN_PASSWORD": "bench-password", "WORKBENCH_ENGINES_DIR": str(folder / "engines"),
           "WORKBENCH_MODELS_DIR": str(folder / "models"), "PYTHONPATH": str(cwd)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    _run(["init"], env, cwd)
    return env


def activations(env: dict, folder: Path, marks: dict, starts_at: float) -> None:
    """The three activations of the run, at 10, 25 and 50 s after `starts_at`; their times in `marks`."""
    import pandas as pd

    def at(second: float) -> None:
        time.sleep(max(0.0, starts_at + second - time.time()))

    at(10)
    config = json.dumps({"weights": {"bm25": 0.6, "semantic": 0.4}, "backend": "onnx-int8",
                         "min_scores": {"semantic": 0.475}})
    marks["preset"] = time.time()
    _run(["presets", "save", "--scope", "search", "--name", "bench", "--config", config, "--activate"], env)
    at(25)
    extra = folder / "one_more.csv"
    pd.DataFrame({"product_id": ["BENCH1"], "title": ["BENCH LANTERN WITH A RED HEART"]}).to_csv(extra, index=False)
    marks["data"] = time.time()
    stored = _run(["ingest", "--kind", "catalog", "--file", str(extra), "--merge"], env)
    marks["data_version"] = stored["versions"][0]
    at(50)
    model = folder / "models" / "embedding" / "bench"
    model.parent.mkdir(parents=True, exist_ok=True)
    from recsys.embeddings import default_model_path

    model.symlink_to(default_model_path(), target_is_directory=True)
    code = ("from recsys import model_registry as registry; m = registry.register_model('embedding', "
            f"{str(model)!r}, base_model='shipped', training_data={{}}, hyperparameters={{}}, metrics={{}}, "
            "actor='bench'); registry.activate_model(m.id, 'bench'); print(m.version)")
    marks["model"] = time.time()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    marks["model_label"] = f"embedding-v{done.stdout.strip()}"


def live_run(seconds: float, concurrency: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="live-activations-"))
    try:
        env = fresh_demo(folder)
        service = Service(env)
        key = _run(["apikey", "create", "--name", "bench"], env)["key"]
        answers: list = []
        marks: dict = {}
        starts_at = time.time()
        operator = threading.Thread(target=activations, args=(env, folder, marks, starts_at))
        operator.start()
        summary = run_load(service.url, key, seconds, concurrency, database_url=env["DATABASE_URL"], answers=answers)
        operator.join()
        final = service.health()
        service.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    data = f"catalog-v{marks['data_version']}"

    def state(endpoint: str, model: str, preset: str) -> tuple:
        return endpoint == "search", preset, data in model, model.split(":")[1].split("@")[0]

    # What may be served, scope by scope, in the order the activations happen.
    real = {(True, "default v1", False, "embedding-base"), (True, "bench v1", False, "embedding-base"),
            (True, "bench v1", True, "embedding-base"), (True, "bench v1", True, marks["model_label"]),
            (False, "default v1", False, "embedding-base"), (False, "default v1", True, "embedding-base"),
            (False, "default v1", True, marks["model_label"])}
    seen = [state(endpoint, model, preset) for _, endpoint, model, preset in answers]
    first = {
        "preset": min((t for t, _, _, preset in answers if preset == "bench v1"), default=None),
        "data": min((t for t, _, model, _ in answers if data in model), default=None),
        "model": min((t for t, _, model, _ in answers if marks["model_label"] in model), default=None)}
    return {**summary, "answers": len(answers), "states_seen": sorted(set(seen), key=str),
            "every_answer_a_real_state": set(seen) <= real,
            "activation_to_first_answer_s": {name: None if first[name] is None else round(first[name] - marks[name], 1)
                                             for name in first},
            "served_at_the_end": {"presets": final["presets"], "data_versions": final["data_versions"],
                                  "embedding_model": final["embedding_model"]}}


def key_works(url: str, key: str, timeout_s: float = 60) -> float:
    """Seconds until a search with `key` is answered 200 (SystemExit after `timeout_s`)."""
    started = time.time()
    while time.time() - started < timeout_s:
        request = urllib.request.Request(f"{url}/search?q=heart&k=1", headers={"X-API-Key": key})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                if answer.status == 200:
                    return round(time.time() - started, 1)
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"error: the service at {url} did not accept the new key within {timeout_s:.0f} s")


def throughput(before: str, seconds: float, concurrency: int) -> dict:
    """Requests per second of the service of commit `before` and of this code, same load, one after the other."""
    result = {}
    worktree = Path(tempfile.mkdtemp(prefix="before-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(worktree), before], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        for name, cwd in (("before", worktree), ("after", ROOT)):
            folder = Path(tempfile.mkdtemp(prefix=f"throughput-{name}-"))
            try:
                env = fresh_demo(folder, cwd)
                service = Service(env, cwd)
                key = _run(["apikey", "create", "--name", "bench"], env, cwd)["key"]
                # The older service read its keys every 5 s: until it has read this one, it answers 401 at
                # once, which would count as (fast) throughput. Load starts once a search is answered.
                ready = key_works(service.url, key)
                summary = run_load(service.url, key, seconds, concurrency, database_url=env["DATABASE_URL"])
                service.stop()
                result[name] = {"rps": summary["rps"], "errors": summary["errors"],
                                "client_errors": summary["client_errors"], "key_ready_s": ready,
                                "p50_ms": {e: row["p50_ms"] for e, row in summary["endpoints"].items()},
                                "p95_ms": {e: row["p95_ms"] for e, row in summary["endpoints"].items()}}
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--throughput-seconds", type=float, default=30.0)
    parser.add_argument("--skip-live", action="store_true", help="--throughput only, without the live run")
    parser.add_argument("--before", default="5431ced", help="the commit whose service is measured as 'before'")
    args = parser.parse_args()
    result = {} if args.skip_live else {"live": live_run(args.seconds, args.concurrency)}
    if not args.skip_live:
        live = result["live"]
        print(f"{live['requests']} requests in {live['seconds']} s ({live['rps']}/s), {live['errors']} errors, "
              f"{live['recorded']} recorded; every answer a real state: {live['every_answer_a_real_state']}; "
              f"activation to first answer (s): {live['activation_to_first_answer_s']}", file=sys.stderr)
    if args.throughput:
        result["throughput"] = throughput(args.before, args.throughput_seconds, args.concurrency)
        for name, row in result["throughput"].items():
            print(f"{name}: {row['rps']}/s, {row['errors']} errors, {row['client_errors']} 4xx, "
                  f"p50 {row['p50_ms']}, p95 {row['p95_ms']}",
                  file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
