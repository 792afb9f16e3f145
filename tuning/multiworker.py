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
from tuning.trial import TuneReporter


class TrainReporter(TuneReporter):
    """Every worker reports each epoch (Ray Train requires all to); only rank 0 adds the checkpoint."""

    chief_only = False

    def __init__(self, rank: int):
        import ray.train

        super().__init__(ray.train.report, ray.train.Checkpoint)
        self.rank = rank

    def checkpoint(self, context_dir):
        return super().checkpoint(context_dir) if self.rank == 0 else None


def worker_loop(loop_config: dict) -> None:
    """Runs on each Ray Train worker."""
    os.environ.pop("TF_USE_LEGACY_KERAS", None)  # Ray sets it; we use Keras 3 (`import keras`) only
    from tuning.trial import TrialSetup, load_data_locked, quiet_worker  # noqa: F401

    setup: TrialSetup = loop_config["setup"]
    quiet_worker(setup.verbose)
    import ray.train

    from training.loop import train

    config = TrainConfig.from_dict(loop_config["config"])
    rank = ray.train.get_context().get_world_rank()
    checkpoint_dir = Path(tempfile.mkdtemp(prefix=f"aesweep-w{rank}-"))
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            shutil.copytree(d, checkpoint_dir, dirs_exist_ok=True)
    data = load_data_locked(config)
    reporter = TrainReporter(rank)
    try:
        if rank == 0:  # the chief logs to the trial's MLflow child run
            from tracking.session import tracked_run

            with tracked_run(config, data, tracking_uri=setup.tracking_uri, run_id=loop_config["run_id"],
                             param_keys=setup.swept, headline=setup.metric or None,
                             system_metrics=setup.system_metrics,
                             image_every=setup.image_every, quiet=True) as tracked:
                result = train(config, callbacks=[tracked.callback, reporter], checkpoint_dir=str(checkpoint_dir),
                               dataset=data)
        else:
            result = train(config, callbacks=[reporter], checkpoint_dir=str(checkpoint_dir), dataset=data)
        reporter.finish(result, str(checkpoint_dir))
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def run_multiworker(config: TrainConfig, setup, run_id: str, storage_path: str) -> None:
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
