"""The tracking plug-in of `python -m training`: its flags, and a session per training."""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from tracking.flags import add_tracking_arguments
from tracking.registry import DEFAULT_METRIC
from tracking.store import dataset_label


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = add_tracking_arguments(parser, register_as="register under NAME (implies --register)")
    g.add_argument("--no-tracking", action="store_true", help="do not log this training to MLflow")
    g.add_argument("--run-name", default=None, help="MLflow run name (default: <model>-<dataset>)")
    g.add_argument("--register", action="store_true",
                   help="register the model as <model>-<dataset>; the alias 'champion' moves only on improvement")
    g.add_argument("--registry-metric", default=None, metavar="METRIC",
                   help="final validation metric deciding the champion (default: " + ", ".join(
                       f"{m} for the {model.upper()} on {'labelled' if lab else 'unlabelled'} data"
                       for (model, lab), (m, _) in DEFAULT_METRIC.items()) + "); test metrics are refused: "
                        "they are reported, never compared to choose")


RUN_ID_FILE = "mlflow_run_id"  # beside a checkpoint: the run that a resumed training continues


def resumable_run(checkpoint_dir: str | None, tracking_uri: str | None) -> str | None:
    """The MLflow run of the training that left `checkpoint_dir`, if it is in the store and did not finish:
    a resumed training continues it, so one training's history is one run."""
    path = Path(checkpoint_dir or "") / RUN_ID_FILE
    if not checkpoint_dir or not path.is_file():
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from tracking.store import prepare

    uri, _ = prepare(tracking_uri)  # reachable (one line if not), bounded retries, a new store made once
    try:
        run = MlflowClient(uri).get_run(path.read_text().strip())
    except MlflowException:  # another store, or the run was deleted: a new run
        return None
    return run.info.run_id if run.info.status != "FINISHED" and run.info.lifecycle_stage == "active" else None


@contextlib.contextmanager
def session(args, config, data):
    """Yields the callbacks to add to the training (none with --no-tracking). Under `mlflow run -e train`,
    the training's run is a child of the project's run (see tracking.session)."""
    if args.no_tracking:
        yield []
        return
    from tracking.session import tracked_run

    label = f"{config.model}-{dataset_label(config.dataset)}"
    name = args.register_as or (label if args.register else None)
    from tracking.store import store_gone
    from tracking.store import TrackingError, resolve_uri

    try:
        with tracked_run(config, data, tracking_uri=args.tracking_uri, experiment=args.experiment,
                         run_id=resumable_run(args.checkpoint_dir, args.tracking_uri),
                         run_name=args.run_name or label, system_metrics=not args.no_system_metrics,
                         image_every=args.image_every, register_as=name,
                         registry_metric=args.registry_metric) as run:
            if args.checkpoint_dir:
                Path(args.checkpoint_dir).mkdir(parents=True, exist_ok=True)
                (Path(args.checkpoint_dir) / RUN_ID_FILE).write_text(run.run_id + "\n")
            yield [run.callback]
    except TrackingError:
        raise  # already one line (e.g. unreachable before training)
    except Exception as e:
        if not store_gone(e):
            raise
        from tracking.secrets import safe_uri

        where = f"; --checkpoint-dir {args.checkpoint_dir} resumes it" if args.checkpoint_dir else ""
        raise TrackingError(f"the tracking store {safe_uri(resolve_uri(args.tracking_uri))} stopped answering, "
                            f"so the training stopped and its run could not be closed{where}; start the server "
                            f"again") from None
