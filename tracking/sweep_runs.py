"""A sweep's runs in MLflow: the parent run, one child run per Ray trial, how each child ended, and
the summary logged on the parent. `tuning/` talks to MLflow only through this module and
`tracking.session`.

    parent = open_parent(uri, "my-sweep", "aesweep-vae-mnist")     # resumed, or `mlflow run`'s run, or new
    runs = SweepRuns(parent.uri, parent.experiment_id, parent.run_id)
    run_id = runs.open_child(trial_id, node_id, "latent=16", {"latent_dim": 16}, {"model_kind": "vae"})
    runs.complete_child(trial_id, stopped_at=3)                     # ASHA stopped it: FINISHED, stopped_early
    runs.fail_child(trial_id, lambda: error)                        # its own reason, else the error's last line

A child is found by its parent and its Ray trial id (`child_filter`, the one place that says so), so a
retried trial or a resumed sweep never makes a second run for the same trial.
"""
from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mlflow
from mlflow.tracking import MlflowClient

from tracking.params import log_params
from tracking.registry import default_metric, register
from tracking.secrets import redact
from tracking.session import project_run
from tracking.store import prepare

TRIAL_TAG = "ray_trial_id"
NODE_TAG = "ray_node_id"  # the Ray node of the trial's latest attempt (a retry may run on another node)
STOPPED_EARLY, STOPPED_AT = "stopped_early", "stopped_at_epoch"
REASON_TAG = "failure_reason"
# How MLflow names an image logged with mlflow.log_image(key=..., step=...): images/<key>+step+<step>+....png
TRAVERSAL_IMAGE = re.compile(r"^images/latent_traversal\+step\+(?P<step>\d+)\+.*\.png$")


def child_filter(parent_run_id: str, trial_id: str | None = None) -> str:
    """The search filter for the sweep's child runs (one trial's, when `trial_id` is given)."""
    found = f"tags.mlflow.parentRunId = '{parent_run_id}'"
    return found + (f" and tags.{TRIAL_TAG} = '{trial_id}'" if trial_id is not None else "")


def last_line(error) -> str | None:
    """An error's last non-empty line, redacted and bounded: what a run's failure_reason shows."""
    lines = [ln for ln in str(error).strip().splitlines() if ln.strip()]
    return redact(lines[-1])[:4000] if lines else None


# The parent run (the active run of the sweep's driver)

@dataclass(frozen=True)
class Parent:
    uri: str
    run_id: str
    experiment_id: str


def open_parent(uri: str | None, name: str, experiment: str, resume_run_id: str | None = None) -> Parent:
    """Start the sweep's parent as the active run: `resume_run_id` (a resumed sweep), else the run `mlflow run`
    started for this process, else a new run `name` in `experiment` (created if missing). Named `name` in
    every case: under `mlflow run`, the project's run had a random name."""
    project = project_run()  # taken out of the environment in any case: trials must not resume it
    run_id = resume_run_id or project
    uri, experiment_id = prepare(uri, None if run_id else experiment)
    parent = mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id,
                              run_name=None if run_id else name)
    mlflow.set_tag("mlflow.runName", name)
    return Parent(uri, parent.info.run_id, parent.info.experiment_id)


def log_parent(params: Mapping[str, object] | None = None, tags: Mapping[str, object] | None = None,
               metrics: Mapping[str, float] | None = None) -> None:
    """Params (see tracking.params), tags and metrics on the active (parent) run."""
    if params:
        log_params(params)
    if tags:
        mlflow.set_tags(dict(tags))
    if metrics:
        mlflow.log_metrics(dict(metrics))


def fail_parent(reason: str) -> None:
    """Why the sweep failed, on its parent (tracking.session.ending_run then ends it FAILED)."""
    mlflow.set_tag(REASON_TAG, reason)


def parent_experiment() -> str:
    """The name of the active (parent) run's experiment."""
    return mlflow.get_experiment(mlflow.active_run().info.experiment_id).name


def log_trials(df) -> None:
    """The table of all trials on the parent: as a table the UI shows (trials.json) and as trials.csv."""
    mlflow.log_table(df, artifact_file="trials.json")
    with tempfile.TemporaryDirectory() as tmp:
        df.to_csv(f"{tmp}/trials.csv", index=False)
        mlflow.log_artifact(f"{tmp}/trials.csv")


def log_figure(fig, path: str) -> None:
    mlflow.log_figure(fig, path)


# The children, from the driver or a trial

class SweepRuns:
    """The child runs of one sweep's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id

    def child(self, trial_id: str):
        runs = self.client.search_runs([self.experiment_id], max_results=1,
                                       filter_string=child_filter(self.parent_run_id, trial_id))
        return runs[0] if runs else None

    def children(self) -> dict[str, object]:
        """Every child run, by Ray trial id."""
        runs = self.client.search_runs([self.experiment_id], filter_string=child_filter(self.parent_run_id),
                                       max_results=5000)
        return {r.data.tags.get(TRIAL_TAG): r for r in runs}

    def open_child(self, trial_id: str, node_id: str, name: str, params: Mapping[str, object],
                   tags: Mapping[str, str]) -> str:
        """The trial's child run: the existing one (a retry, a resumed sweep: one more attempt on `node_id`,
        unless it FINISHED) or a new one named `name`, holding `params` (before the trial's config is built,
        so even a trial whose config is invalid shows what it tried) and `tags`."""
        run = self.child(trial_id)
        if run is not None:
            if run.info.status == "FINISHED":
                return run.info.run_id  # trained and logged to the end: not another attempt (see finished_result)
            attempts = int(run.data.tags.get("attempts", "1")) + 1
            self.client.set_tag(run.info.run_id, "attempts", str(attempts))
            self.client.set_tag(run.info.run_id, NODE_TAG, node_id)
            return run.info.run_id
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={"mlflow.parentRunId": self.parent_run_id, TRIAL_TAG: trial_id,
                                           "attempts": "1", **tags, NODE_TAG: node_id})
        log_params(params, run.info.run_id, self.client)
        return run.info.run_id

    def finished_result(self, run_id: str) -> dict | None:
        """The final result of a child run that already FINISHED, read back from the run (its metrics, the
        replicas/workers tags and its last epoch), or None."""
        run = self.client.get_run(run_id)
        if run.info.status != "FINISHED":
            return None
        epoch = max((m.step for m in self.client.get_metric_history(run_id, "loss")), default=0)
        counts = {k: int(run.data.tags[k]) for k in ("replicas", "workers") if run.data.tags.get(k, "").isdigit()}
        return {**run.data.metrics, **counts, "epoch": epoch, "final": 1}

    def set_reason(self, run_id: str, error: BaseException) -> None:
        """Why the trial failed, known where it failed; the driver ends the run FAILED (fail_child)."""
        self.client.set_tag(run_id, REASON_TAG, redact(f"{type(error).__name__}: {error}")[:4000])

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, key, value)

    def complete_child(self, trial_id: str, stopped_at: int | None) -> None:
        """The trial ended without error: FINISHED, tagged `stopped_early` at epoch `stopped_at` when the
        scheduler stopped it. A run the trial ended itself (FINISHED, or FAILED: diverged) stays as it is."""
        run = self.child(trial_id)
        if run is None or run.info.status in ("FINISHED", "FAILED"):
            return
        if stopped_at is not None:
            self.client.set_tag(run.info.run_id, STOPPED_EARLY, "true")
            self.client.set_tag(run.info.run_id, STOPPED_AT, str(stopped_at))
        self.client.set_terminated(run.info.run_id, status="FINISHED")

    def fail_child(self, trial_id: str, error: Callable[[], object]) -> None:
        """The trial failed for good: FAILED, with its own reason if it recorded one, else the last line of
        `error()` (called only then)."""
        run = self.child(trial_id)
        if run is None:
            return
        if REASON_TAG not in run.data.tags:
            self.client.set_tag(run.info.run_id, REASON_TAG, last_line(error() or "trial failed") or "trial failed")
        self.client.set_terminated(run.info.run_id, status="FAILED")

    def final_traversal(self, run_id: str, directory: str) -> str | None:
        """The child's last logged latent traversal, downloaded into `directory`; its path, or None."""
        found = [(int(m["step"]), a.path) for a in self.client.list_artifacts(run_id, "images")
                 if (m := TRAVERSAL_IMAGE.match(a.path))]
        return self.client.download_artifacts(run_id, max(found)[1], directory) if found else None


def model_log_starts(uri: str, experiment: str) -> dict[str, float]:
    """When each run of `experiment` began logging its models (its first logged model's creation, epoch seconds),
    by run id: what benchmarks.sweep tells model logging apart from the images logged before it by."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    starts: dict[str, float] = {}
    for m in client.search_logged_models(experiment_ids=[found.experiment_id]) if found else []:
        if m.source_run_id:
            starts[m.source_run_id] = min(m.creation_timestamp / 1000, starts.get(m.source_run_id, float("inf")))
    return starts


def register_run(client: MlflowClient, run_id: str, run_name: str, name: str, model: str):
    """Register the run's model as a version of `name`, judged on the registry's validation metric for
    `model` (see tracking.registry); the Registration, or None (with the reason printed) if it cannot be."""
    run = client.get_run(run_id)
    model_uri = run.data.tags.get("pyfunc_model_uri")
    if not model_uri:
        print(f"[aesweep] best trial {run_name} logged no model; nothing to register")
        return None
    labelled = "val_cluster_acc" in run.data.metrics  # logged every epoch on labelled data
    reg_metric, reg_mode = default_metric(model, labelled)
    value = run.data.metrics.get(reg_metric)
    if value is None:
        print(f"[aesweep] best trial has no {reg_metric}; nothing to register")
        return None
    registration = register(model_uri, name, run_id, reg_metric, reg_mode, value,
                            run.data.tags.get("dataset_digest", ""), client)
    print(registration.message())
    mlflow.set_tag("registered_as", f"{name}/{registration.version}")
    return registration
