"""What a trial runs in its worker, single- or multi-worker alike: the reporter, the data, the restored
checkpoint and the training tracked in the trial's MLflow child run (`train_tracked`).

tuning.trial (the Tune function) and tuning.multiworker (each Ray Train worker) both call it.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from training.callbacks import Callback
from training.config import TrainConfig

CHECKPOINT_SECONDS = 30.0


@dataclass(frozen=True)
class TrialSetup:
    """What every trial needs besides its sampled hyperparameters; built once by the driver."""

    base: TrainConfig
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    swept: tuple[str, ...] = ()  # the searched fields (the rest is the same in every trial: on the parent)
    storage_path: str = ""  # the sweep's storage (shared on a cluster); multi-worker Train runs live under it
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    image_every: int | None = None
    system_metrics: bool = True
    verbose: bool = False
    metric: str = ""  # the sweep's metric and mode: a diverged trial reports the worst value of it
    mode: str = "max"
    pbt_keys: tuple[str, ...] = ()  # under --scheduler pbt: the values PBT changes as trials train (tuning/pbt.py)
    pbt_interval: int = 1
    decision_epochs: tuple[int, ...] = ()  # where the scheduler may stop a trial (ASHA's rungs): records sent first


class TuneReporter(Callback):
    """Reports each epoch's metrics to Ray Tune, with the epoch's checkpoint on the first epoch and
    then at most every `checkpoint_seconds` (with a checkpoint per epoch, Frey Face trials of
    sub-second epochs ran about 100 epochs a minute, about 190 without; load not identical); a
    retried trial redoes at most that much.

    The last epoch is reported once, after final evaluation, together with the test metrics:
    a scheduler stops a trial when it reaches max_t, so nothing may be reported after that.
    """

    def __init__(self, report, checkpoint_cls, checkpoint_seconds: float = CHECKPOINT_SECONDS, metric: str = "",
                 decision_epochs: tuple[int, ...] = ()):
        self.report = report  # ray.tune.report, or ray.train.report on Ray Train workers
        self.checkpoint_cls = checkpoint_cls
        self.metric = metric  # the sweep's: the scheduler compares it at every report, so the loop computes it each epoch
        self.checkpoint_seconds = checkpoint_seconds
        self.last_checkpoint: float | None = None
        self.pending: dict | None = None
        self.decision_epochs = decision_epochs  # the scheduler may stop the trial at these epochs' reports

    def checkpoint(self, context):
        """The epoch's checkpoint for Tune (the loop writes one only when due: written now if it is not yet)."""
        context.save_checkpoint()
        return self.checkpoint_cls.from_directory(context.checkpoint_dir)

    def on_train_begin(self, context):
        if self.metric:
            context.every_epoch.add(self.metric)
        context.decision_epochs.update(self.decision_epochs)  # a stopped trial's run holds its last epochs

    def on_epoch_end(self, epoch, logs, context):
        logs = {**logs, "epoch": epoch, "replicas": context.num_replicas, "workers": context.num_workers}
        if epoch == context.config.epochs:
            self.pending = logs
            return
        now = time.monotonic()
        due = self.last_checkpoint is None or now - self.last_checkpoint >= self.checkpoint_seconds
        if due:
            self.last_checkpoint = now
        # Tune stops a function trial (ASHA) by raising SystemExit from this report.
        self.report(logs, checkpoint=self.checkpoint(context) if due else None)

    def finish(self, result, checkpoint_dir) -> None:
        """The final report: the last epoch's logs plus the final metrics."""
        if self.pending is not None:  # the last epoch: always checkpointed by the loop
            self.report({**self.pending, **result.metrics, "final": 1},
                        checkpoint=self.checkpoint_cls.from_directory(checkpoint_dir))


def quiet_worker(verbose: bool) -> None:
    if verbose:
        os.environ["AESWEEP_VERBOSE"] = "1"
    from tracking.session import project_run

    project_run()  # taken out of the environment: never resume the driver's (or `mlflow run`'s) run in a worker


def load_data_locked(config: TrainConfig):
    """Load the dataset, one process per node at a time, so concurrent trials never race a download."""
    from filelock import FileLock

    from training.data import load_dataset

    lock_dir = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / "aesweep-data.lock"), timeout=1800):
        return load_dataset(config.dataset, config.data_dir)


def restore_checkpoint(checkpoint, target: Path) -> int | None:
    """Copy a trial's last checkpoint (Tune's or Ray Train's; a retry, a resumed sweep) into `target`;
    returns its epoch, or None when there is none."""
    from training import checkpoint as ckpt

    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        shutil.copytree(d, target, dirs_exist_ok=True)
    return ckpt.read_state(target)["epoch"] if ckpt.exists(target) else None


def train_tracked(config: TrainConfig, setup: TrialSetup, run_id: str | None, checkpoint_dir: Path,
                  reporter: TuneReporter):
    """Train `config` from `checkpoint_dir`, reporting each epoch through `reporter` and logging to the trial's
    child run `run_id` (None: a worker that does not log, as Ray Train's non-chief workers); the TrainResult."""
    from training.loop import train
    from tuning import timing

    timing.mark("imports")
    data = load_data_locked(config)
    timing.mark("data")
    if run_id is None:
        return train(config, callbacks=[reporter], checkpoint_dir=str(checkpoint_dir), dataset=data)
    from tracking.session import tracked_run

    # Under PBT a trial's values change: its child run's params are its first ones (tuning/pbt.py records the rest).
    with tracked_run(config, data, tracking_uri=setup.tracking_uri, run_id=run_id,
                     param_keys=() if setup.pbt_keys else setup.swept,
                     headline=setup.metric or None, system_metrics=setup.system_metrics,
                     image_every=setup.image_every, quiet=True) as tracked:
        timing.mark("run_started")
        return train(config, callbacks=timing.around([tracked.callback, reporter]),
                     checkpoint_dir=str(checkpoint_dir), dataset=data)
