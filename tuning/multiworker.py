"""Trials with several workers: a Ray Train `TensorflowTrainer` run inside the Tune function.

Ray Train V2 rejects `Tuner(trainer)`; the Tune function calls `trainer.fit()` instead, and
`TuneReportCallback` forwards each epoch's metrics to Tune as they arrive, so ASHA can stop
the trial. Workers run `training.train` under MultiWorkerMirroredStrategy, from the TF_CONFIG
that Ray sets. The Train run's name is the trial id under the sweep's storage, so a retried
or resumed trial's `trainer.fit()` restores the latest checkpoint of that same run.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from training.config import TrainConfig
from tuning.tracked_trial import TrialSetup, TuneReporter, quiet_worker, restore_checkpoint, train_tracked


class TrainReporter(TuneReporter):
    """Every worker reports each epoch (Ray Train requires all to); only rank 0 adds the checkpoint."""

    chief_only = False

    def __init__(self, rank: int, metric: str = "", decision_epochs: tuple[int, ...] = ()):
        import ray.train

        super().__init__(ray.train.report, ray.train.Checkpoint, metric=metric, decision_epochs=decision_epochs)
        self.rank = rank

    def checkpoint(self, context):
        return super().checkpoint(context) if self.rank == 0 else None


def worker_loop(loop_config: dict) -> None:
    """Runs on each Ray Train worker; the chief (rank 0) logs to the trial's MLflow child run."""
    os.environ.pop("TF_USE_LEGACY_KERAS", None)  # Ray sets it; we use Keras 3 (`import keras`) only
    setup: TrialSetup = loop_config["setup"]
    quiet_worker(setup.verbose)
    import ray.train

    config = TrainConfig.from_dict(loop_config["config"])
    rank = ray.train.get_context().get_world_rank()
    checkpoint_dir = Path(tempfile.mkdtemp(prefix=f"aesweep-w{rank}-"))
    restore_checkpoint(ray.train.get_checkpoint(), checkpoint_dir)
    reporter = TrainReporter(rank, setup.metric, setup.decision_epochs)
    try:
        result = train_tracked(config, setup, loop_config["run_id"] if rank == 0 else None, checkpoint_dir, reporter)
        reporter.finish(result, str(checkpoint_dir))
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def run_multiworker(config: TrainConfig, setup: TrialSetup, run_id: str, storage_path: str) -> None:
    import ray.train
    from ray import tune
    from ray.train.tensorflow import TensorflowTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = tune.get_context().get_trial_id()
    resources = {"CPU": setup.cpus_per_worker} | ({"GPU": setup.gpus_per_worker} if setup.gpus_per_worker else {})
    trainer = TensorflowTrainer(
        worker_loop,
        train_loop_config={"config": config.to_dict(), "setup": setup, "run_id": run_id},
        scaling_config=ray.train.ScalingConfig(num_workers=setup.workers_per_trial,
                                               use_gpu=bool(setup.gpus_per_worker),
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(name=f"train-{trial_id}", storage_path=storage_path,
                                       callbacks=[TuneReportCallback()],
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1)),
    )
    trainer.fit()
