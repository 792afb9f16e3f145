"""The MLflow flags `python -m training` (through tracking.plugin) and `python -m tuning` share: one definition."""
from __future__ import annotations

import argparse


def add_tracking_arguments(parser: argparse.ArgumentParser, register_as: str):
    """Add the shared tracking flags in a group "tracking (MLflow)" and return it, for the caller's own flags.
    `register_as`: the help of --register-as, which names what this CLI registers."""
    g = parser.add_argument_group("tracking (MLflow)")
    g.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db; on a "
                        "cluster an http(s) server)")
    g.add_argument("--experiment", default=None, help="experiment name (default: aesweep-<model>-<dataset>)")
    g.add_argument("--register-as", default=None, metavar="NAME", help=register_as)
    g.add_argument("--image-every", type=int, default=None, metavar="N",
                   help="log images every N epochs, and at the end (default: at most 10 image steps per run, "
                        "longer runs logging less often; a sweep's trials every quarter of their epochs)")
    g.add_argument("--no-system-metrics", action="store_true", help="do not sample CPU / memory / GPU use")
    return g
