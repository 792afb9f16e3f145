"""MLflow commands over the project's store.

    python -m tracking ui [--port 5000]                      the UI over ./mlflow.db, on 127.0.0.1, one worker
    python -m tracking server --backend-store-uri URI --artifacts-destination DIR [--host H] [--port P]
                              [--allowed-hosts H1,H2] [--app-name basic-auth]
    python -m tracking best [--experiment NAME] [--metric M] [--top 5]
    python -m tracking report [--sweep NAME | --run-id PARENT] [--out DIR]   a sweep's HTML report

`ui` and `server` run `mlflow server` in its own process group; SIGTERM or Ctrl-C stops all of it.
"""
from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tracking", description="MLflow commands over aesweep's store.")
    sub = p.add_subparsers(dest="command", required=True)
    ui = sub.add_parser("ui", help="the MLflow UI over the project's store, bound to 127.0.0.1")
    ui.add_argument("--tracking-uri", default=None, help="store to show (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1", help="bind address; keep the loopback default unless you "
                                                       "put an authenticating proxy in front")
    ui.add_argument("--workers", type=int, default=1, help="server worker processes (default: 1)")
    srv = sub.add_parser("server", help="a shared tracking server for a cluster",
                         epilog="For a server others reach, turn on MLflow's login with --app-name basic-auth "
                                "(pip install 'mlflow[auth]'; set MLFLOW_FLASK_SERVER_SECRET_KEY and "
                                "MLFLOW_AUTH_ADMIN_PASSWORD before the first start; clients set "
                                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD), or put an "
                                "authenticating proxy in front.")
    srv.add_argument("--backend-store-uri", default=None, help="runs database (default: ./mlflow.db as SQLite); "
                                                               "for many writers use PostgreSQL or MySQL")
    srv.add_argument("--artifacts-destination", default="./mlartifacts",
                     help="where the server stores artifacts (a path, s3://, gs://, ...)")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    srv.add_argument("--port", type=int, default=5000)
    srv.add_argument("--workers", type=int, default=None, help="server worker processes (default: MLflow's, 4)")
    srv.add_argument("--app-name", choices=["basic-auth"], default=None,
                     help="basic-auth: users and passwords for a shared server (see below)")
    for cmd in (ui, srv):
        cmd.add_argument("--allowed-hosts", default=None, metavar="H1,H2",
                         help="Host headers the server answers (comma-separated, wildcards allowed); default: "
                              "the loopback names for a loopback --host, else also --host itself, or this "
                              "machine's name and addresses for 0.0.0.0; printed at start")
        cmd.add_argument("--jobs", action="store_true",
                         help="also start MLflow's job runner and consumers (GenAI jobs; off: they cost "
                              "several processes and GBs)")
    best = sub.add_parser("best", help="the best runs of an experiment, with their key metrics and model URIs")
    best.add_argument("--tracking-uri", default=None)
    best.add_argument("--experiment", default=None, help="experiment name (default: every aesweep-* experiment)")
    best.add_argument("--metric", default=None, help="rank by this validation metric (default: the registry's, "
                                                     "per model kind; test metrics are refused)")
    best.add_argument("--top", type=int, default=5)
    rep = sub.add_parser("report", help="a sweep's report: one HTML page (history, importance, slices, top "
                                        "trials), written locally and logged to the parent as report/index.html")
    which = rep.add_mutually_exclusive_group()
    which.add_argument("--sweep", default=None, metavar="NAME", help="the sweep's name (its parent run's name; "
                                                                     "default: the newest sweep)")
    which.add_argument("--run-id", default=None, metavar="PARENT", help="the sweep's parent run id")
    rep.add_argument("--tracking-uri", default=None)
    rep.add_argument("--out", default=None, metavar="DIR", help="where to write index.html and its PNGs "
                                                                "(default: ./reports/<sweep name>)")
    rep.add_argument("--ui-url", default=None, help="the MLflow UI the page links to (default: the tracking "
                                                    "server, or http://127.0.0.1:5000 as `tracking ui` serves)")
    rep.add_argument("--no-log", action="store_true", help="write the page locally only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tracking.secrets import safe_uri
    from tracking.store import TrackingError, prepare, resolve_uri

    if args.command in ("ui", "server"):
        from tracking import server

        if not server.is_loopback(args.host):
            print(f"warning: binding to {args.host} exposes the store to the network; without "
                  f"--app-name basic-auth (tracking server) or an authenticating proxy anyone who reaches "
                  f"it can read and change every run", file=sys.stderr)
        backend = resolve_uri(args.tracking_uri if args.command == "ui" else args.backend_store_uri)
        try:
            prepare(backend)  # create and migrate the store once, before the server's workers start
        except TrackingError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        artifacts = None
        if args.command == "server":
            artifacts = args.artifacts_destination if "://" in args.artifacts_destination \
                else os.path.abspath(args.artifacts_destination)
        allowed = args.allowed_hosts or ",".join(server.default_allowed_hosts(args.host, args.port))
        cmd = server.server_command(backend, args.host, args.port, artifacts=artifacts, workers=args.workers,
                                    allowed_hosts=allowed, app_name=getattr(args, "app_name", None))
        print(f"[aesweep] MLflow {args.command} on http://{server.bracket(args.host)}:{args.port} over {safe_uri(backend)}\n"
              f"[aesweep] allowed Host headers: {allowed}"
              + ("\n[aesweep] the UI opens in GenAI mode: click \"Model training\" for the sweeps"
                 if args.command == "ui" else ""), flush=True)
        return server.run(cmd, jobs=args.jobs)
    if args.command == "report":
        from tracking import sweep_report

        return sweep_report.main(args)
    try:
        from tracking.report import print_best

        return print_best(resolve_uri(args.tracking_uri), args.experiment, args.metric, args.top)
    except TrackingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
