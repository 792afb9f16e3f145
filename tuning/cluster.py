"""A one-command local cluster: a Ray head on this machine (loopback, token authentication) and a tracking
server beside it, for trying `--address` sweeps before a real cluster. Thin: it runs `ray start --head` and
`python -m tracking server`, and remembers what it started in a state folder.

    python -m tuning.cluster up     # = make cluster-up; prints the RAY_ADDRESS and --tracking-uri to use
    python -m tuning.cluster down   # = make cluster-down; stops both (only what `up` started)

The head is a single-node cluster (Ray's RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 mode: its address stays
127.0.0.1, its GCS listens on loopback only, and no other node can join; `ray start` otherwise swaps in the
machine's address); drivers set the same variable (the printed `export` line has it). The token is
RAY_AUTH_TOKEN when set, else ~/.ray/auth_token (made, readable by you only, when missing).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

STATE_DIR = Path(os.environ.get("AESWEEP_CLUSTER_DIR", Path.home() / ".cache" / "aesweep" / "cluster"))
RAY = str(Path(sys.executable).parent / "ray")
# Ray's switch for a single-machine cluster: set to 0, `ray start` keeps 127.0.0.1 as the node's address (the
# GCS then listens on loopback only) and a driver keeps 127.0.0.1 in --address instead of swapping in this
# machine's address, where nothing listens: the driver needs it too.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def ray_env() -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": "token", LOOPBACK_ONLY: "0"}
    env.pop("RAY_ADDRESS", None)
    return env


def ensure_token() -> str:
    """Where the cluster's token comes from: RAY_AUTH_TOKEN, else ~/.ray/auth_token (generated if missing)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    token = Path.home() / ".ray" / "auth_token"
    if not token.is_file():
        subprocess.run([RAY, "get-auth-token", "--generate"], env=ray_env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    with contextlib.suppress(OSError):
        token.chmod(0o600)
        token.parent.chmod(0o700)
    return str(token)


def group_processes(pgid: int) -> list[psutil.Process]:
    """Every live process in this process group and below it (Ray's workers start groups of their own)."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if os.getpgid(p.pid) == pgid:
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
    return [p for p in found.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def stop_group(pgid: int, grace: float = 15.0) -> None:
    procs = group_processes(pgid)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        _, procs = psutil.wait_procs(procs, timeout=wait)
        if not procs:
            return


def wait_health(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the tracking server exited ({proc.returncode}); see {log}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"error: the tracking server did not answer {url} within {timeout:.0f}s; see {log}")


def up(args) -> int:
    state_file = args.state_dir / "state.json"
    if state_file.is_file():
        print(f"error: a local cluster is already up ({state_file}); `python -m tuning.cluster down` first",
              file=sys.stderr)
        return 2
    for name, port in (("--port", args.port), ("--tracking-port", args.tracking_port),
                       ("--dashboard-port", args.dashboard_port)):
        if port_taken(port):
            print(f"error: port {port} ({name}) is in use on 127.0.0.1: give another {name}", file=sys.stderr)
            return 2
    args.state_dir.mkdir(parents=True, exist_ok=True)
    token_from = ensure_token()
    temp_dir = tempfile.mkdtemp(dir="/tmp", prefix="aesweep-ray-")  # Ray's socket paths must stay short
    state = {"ray_temp_dir": temp_dir, "address": f"127.0.0.1:{args.port}"}
    cmd = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(args.port),
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(args.dashboard_port),
           "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
           "--metrics-export-port", str(free_port()), "--temp-dir", temp_dir, "--disable-usage-stats"]
    if args.num_cpus is not None:
        cmd += ["--num-cpus", str(args.num_cpus)]
    if args.object_store_memory is not None:
        cmd += ["--object-store-memory", str(args.object_store_memory)]
    ray_log = args.state_dir / "ray-start.log"
    with open(ray_log, "w") as log:
        # A session of its own: every daemon of the head stays in this process group, which `down` stops.
        head = subprocess.Popen(cmd, env=ray_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        state["ray_pgid"] = head.pid
        rc = head.wait(timeout=300)
    if rc != 0:
        stop_group(state["ray_pgid"])
        print(f"error: `ray start --head` failed ({rc}); see {ray_log} and Ray's logs in {temp_dir}/session_latest/logs",
              file=sys.stderr)
        return 1
    state_file.write_text(json.dumps(state))  # from here on, `down` can undo what was started

    store = args.state_dir / "mlflow.db"
    server_log = args.state_dir / "tracking-server.log"
    server = subprocess.Popen([sys.executable, "-m", "tracking", "server", "--backend-store-uri",
                               f"sqlite:///{store}", "--artifacts-destination", str(args.state_dir / "mlartifacts"),
                               "--host", "127.0.0.1", "--port", str(args.tracking_port), "--workers", "1"],
                              stdout=open(server_log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    state["tracking_pid"] = server.pid
    state["tracking_uri"] = f"http://127.0.0.1:{args.tracking_port}"
    state_file.write_text(json.dumps(state))
    wait_health(state["tracking_uri"] + "/health", 120, server, server_log)

    token_hint = "" if token_from == "RAY_AUTH_TOKEN" else f" (the token: {token_from})"
    print(f"Ray head on {state['address']} with token authentication{token_hint}; "
          f"tracking server on {state['tracking_uri']} over {store}\n"
          f"export RAY_AUTH_MODE=token {LOOPBACK_ONLY}=0 RAY_ADDRESS={state['address']}\n"
          f".venv/bin/python -m tuning --address {state['address']} --tracking-uri {state['tracking_uri']} "
          f"--storage-path {args.state_dir / 'ray_results'} ...\n"
          f"stop both: make cluster-down (python -m tuning.cluster down)")
    return 0


def down(args) -> int:
    state_file = args.state_dir / "state.json"
    if not state_file.is_file():
        print(f"no local cluster is up (no {state_file})")
        return 0
    state = json.loads(state_file.read_text())
    if pid := state.get("tracking_pid"):
        # `tracking server` stops the MLflow server's whole process group on SIGTERM.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(timeout=30)
        stop_group(pid, grace=5.0)
    stop_group(state["ray_pgid"])
    shutil.rmtree(state["ray_temp_dir"], ignore_errors=True)
    state_file.unlink()
    print(f"stopped the Ray head on {state['address']} and the tracking server on {state.get('tracking_uri')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tuning.cluster", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR,
                        help="where the store, the logs and what was started are kept "
                             "(default: $AESWEEP_CLUSTER_DIR or ~/.cache/aesweep/cluster)")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start a Ray head and a tracking server on 127.0.0.1")
    start.add_argument("--port", type=int, default=6379, help="the Ray head's port (default: 6379)")
    start.add_argument("--dashboard-port", type=int, default=8265, help="Ray's dashboard (default: 8265)")
    start.add_argument("--tracking-port", type=int, default=5000, help="the tracking server's (default: 5000)")
    start.add_argument("--num-cpus", type=int, default=None, help="CPUs Ray may use (default: all)")
    start.add_argument("--object-store-memory", type=int, default=None, help="bytes (default: Ray's)")
    sub.add_parser("down", help="stop what `up` started")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.state_dir = args.state_dir.expanduser().resolve()
    return up(args) if args.command == "up" else down(args)


if __name__ == "__main__":
    sys.exit(main())
