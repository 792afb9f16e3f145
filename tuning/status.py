"""Driver-side Tune callback: each trial's MLflow child run mirrors how the trial ended.

A trial that ASHA stops is ended by Ray without running the rest of its function, so its
child run would stay RUNNING: this callback marks it FINISHED (stopping it was the plan, not a
fault) with tags `stopped_early=true` and `stopped_at_epoch=N`. A trial that errors for good is
marked FAILED with the error; KILLED stays for interrupts (the trial's own run context).
What each status means for the run is tracking.sweep_runs' (complete_child, fail_child).
"""
from __future__ import annotations

from ray import tune

from tracking.sweep_runs import SweepRuns


class ChildRunStatus(tune.Callback):
    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.runs = SweepRuns(tracking_uri, experiment_id, parent_run_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        final = trial.last_result.get("final")
        self.runs.complete_child(trial.trial_id, None if final else int(trial.last_result.get("epoch", 0)))

    def on_trial_error(self, iteration, trials, trial, **info):
        def error():
            try:
                return trial.get_error()
            except Exception:  # the error file may be gone; the status still must not stay RUNNING
                return None

        self.runs.fail_child(trial.trial_id, error)
