"""MLflow tracking for aesweep: where runs go, what a training logs, models, the registry.

Everything that imports mlflow lives here. Training calls in through callbacks
(`tracking.callback.MlflowCallback`); the `training` CLI finds it as a plug-in
(`tracking.plugin`); tuning uses `tracking.sweep_runs` for a sweep's parent and child runs
and `tracking.session` for each trial's training.

    python -m tracking ui            the MLflow UI over the project's store, on 127.0.0.1
    python -m tracking server ...    a shared tracking server for a cluster
    python -m tracking best          the best runs of an experiment, with model URIs
    python -m tracking report        a sweep's HTML report (history, importance, slices, top trials)
"""
import logging as _logging
import os as _os
import warnings as _warnings

if not _os.environ.get("AESWEEP_VERBOSE"):
    _os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    _logging.getLogger("mlflow").setLevel(_logging.WARNING)
    _logging.getLogger("mlflow.utils.environment").setLevel(_logging.ERROR)
    _logging.getLogger("alembic").setLevel(_logging.WARNING)
    _warnings.filterwarnings("ignore", message=".*(type hints to the `predict`|input example was not provided).*")
    _warnings.filterwarnings("ignore", module="mlflow.*", category=FutureWarning)
