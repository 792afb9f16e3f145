"""The Tune function: a thin adapter from a trial's sampled config to `training.train`.

Each trial is an MLflow child run of the sweep's parent run, found again by its Ray trial id when
the trial is retried or the sweep resumed (so no duplicate runs; see tracking.sweep_runs), and
reports every epoch to Tune, with a checkpoint at least every CHECKPOINT_SECONDS (so ASHA can stop
it and a retried or resumed trial continues from its last checkpointed epoch). What runs in the
worker is tuning.tracked_trial's, shared with multi-worker trials (tuning.multiworker).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from training.config import TrainConfig
from tuning.tracked_trial import TrialSetup, TuneReporter, quiet_worker, restore_checkpoint, train_tracked


def child_runs(setup: TrialSetup):
    from tracking.sweep_runs import SweepRuns

    return SweepRuns(setup.tracking_uri, setup.experiment_id, setup.parent_run_id)


def fresh_process_state() -> None:
    """What a trial may find of the one before it in a reused process (tuning.sweep.reuse_processes), undone:
    Keras's session (graphs, layer names, the last model and optimizer) cleared. The seeds are the trial's own
    (training.train sets them from its config); MLflow's active run is per thread, and each trial has its own."""
    keras = sys.modules.get("keras")
    if keras is not None:  # not imported yet: a fresh process
        keras.backend.clear_session()


def child_run_id(setup: TrialSetup, trial_id: str, trial_name: str, sampled: dict, node_id: str) -> str:
    """This trial's child run: the existing one (retry, resumed sweep) or a new one, named for its swept
    values (`latent=16 lr=7.9e-4 beta=3.0`) and holding them, those that apply to its model, as params."""
    from training.config import applicable_params
    from tuning.labels import trial_label

    applies = applicable_params(setup.base.to_dict() | sampled)
    swept = {k: sampled[k] for k in setup.swept if k in sampled and k in applies}
    return child_runs(setup).open_child(trial_id, node_id, trial_label(swept) or trial_name, swept,
                                        {"model_kind": setup.base.model})


def run_trial(sampled: dict, setup: TrialSetup) -> None:
    """Ray Tune function trainable (see tuning.sweep). Heavy imports happen here, in the worker."""
    quiet_worker(setup.verbose)
    fresh_process_state()
    import ray
    from ray import tune

    from tuning import timing
    from tuning.repeats import seeded
    from tuning.space import trial_config

    sampled = seeded(sampled, setup.base.seed)  # --repeats: the repeat index becomes the trial's seed
    context = tune.get_context()
    trial_id, trial_name = context.get_trial_id(), context.get_trial_name()
    timing.start(trial_id)
    runs = child_runs(setup)
    run_id = child_run_id(setup, trial_id, trial_name, sampled, ray.get_runtime_context().get_node_id())
    # The driver may die after a trial finished but before Tune saved that: the resumed sweep starts the
    # trial again. It then reports the same final result without training (no second attempt, no step
    # logged twice, no second model).
    if (result := runs.finished_result(run_id)) is not None:
        tune.report(result)
        return
    try:
        config = trial_config(setup.base, sampled)
    except Exception as e:  # the reason is known here; the driver marks the run FAILED when retries are spent
        runs.set_reason(run_id, e)
        raise
    timing.mark("config", run_id=run_id, config=config.to_dict())
    if setup.workers_per_trial > 1:
        from tuning.multiworker import run_multiworker

        run_multiworker(config, setup, run_id, str(Path(setup.storage_path) / "train-runs"))
        return
    checkpoint_dir = Path(tempfile.mkdtemp(prefix=f"aesweep-{trial_id}-"))
    if (epoch := restore_checkpoint(tune.get_checkpoint(), checkpoint_dir)) is not None:
        runs.set_tag(run_id, "resumed_from_epoch", str(epoch))
    if setup.pbt_keys:
        from tuning.pbt import on_start

        on_start(setup, sampled, trial_id, run_id, checkpoint_dir, epoch)  # records an exploit
    try:
        train_in_process(config, setup, trial_id, run_id, checkpoint_dir, tune.report)
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        timing.mark("end")


def train_in_process(config: TrainConfig, setup: TrialSetup, trial_id: str, run_id: str, checkpoint_dir: Path,
                     report) -> None:
    """Train here, logging to the child run and reporting each epoch; the final report adds test metrics."""
    from ray import tune

    reporter = TuneReporter(report, tune.Checkpoint, metric=setup.metric, decision_epochs=setup.decision_epochs)
    if setup.pbt_keys:
        from tuning.pbt import reporter as pbt_reporter

        reporter = pbt_reporter(report, tune.Checkpoint, setup.pbt_interval, metric=setup.metric)
    # Tune stopping the trial at a report (ASHA) raises SystemExit here, in a reused process only when the next
    # trial takes it: the driver has ended the run FINISHED by then (tuning.status) and the run context leaves it so
    # (tracking.session.ended_elsewhere); in the other order the driver ends the KILLED run FINISHED.
    result = train_tracked(config, setup, run_id, checkpoint_dir, reporter)
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
