"""The fine-tune's training loop under Ray Train: N data-parallel workers (DDP), CPU or GPU.

Only the loop moves: `recsys.training.finetune.finetune` prepares the pairs, the hard negatives
and the validation evaluator here, in the driver, and `train_on_ray` runs
`finetune.train_loop` on each worker of a `TorchTrainer` (`ScalingConfig(num_workers, use_gpu,
resources_per_worker)`). Ray sets up the process group and RANK / WORLD_SIZE / LOCAL_RANK, which
the transformers trainer inside the loop picks up to wrap the model in DistributedDataParallel.
Rank 0 saves the best model in the usual sentence-transformers folder and reports it as a Ray
Train checkpoint, which Ray persists under `RunConfig(storage_path)` (a folder every node can
reach on a multi-node cluster) and the driver copies to the model folder.

Progress crosses back through a small actor (`ProgressChannel`, no CPU): rank 0 puts each
log row in it, the driver hands the rows to its `report` callback (the job's log in SQL, or
the CLI's stderr) while `TorchTrainer.fit` runs; when `report` raises (a cancel), every worker
finds the stop in the channel at its next log line and raises, so the run ends failed, and the
driver raises what `report` raised. A worker lost mid-run fails the run (no retries): the
driver raises RayTrainFailed with Ray's reason.

The caller must have joined the cluster (`recsys.cluster.connect`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from recsys.training.finetune import RUN_FILE, FinetuneConfig, RayScaling, TrainingRun, train_loop

POLL_S = 0.5


class RayTrainFailed(RuntimeError):
    """A Ray Train run ended without a model (a worker failed or was lost); names Ray's reason."""


class TrainingStopped(RuntimeError):
    """Raised in the workers when the driver asked the run to stop (its `report` raised)."""


class ProgressChannel:
    """Log rows from rank 0 to the driver, and a stop from the driver to every worker
    (a Ray actor: `ray.remote(num_cpus=0)(ProgressChannel)`)."""

    def __init__(self):
        self.rows: list[dict] = []
        self.stop: str | None = None

    def put(self, row: dict | None) -> str | None:
        """Keep `row` (None: only ask) and say whether the run must stop (the reason, else None)."""
        if row is not None:
            self.rows.append(row)
        return self.stop

    def take(self) -> list[dict]:
        rows, self.rows = self.rows, []
        return rows

    def request_stop(self, reason: str) -> None:
        self.stop = reason


def _worker_loop(settings: dict) -> None:
    """What each Ray Train worker runs (`settings`: the `train_loop_config`)."""
    import ray
    import ray.train
    import ray.train.torch

    from recsys import embeddings

    context = ray.train.get_context()
    rank = context.get_world_rank()
    channel = settings["channel"]
    device = str(ray.train.torch.get_device())
    if not device.startswith("cuda"):
        embeddings.configure_threads(max(1, int(settings["cpus_per_worker"])))

    def report(row: dict) -> None:
        stop = ray.get(channel.put.remote(row if rank == 0 else None))
        if stop:
            raise TrainingStopped(stop)

    config = FinetuneConfig.from_dict(settings["config"])
    checkpoints = Path(settings["checkpoints"])
    with tempfile.TemporaryDirectory(prefix="workbench-model-") as folder:
        save_to = Path(folder) / "model" if rank == 0 else None
        run = train_loop(settings["columns"], settings["evaluator"], config, device, settings["steps"],
                         checkpoints, save_to, report, workers=context.get_world_size())
        checkpoint = None
        if save_to is not None:
            (save_to / RUN_FILE).write_text(json.dumps(run.to_dict(), default=str))
            checkpoint = ray.train.Checkpoint.from_directory(str(save_to))
        # Every worker reports once (Ray Train's barrier); only rank 0 brings the model.
        ray.train.report({"steps": run.steps}, checkpoint=checkpoint)


def train_on_ray(columns: dict[str, list[str]], evaluator, config: FinetuneConfig, steps: int,
                 scaling: RayScaling, storage: str | Path, save_to: str | Path,
                 report: Callable[[dict], None] | None = None) -> TrainingRun:
    """Run `train_loop` on `scaling.workers` Ray Train workers; the model rank 0 saved is
    copied to `save_to`. `storage`: Ray Train's storage_path (checkpoints of the run; shared
    storage on a multi-node cluster). Raises what `report` raised (the run stopped), or
    RayTrainFailed with Ray's reason."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    channel = ray.remote(num_cpus=0)(ProgressChannel).remote()
    storage = Path(storage)
    settings = {"columns": columns, "evaluator": evaluator, "config": config.to_dict(), "steps": steps,
                "checkpoints": str(storage / "trainer"), "channel": channel,
                "cpus_per_worker": scaling.cpus_per_worker}
    trainer = TorchTrainer(
        _worker_loop, train_loop_config=settings,
        scaling_config=ScalingConfig(num_workers=scaling.workers, use_gpu=scaling.use_gpu,
                                     resources_per_worker={"CPU": scaling.cpus_per_worker}),
        run_config=RunConfig(name="ray", storage_path=str(storage.resolve()),
                             failure_config=FailureConfig(max_failures=0),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)))
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # noqa: BLE001 - handed to the driver's thread below
            outcome["error"] = error

    started = time.perf_counter()
    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    stopped: BaseException | None = None
    try:
        while True:
            finished = not thread.is_alive()
            for row in ray.get(channel.take.remote()):
                if report is not None and stopped is None:
                    try:
                        report(row)
                    except BaseException as error:  # noqa: BLE001 - a cancel: stop the workers, then raise it
                        stopped = error
                        ray.get(channel.request_stop.remote(f"stopped by the driver: {error!r}"))
            if finished:
                break
            thread.join(POLL_S)
    finally:
        ray.kill(channel)
    if stopped is not None:
        raise stopped
    if "error" in outcome:
        raise RayTrainFailed(f"the Ray Train run failed after {time.perf_counter() - started:.0f} s: "
                             f"{outcome['error']}") from outcome["error"]
    result = outcome["result"]
    if result.error is not None:
        raise RayTrainFailed(f"the Ray Train run failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise RayTrainFailed("the Ray Train run ended without the model rank 0 should have reported")
    save_to = Path(save_to)
    shutil.rmtree(save_to, ignore_errors=True)
    result.checkpoint.to_directory(str(save_to))
    run_file = save_to / RUN_FILE
    run = TrainingRun.from_dict(json.loads(run_file.read_text()))
    run_file.unlink()
    return run
