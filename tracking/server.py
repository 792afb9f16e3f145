"""The MLflow server behind `python -m tracking ui|server`: its command, its allowed Host headers, and its lifetime.

The server runs in its own process group; a SIGTERM or Ctrl-C to us stops that whole group (the
`mlflow server` launcher, uvicorn and its workers, MLflow's job runner and huey consumers when
asked for), so nothing outlives the command that started it.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys

import psutil

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# MLflow starts a job runner and several huey consumers by default (GenAI jobs this project never uses).
JOBS_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bracket(host: str) -> str:
    """The form a Host header carries: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _machine_names() -> list[str]:
    """This machine's hostname, FQDN and non-loopback, non-link-local interface addresses."""
    names = [socket.gethostname(), socket.getfqdn()]
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(a.address.split("%")[0])
            if not (ip.is_loopback or ip.is_link_local):
                names.append(str(ip))
    return names


def default_allowed_hosts(host: str, port: int) -> list[str]:
    """Host headers the server accepts when --allowed-hosts is not given.

    Loopback bind: the loopback names only (MLflow's own default also admits every private address).
    Another address: that address and the loopback names; the wildcard (0.0.0.0, ::): this
    machine's hostname and addresses too. Each name with and without the port.
    """
    names = list(LOOPBACK_NAMES)
    if not is_loopback(host):
        names += _machine_names() if host in WILDCARD_HOSTS else [host]
    unique = list(dict.fromkeys(bracket(n) for n in names if n))
    return [h for n in unique for h in (n, f"{n}:{port}")]


def server_command(backend: str, host: str, port: int, *, artifacts: str | None = None, workers: int | None = None,
                   allowed_hosts: str | None = None, app_name: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--host", host,
           "--port", str(port)]
    if artifacts:
        cmd += ["--artifacts-destination", artifacts]
    if workers:
        cmd += ["--workers", str(workers)]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    if app_name:
        cmd += ["--app-name", app_name]
    return cmd


class _Stop(Exception):
    pass


def _raise_stop(signum, _frame):
    raise _Stop(signum)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever (in the group or below) still lives."""
    try:
        tree = [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for p in tree:  # a child that left the group (setsid) is reached directly
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, tree = psutil.wait_procs(tree, timeout=wait)
        if not tree:
            break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def run(cmd: list[str], jobs: bool = False) -> int:
    """Run the server in its own process group until it exits or we get SIGTERM/SIGINT; then stop the group."""
    env = {**os.environ, JOBS_ENV: "true" if jobs else "false"}
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    proc = None
    try:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        return proc.wait()
    except (_Stop, KeyboardInterrupt):
        print("[aesweep] stopping the MLflow server", file=sys.stderr)
        return 0
    finally:
        for s in (signal.SIGTERM, signal.SIGINT):  # a second signal must not interrupt the clean-up
            signal.signal(s, signal.SIG_IGN)
        if proc is not None:
            stop_group(proc)
        for s, handler in previous.items():
            signal.signal(s, handler)
