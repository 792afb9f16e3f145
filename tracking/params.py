"""Logging params without clashes: every run's params go through `log_params`.

MLflow refuses to change a param's value. Under `mlflow run`, the project's run already holds
the entry point's parameters as given ('' for "not given"); a value we resolved for such a
key (the default, or a preset's) is logged as `<key>.resolved`, next to it in the UI.
"""
from __future__ import annotations

from collections.abc import Mapping

import mlflow
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from tracking.secrets import redact

RESOLVED = ".resolved"
BATCH = 100  # MLflow's limit of params per log_batch


def param_value(value) -> str:
    """How a config value reads as a param: sequences comma-separated ('256,128'), the rest as str()."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)  # '8' given to `mlflow run`, 8.0 resolved
    except ValueError:
        return False


def log_params(params: Mapping[str, object], run_id: str | None = None,
               client: MlflowClient | None = None) -> dict[str, str]:
    """Log `params` (in order) on `run_id` (default: the active run): keys it lacks; a key that already
    holds the same value is skipped; one holding another value gets this one as `<key>.resolved`.
    None and '' are never logged; values are redacted. Returns what was logged."""
    client = client or MlflowClient()
    run_id = run_id or mlflow.active_run().info.run_id
    existing = client.get_run(run_id).data.params
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None or (text := redact(param_value(value))) == "":
            continue
        if key in existing and not same(existing[key], text):
            key += RESOLVED
        if key in existing and same(existing[key], text):
            continue
        out[key] = text
    items = [Param(k, v) for k, v in out.items()]
    for i in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[i:i + BATCH])
    return out
