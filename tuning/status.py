"""Driver-side Tune callback: each trial's MLflow child run mirrors how the trial ended.

A trial that ASHA stops is ended by Ray without running the rest of its function, so its
child run would stay RUNNING: this callback marks it FINISHED (stopping it was the plan, not a
fault) with tags `stopped_early=true` and `stopped_at_epoch=N`. A trial that errors for good is
marked FAILED with the error; KILLED stays for interrupts (the trial's own run context).
"""
from __future__ import annotations

from mlflow.tracking import MlflowClient
from ray import tune

from tracking.secrets import redact
from tuning.trial import TRIAL_TAG

STOPPED_EARLY, STOPPED_AT = "stopped_early", "stopped_at_epoch"


class ChildRunStatus(tune.Callback):
    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id

    def _child(self, trial):
        runs = self.client.search_runs([self.experiment_id], max_results=1,
                                       filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}' "
                                                     f"and tags.{TRIAL_TAG} = '{trial.trial_id}'")
        return runs[0] if runs else None

    def on_trial_complete(self, iteration, trials, trial, **info):
        run = self._child(trial)
        if run is None or run.info.status in ("FINISHED", "FAILED"):  # ended by the trial itself (FAILED: diverged)
            return
        if not trial.last_result.get("final"):
            self.client.set_tag(run.info.run_id, STOPPED_EARLY, "true")
            self.client.set_tag(run.info.run_id, STOPPED_AT, str(int(trial.last_result.get("epoch", 0))))
        self.client.set_terminated(run.info.run_id, status="FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        run = self._child(trial)
        if run is None:
            return
        if "failure_reason" in run.data.tags:  # recorded by the trial itself
            self.client.set_terminated(run.info.run_id, status="FAILED")
            return
        try:
            error = trial.get_error()
        except Exception:  # the error file may be gone; the status still must not stay RUNNING
            error = None
        lines = [ln for ln in str(error or "trial failed").strip().splitlines() if ln.strip()]
        self.client.set_tag(run.info.run_id, "failure_reason", redact(lines[-1] if lines else "trial failed")[:4000])
        self.client.set_terminated(run.info.run_id, status="FAILED")
