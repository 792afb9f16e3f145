"""`python -m tracking ui|server` as real processes: one light server, allowed Host headers, nothing left on SIGTERM."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import psutil

from tests.conftest import ROOT
from tests.mlflow_helpers import free_port, wait_http
from tracking.server import default_allowed_hosts

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"  # not /health: MLflow exempts it from Host checks


def start(tmp_path, *args) -> subprocess.Popen:
    env = {**os.environ}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "tracking", *args], cwd=ROOT, env=env,
                            stdout=open(tmp_path / "server.log", "wb"), stderr=subprocess.STDOUT)


def tree(proc: subprocess.Popen) -> list[psutil.Process]:
    root = psutil.Process(proc.pid)
    return [root, *root.children(recursive=True)]


def alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(" ".join(p.cmdline())[:120])
        except psutil.NoSuchProcess:
            pass
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    try:
        procs = tree(proc)
    except psutil.NoSuchProcess:
        return
    for p in reversed(procs):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def signal_leaves_nothing(proc: subprocess.Popen, procs: list[psutil.Process], port: int, sig: int) -> None:
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 0
    deadline = time.time() + 10
    while alive(procs) and time.time() < deadline:
        time.sleep(0.2)
    survivors = alive(procs)
    for p in procs:  # never leave a stray server behind a failing test
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    assert not survivors, survivors
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"the port still answers after signal {sig}"


def status_for_host(port: int, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", SEARCH, headers={"Host": host})
    status = conn.getresponse().status
    conn.close()
    return status


def test_default_allowed_hosts_follow_the_bind_address():
    loop = default_allowed_hosts("127.0.0.1", 5000)
    assert {"localhost:5000", "127.0.0.1:5000", "[::1]:5000"} <= set(loop)
    assert socket.gethostname() not in loop and not any(h.startswith("10.") for h in loop)
    one = default_allowed_hosts("10.1.2.3", 5001)
    assert "10.1.2.3:5001" in one and "localhost:5001" in one and socket.gethostname() not in one
    anywhere = default_allowed_hosts("0.0.0.0", 5000)
    assert f"{socket.gethostname()}:5000" in anywhere and "127.0.0.1:5000" in anywhere


def test_ui_is_one_worker_and_sigterm_stops_everything(tmp_path):
    """SIGTERM here; Ctrl-C (SIGINT) in the server test below."""
    port = free_port()
    proc = start(tmp_path, "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{tmp_path}/ui.db",
                 "--allowed-hosts", f"127.0.0.1:{port},aesweep.test:{port}")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        time.sleep(2)  # MLflow starts its job consumers after the server answers: give them the chance
        procs = tree(proc)
        cmds = [" ".join(p.cmdline()) for p in procs]
        assert not [c for c in cmds if "huey" in c or "_job_runner" in c], cmds
        assert sum("uvicorn" in c for c in cmds) == 1, cmds  # uvicorn with one worker: no supervisor, no spawns
        assert len(procs) == 3, cmds  # us, the `mlflow server` launcher, uvicorn
        assert status_for_host(port, f"aesweep.test:{port}") == 200  # --allowed-hosts reaches MLflow as given
        assert status_for_host(port, f"localhost:{port}") == 403
    except BaseException:
        kill_tree(proc)
        raise
    signal_leaves_nothing(proc, procs, port, signal.SIGTERM)


def test_server_answers_allowed_hosts_only_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    proc = start(tmp_path, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                 "--artifacts-destination", str(tmp_path / "artifacts"))
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        procs = tree(proc)
        assert status_for_host(port, f"127.0.0.1:{port}") == 200
        assert status_for_host(port, f"localhost:{port}") == 200
        assert status_for_host(port, "evil.example.com") == 403
        assert status_for_host(port, f"10.0.0.5:{port}") == 403  # MLflow's own default admits private addresses
    except BaseException:
        kill_tree(proc)
        raise
    signal_leaves_nothing(proc, procs, port, signal.SIGINT)
    assert "allowed Host headers: localhost," in (tmp_path / "server.log").read_text()
