"""The Tune function: a thin adapter from a trial's sampled config to `training.train`.

Each trial is an MLflow child run of the sweep's parent run, found again by its Ray
trial id when the trial is retried or the sweep resumed (so no duplicate runs), and
reports every epoch to Tune, with a checkpoint at least every CHECKPOINT_SECONDS (so ASHA
can stop it and a retried or resumed trial continues from its last checkpointed epoch).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from training.callbacks import Callback
from training.config import TrainConfig

TRIAL_TAG = "ray_trial_id"
NODE_TAG = "ray_node_id"  # the Ray node of the trial's latest attempt (a retry may run on another node)
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


class TuneReporter(Callback):
    """Reports each epoch's metrics to Ray Tune, with the epoch's checkpoint on the first epoch and
    then at most every `checkpoint_seconds` (with a checkpoint per epoch, Frey Face trials of
    sub-second epochs ran about 100 epochs a minute, about 190 without; load not identical); a
    retried trial redoes at most that much.

    The last epoch is reported once, after final evaluation, together with the test metrics:
    a scheduler stops a trial when it reaches max_t, so nothing may be reported after that.
    """

    def __init__(self, report, checkpoint_cls, checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.report = report  # ray.tune.report, or ray.train.report on Ray Train workers
        self.checkpoint_cls = checkpoint_cls
        self.checkpoint_seconds = checkpoint_seconds
        self.last_checkpoint: float | None = None
        self.pending: dict | None = None

    def checkpoint(self, context_dir):
        return self.checkpoint_cls.from_directory(context_dir)

    def on_epoch_end(self, epoch, logs, context):
        logs = {**logs, "epoch": epoch, "replicas": context.num_replicas, "workers": context.num_workers}
        if epoch == context.config.epochs:
            self.pending = logs
            return
        now = time.monotonic()
        due = self.last_checkpoint is None or now - self.last_checkpoint >= self.checkpoint_seconds
        if due:
            self.last_checkpoint = now
        self.report(logs, checkpoint=self.checkpoint(context.checkpoint_dir) if due else None)

    def finish(self, result, checkpoint_dir) -> None:
        """The final report: the last epoch's logs plus the final metrics."""
        if self.pending is not None:
            self.report({**self.pending, **result.metrics, "final": 1}, checkpoint=self.checkpoint(checkpoint_dir))


def quiet_worker(verbose: bool) -> None:
    if verbose:
        os.environ["AESWEEP_VERBOSE"] = "1"
    os.environ.pop("MLFLOW_RUN_ID", None)  # never resume the driver's (or `mlflow run`'s) run in a worker


def load_data_locked(config: TrainConfig):
    """Load the dataset, one process per node at a time, so concurrent trials never race a download."""
    from filelock import FileLock

    from training.data import load_dataset

    lock_dir = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / "aesweep-data.lock"), timeout=1800):
        return load_dataset(config.dataset, config.data_dir)


def child_run_id(setup: TrialSetup, trial_id: str, trial_name: str, sampled: dict, node_id: str) -> str:
    """This trial's child run: the existing one (retry, resumed sweep) or a new one, named for its swept
    values (`latent=16 lr=7.9e-4 beta=3.0`) and holding them, those that apply to its model, as params."""
    from mlflow.tracking import MlflowClient

    from training.config import applicable_params
    from tracking.params import log_params
    from tuning.labels import trial_label

    client = MlflowClient(setup.tracking_uri)
    found = client.search_runs([setup.experiment_id], max_results=1,
                               filter_string=f"tags.mlflow.parentRunId = '{setup.parent_run_id}' "
                                             f"and tags.{TRIAL_TAG} = '{trial_id}'")
    if found:
        run = found[0]
        if run.info.status == "FINISHED":
            return run.info.run_id  # trained and logged to the end: not another attempt (see finished_result)
        attempts = int(run.data.tags.get("attempts", "1")) + 1
        client.set_tag(run.info.run_id, "attempts", str(attempts))
        client.set_tag(run.info.run_id, NODE_TAG, node_id)
        return run.info.run_id
    applies = applicable_params(setup.base.to_dict() | sampled)
    swept = {k: sampled[k] for k in setup.swept if k in sampled and k in applies}
    run = client.create_run(setup.experiment_id, run_name=trial_label(swept) or trial_name,
                            tags={"mlflow.parentRunId": setup.parent_run_id, TRIAL_TAG: trial_id,
                                  "attempts": "1", "model_kind": setup.base.model, NODE_TAG: node_id})
    # Before the config is built, so even a trial whose config is invalid shows what it tried.
    log_params(swept, run.info.run_id, client)
    return run.info.run_id


def finished_result(setup: TrialSetup, run_id: str) -> dict | None:
    """The final result of a trial whose child run already FINISHED, read back from the run, or None.

    The driver may die after a trial finished but before Tune saved that: the resumed sweep starts the
    trial again. It then reports the same final result without training (no second attempt, no step
    logged twice, no second model)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(setup.tracking_uri)
    run = client.get_run(run_id)
    if run.info.status != "FINISHED":
        return None
    epoch = max((m.step for m in client.get_metric_history(run_id, "loss")), default=0)
    counts = {k: int(run.data.tags[k]) for k in ("replicas", "workers") if run.data.tags.get(k, "").isdigit()}
    return {**run.data.metrics, **counts, "epoch": epoch, "final": 1}


def restore_checkpoint(target: Path) -> int | None:
    """Copy the trial's last Tune checkpoint (a retry, a resumed sweep) into `target`; returns its epoch."""
    from ray import tune

    from training import checkpoint as ckpt

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        shutil.copytree(d, target, dirs_exist_ok=True)
    return ckpt.read_state(target)["epoch"] if ckpt.exists(target) else None


def run_trial(sampled: dict, setup: TrialSetup) -> None:
    """Ray Tune function trainable (see tuning.sweep). Heavy imports happen here, in the worker."""
    quiet_worker(setup.verbose)
    import ray
    from ray import tune

    from tuning.space import trial_config

    from tuning.repeats import seeded

    sampled = seeded(sampled, setup.base.seed)  # --repeats: the repeat index becomes the trial's seed
    context = tune.get_context()
    trial_id, trial_name = context.get_trial_id(), context.get_trial_name()
    run_id = child_run_id(setup, trial_id, trial_name, sampled, ray.get_runtime_context().get_node_id())
    if (result := finished_result(setup, run_id)) is not None:
        tune.report(result)
        return
    try:
        config = trial_config(setup.base, sampled)
    except Exception as e:  # the reason is known here; the driver marks the run FAILED when retries are spent
        from mlflow.tracking import MlflowClient

        from tracking.secrets import redact

        MlflowClient(setup.tracking_uri).set_tag(run_id, "failure_reason", redact(f"{type(e).__name__}: {e}")[:4000])
        raise
    if setup.workers_per_trial > 1:
        from tuning.multiworker import run_multiworker

        run_multiworker(config, setup, run_id, str(Path(setup.storage_path) / "train-runs"))
        return
    checkpoint_dir = Path(tempfile.mkdtemp(prefix=f"aesweep-{trial_id}-"))
    if (epoch := restore_checkpoint(checkpoint_dir)) is not None:
        from mlflow.tracking import MlflowClient

        MlflowClient(setup.tracking_uri).set_tag(run_id, "resumed_from_epoch", str(epoch))
    if setup.pbt_keys:
        from tuning.pbt import on_start

        on_start(setup, sampled, trial_id, run_id, checkpoint_dir, epoch)  # records an exploit
    try:
        train_in_process(config, setup, run_id, checkpoint_dir, tune.report)
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def train_in_process(config: TrainConfig, setup: TrialSetup, run_id: str, checkpoint_dir: Path, report) -> None:
    """Train here, logging to the child run and reporting each epoch; the final report adds test metrics."""
    from tracking.session import tracked_run
    from training.loop import train

    from ray import tune

    data = load_data_locked(config)
    reporter = TuneReporter(report, tune.Checkpoint)
    if setup.pbt_keys:
        from tuning.pbt import reporter as pbt_reporter

        reporter = pbt_reporter(report, tune.Checkpoint, setup.pbt_interval)
    # Under PBT a trial's values change (its child run's params are its first ones; tuning/pbt.py records the rest).
    with tracked_run(config, data, tracking_uri=setup.tracking_uri, run_id=run_id,
                     param_keys=() if setup.pbt_keys else setup.swept,
                     headline=setup.metric or None,
                     system_metrics=setup.system_metrics, image_every=setup.image_every, quiet=True) as tracked:
        result = train(config, callbacks=[tracked.callback, reporter], checkpoint_dir=str(checkpoint_dir),
                       dataset=data)
    if result.diverged:
        # The run is already FAILED with the reason; Tune gets one last result with the worst value of its
        # metric (a result without the metric would abort the whole sweep), and the sweep goes on.
        report(diverged_result(setup, result.epochs_completed))
        return
    reporter.finish(result, str(checkpoint_dir))


def diverged_result(setup: TrialSetup, epochs: int) -> dict:
    """What a diverged trial reports: the worst value of the sweep metric, so no searcher or scheduler prefers it."""
    worst = float("-inf") if setup.mode == "max" else float("inf")
    return {setup.metric: worst, "epoch": epochs, "diverged": 1} if setup.metric else {"diverged": 1}
