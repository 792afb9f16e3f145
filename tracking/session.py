"""A tracked run as a context manager: started or resumed, and always ended with a true status.

    with tracked_run(config, data, experiment="...") as run:
        result = train(config, callbacks=[run.callback])

FINISHED on success; FAILED on an exception or a diverged training (reason in tag
`failure_reason`); KILLED on Ctrl-C or SIGTERM. Never left RUNNING. Under `mlflow run` (MLFLOW_RUN_ID
set), a new run is a nested child of the project's run, in its experiment: the project's run keeps
the entry point's parameters as given, the child the training's own values.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from tracking.callback import MlflowCallback
from tracking.registry import Registration, check_selection_metric, default_metric, register
from tracking.secrets import redact, safe_uri
from tracking.store import default_experiment, prepare, store_gone
from tracking.termination import sigterm_as_interrupt
from tracking.unclosed import remember
from training.metrics import direction

ROOT = Path(__file__).resolve().parents[1]
SAMPLING_SECONDS = "5"


@dataclass
class TrackedRun:
    run_id: str
    experiment_id: str
    callback: MlflowCallback
    registration: Registration | None = None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def project_run() -> str | None:
    """The run `mlflow run` started for this process (MLFLOW_RUN_ID), if any, taken out of the environment:
    MLflow would otherwise resume it, and it already holds the entry point's parameters (often '' for
    "not given"), which a training's real values under the same keys may not overwrite."""
    return os.environ.pop("MLFLOW_RUN_ID", None)


@contextlib.contextmanager
def ending_run(defer_sigterm: bool = True):
    """Ends the active run truthfully when the block exits: FINISHED (unless the block set
    outcome["status"]), FAILED with tag `failure_reason` on an exception, KILLED on Ctrl-C,
    SIGTERM or Ray Tune stopping the trial (SystemExit). Never left RUNNING."""
    outcome = {"status": "FINISHED"}
    try:
        with sigterm_as_interrupt(defer_sigterm):
            yield outcome  # a SIGTERM that came after the last epoch lets the finished work end FINISHED
    except (KeyboardInterrupt, SystemExit):
        outcome["status"] = "KILLED"
        raise
    except BaseException as e:
        outcome["status"] = "FAILED"
        if not store_gone(e):  # a store that stopped answering would only make us wait again
            mlflow.set_tag("failure_reason", redact(f"{type(e).__name__}: {e}")[:4000])
        raise
    finally:
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN) if main else None  # we are ending anyway
        active = mlflow.active_run()
        try:
            if outcome["status"] == "KILLED" and active is not None:
                outcome["status"] = ended_elsewhere(active.info.run_id) or "KILLED"
            mlflow.end_run(status=outcome["status"])
        except Exception as e:
            if not store_gone(e):
                raise
            # The server is gone: the run cannot be closed now; the next start against this store closes
            # it (tracking.unclosed); the exception on its way out says so.
            if active is not None:
                remember(mlflow.get_tracking_uri(), active.info.run_id, "FAILED",
                         "the tracking server stopped answering, so the training stopped")
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)


def ended_elsewhere(run_id: str) -> str | None:
    """The status a run already ended with by another hand (FINISHED or FAILED), else None. A sweep's driver ends
    the run of a trial that Ray Tune stopped (tuning.status) while the trial's thread may still be running, to be
    stopped later (SystemExit): that interrupt must not turn the driver's FINISHED into KILLED."""
    status = mlflow.MlflowClient().get_run(run_id).info.status
    return status if status in ("FINISHED", "FAILED") else None


@contextlib.contextmanager
def tracked_run(config, data, tracking_uri: str | None = None, experiment: str | None = None,
                run_id: str | None = None, run_name: str | None = None,
                system_metrics: bool = True, image_every: int | None = None,
                log_model: bool = True, register_as: str | None = None, registry_metric: str | None = None,
                quiet: bool = False, param_keys: tuple[str, ...] | None = None, headline: str | None = None):
    """Start (or resume `run_id`) a run for one training, yield a TrackedRun, close it truthfully.
    param_keys: the config fields the run records (see MlflowCallback); None: all that apply.
    headline: a sweep's metric, also logged as `sweep/<metric>` (see MlflowCallback)."""
    if registry_metric:
        check_selection_metric(registry_metric)  # before the store is touched: nothing half-written
    parent_run_id = project_run() if run_id is None else None  # under `mlflow run`, a new run is its child
    # A resumed run keeps its experiment, a child its parent's; only a new run needs one (created if missing).
    uri, experiment_id = prepare(tracking_uri, None if run_id or parent_run_id else
                                 (experiment or default_experiment(config.model, config.dataset)))
    if parent_run_id and not run_id:
        experiment_id = MlflowClient(uri).get_run(parent_run_id).info.experiment_id
    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", SAMPLING_SECONDS)
    commit = git_commit()
    all_tags = {"mlflow.source.git.commit": commit} if commit else {}
    metric = default_metric(config.model, data.labelled)
    if registry_metric:
        metric = (registry_metric, direction(registry_metric))
    callback = MlflowCallback(image_every=image_every, log_model=log_model or bool(register_as),
                              param_keys=param_keys, headline=headline)
    active = mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id, run_name=run_name,
                              parent_run_id=parent_run_id, tags=all_tags, log_system_metrics=system_metrics)
    tracked = TrackedRun(active.info.run_id, active.info.experiment_id, callback)
    if not quiet:
        print(f"[aesweep] MLflow run {tracked.run_id} in experiment {tracked.experiment_id} at {safe_uri(uri)}")
    with ending_run() as outcome:
        try:
            yield tracked
        except BaseException as e:  # the epochs' metrics held back are sent, unless the store is what failed
            if callback.pending and not store_gone(e):
                try:
                    callback.flush()
                except Exception as failed:
                    e.add_note(f"(the last epochs' metrics could not be logged: {failed})")
            raise
        result = callback.result
        if result is not None and result.diverged:
            mlflow.set_tag("failure_reason", result.status)
            outcome["status"] = "FAILED"
        elif register_as and result is not None:
            name, mode = metric
            if name not in result.metrics:
                raise KeyError(f"metric {name!r} not in this run's results ({', '.join(result.metrics)}); "
                               f"choose another --registry-metric")
            tracked.registration = register(callback.model_uris["pyfunc"], register_as, tracked.run_id, name,
                                            mode, result.metrics[name], data.digest, MlflowClient(uri))
            mlflow.set_tag("registered_as", f"{register_as}/{tracked.registration.version}")
            if not quiet:
                print(tracked.registration.message())
