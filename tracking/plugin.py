"""The tracking plug-in of `python -m training`: its flags, and a session per training."""
from __future__ import annotations

import argparse
import contextlib

from tracking.registry import DEFAULT_METRIC
from tracking.store import dataset_label


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("tracking (MLflow)")
    g.add_argument("--no-tracking", action="store_true", help="do not log this training to MLflow")
    g.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    g.add_argument("--experiment", default=None, help="experiment name (default: aesweep-<model>-<dataset>)")
    g.add_argument("--run-name", default=None, help="MLflow run name")
    g.add_argument("--register", action="store_true",
                   help="register the model as <model>-<dataset>; the alias 'champion' moves only on improvement")
    g.add_argument("--register-as", default=None, metavar="NAME", help="register under NAME (implies --register)")
    g.add_argument("--registry-metric", default=None, metavar="METRIC",
                   help="final validation metric deciding the champion (default: " + ", ".join(
                       f"{m} for the {model.upper()} on {'labelled' if lab else 'unlabelled'} data"
                       for (model, lab), (m, _) in DEFAULT_METRIC.items()) + "); test metrics are refused: "
                        "they are reported, never compared to choose")
    g.add_argument("--image-every", type=int, default=None, metavar="N",
                   help="log images every N epochs (default: about five times per run, and at the end)")
    g.add_argument("--no-system-metrics", action="store_true", help="do not sample CPU / memory / GPU use")


@contextlib.contextmanager
def session(args, config, data):
    """Yields the callbacks to add to the training (none with --no-tracking)."""
    if args.no_tracking:
        yield []
        return
    from tracking.session import tracked_run

    name = args.register_as or (f"{config.model}-{dataset_label(config.dataset)}" if args.register else None)
    with tracked_run(config, data, tracking_uri=args.tracking_uri, experiment=args.experiment,
                     run_name=args.run_name, system_metrics=not args.no_system_metrics,
                     image_every=args.image_every, register_as=name,
                     registry_metric=args.registry_metric) as run:
        yield [run.callback]
