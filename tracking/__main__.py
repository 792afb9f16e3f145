"""MLflow commands over the project's store.

    python -m tracking ui [--port 5000]                      the UI over ./mlflow.db, on 127.0.0.1
    python -m tracking server --backend-store-uri URI --artifacts-destination DIR [--host H] [--port P]
    python -m tracking best [--experiment NAME] [--metric M] [--top 5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tracking", description="MLflow commands over aesweep's store.")
    sub = p.add_subparsers(dest="command", required=True)
    ui = sub.add_parser("ui", help="the MLflow UI over the project's store, bound to 127.0.0.1")
    ui.add_argument("--tracking-uri", default=None, help="store to show (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1", help="bind address; keep the loopback default unless you "
                                                       "put an authenticating proxy in front")
    srv = sub.add_parser("server", help="a shared tracking server for a cluster")
    srv.add_argument("--backend-store-uri", default=None, help="runs database (default: ./mlflow.db as SQLite); "
                                                               "for many writers use PostgreSQL or MySQL")
    srv.add_argument("--artifacts-destination", default="./mlartifacts",
                     help="where the server stores artifacts (a path, s3://, gs://, ...)")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    srv.add_argument("--port", type=int, default=5000)
    srv.add_argument("--workers", type=int, default=None, help="server worker processes")
    best = sub.add_parser("best", help="the best runs of an experiment, with their key metrics and model URIs")
    best.add_argument("--tracking-uri", default=None)
    best.add_argument("--experiment", default=None, help="experiment name (default: every aesweep-* experiment)")
    best.add_argument("--metric", default=None, help="rank by this validation metric (default: the registry's, "
                                                     "per model kind; test metrics are refused)")
    best.add_argument("--top", type=int, default=5)
    return p


def _mlflow_server_cmd(backend: str, host: str, port: int, artifacts: str | None, workers: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--host", host,
           "--port", str(port)]
    if artifacts:
        cmd += ["--artifacts-destination", artifacts]
    if workers:
        cmd += ["--workers", str(workers)]
    return cmd


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tracking.store import TrackingError, prepare, resolve_uri

    if args.command in ("ui", "server"):
        if args.host not in LOOPBACK:
            print(f"warning: binding to {args.host} exposes the store to the network without authentication; "
                  f"use MLflow's --app-name basic-auth or an authenticating proxy", file=sys.stderr)
        backend = resolve_uri(args.tracking_uri if args.command == "ui" else args.backend_store_uri)
        prepare(backend)  # create and migrate the store once, before the server's workers start
        artifacts = os.path.abspath(args.artifacts_destination) if args.command == "server" and "://" not in \
            args.artifacts_destination else getattr(args, "artifacts_destination", None)
        cmd = _mlflow_server_cmd(backend, args.host, args.port, artifacts, getattr(args, "workers", None))
        print(f"[aesweep] MLflow {args.command} on http://{args.host}:{args.port} over {backend}")
        try:
            return subprocess.call(cmd)
        except KeyboardInterrupt:
            return 0
    try:
        from tracking.report import print_best

        return print_best(resolve_uri(args.tracking_uri), args.experiment, args.metric, args.top)
    except TrackingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
