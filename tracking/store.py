"""Where runs go: the tracking URI, a store created once, experiments, and whether the store answers."""
from __future__ import annotations

import contextlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow.tracking import MlflowClient

from tracking.secrets import safe_uri, without_credentials
from tracking.unclosed import close_remembered
from training.data import dataset_label
from training.errors import UserError

ENV_URI = "MLFLOW_TRACKING_URI"


class TrackingError(UserError, RuntimeError):
    """The tracking store cannot be used; the message says why and what to do."""


def default_uri() -> str:
    """MLflow's embedded SQLite store in the current directory, as an ABSOLUTE URI: Ray trials change directory."""
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def resolve_uri(uri: str | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the default store; relative paths made absolute."""
    uri = uri or os.environ.get(ENV_URI) or default_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    elif "://" not in uri:  # a bare path: a SQLite file
        uri = f"sqlite:///{Path(uri).resolve()}"
    return uri


def is_local(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:")


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast (within `timeout`) with a clear message if an http(s) server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    deadline = time.time() + timeout
    last = "no answer"
    while time.time() < deadline:
        try:
            # /health needs no credentials (urllib cannot parse user:password@ in a URL anyway)
            health = without_credentials(uri.rstrip("/")) + "/health"
            with urllib.request.urlopen(health, timeout=max(0.5, deadline - time.time())) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
            break
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
        time.sleep(0.5)
    from tracking.commands import python_command

    raise TrackingError(f"tracking server {safe_uri(uri)} is unreachable ({last}); start it "
                        f"({python_command('tracking server')}) or pass another --tracking-uri")


def store_gone(e: BaseException) -> bool:
    """Whether `e` says the tracking server stopped answering (after MLflow's bounded retries)."""
    import requests

    text = str(e)
    return isinstance(e, requests.exceptions.ConnectionError) or any(
        s in text for s in ("Max retries exceeded", "Connection refused", "Failed to establish a new connection",
                            "Read timed out"))


def prepare(uri: str | None = None, experiment: str | None = None,
            artifact_location: str | None = None) -> tuple[str, str | None]:
    """Resolve the URI, create the store and experiment once (before any worker touches them); a new
    experiment keeps its artifacts at `artifact_location` when given (MLflow's default otherwise).

    Returns (uri, experiment_id). Sets MLflow's process-wide tracking URI and the env var, so
    subprocesses and Ray workers started afterwards use the same absolute URI.
    """
    uri = resolve_uri(uri)
    bound_retries()
    check_reachable(uri)
    lock = contextlib.nullcontext()
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"cannot create the folder of tracking store {db} ({e.strerror}); "
                                f"pass a writable --tracking-uri") from None
        if not os.access(db.parent, os.W_OK):
            raise TrackingError(f"tracking store folder {db.parent} is not writable; pass a writable --tracking-uri")
        # A fresh SQLite store is created and migrated by the first process; others wait (concurrent
        # migrations fail with "Online migration expected to match one row").
        lock = FileLock(f"{db}.lock", timeout=300)
    mlflow.set_tracking_uri(uri)
    os.environ[ENV_URI] = uri
    with lock:
        try:
            client = MlflowClient(uri)  # creates and migrates a fresh SQLite store
            client.search_experiments(max_results=1)
        except Exception as e:
            raise TrackingError(f"cannot open tracking store {safe_uri(uri)}: "
                                f"{safe_uri(str(e).splitlines()[0] if str(e) else type(e).__name__)}; is it an "
                                f"MLflow store? pass another --tracking-uri") from None
        close_remembered(uri, client)  # runs a gone server left RUNNING (tracking.unclosed)
        experiment_id = None
        if experiment:
            found = client.get_experiment_by_name(experiment)
            if found is not None and found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            experiment_id = found.experiment_id if found else client.create_experiment(
                experiment, artifact_location=artifact_location)
    return uri, experiment_id


# MLflow's own HTTP retries total about 4 minutes per call (7 retries, backoff 2, 120 s timeout): a
# tracking server that is gone then hangs a training for many minutes, call after call. Ours: 4 retries
# with backoff 1 s (1+2+4+8 s) and a 10 s timeout per request, so one call gives up within about a
# minute. Any MLFLOW_HTTP_REQUEST_* value the user set is kept.
RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def bound_retries() -> None:
    for key, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def default_experiment(model: str, dataset: str) -> str:
    return f"aesweep-{model}-{dataset_label(dataset)}"


