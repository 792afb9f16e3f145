"""Real MLflow processes for tests: a tracking server and a model server on free loopback ports."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def process(cmd: list[str], health_url: str, timeout: float = 120, env: dict | None = None, log=None):
    # `mlflow models serve` starts uvicorn by name: the venv's bin must be on PATH.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    proc = subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env={**os.environ, "PATH": path, **(env or {})}, start_new_session=True)
    try:
        wait_http(health_url, timeout, proc)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@contextlib.contextmanager
def mlflow_server(tmp_path, port: int | None = None):
    """A server over tmp_path's store; the same port again restarts "the same" server."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
           "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    with process(cmd, f"http://127.0.0.1:{port}/health", log=open(tmp_path / "server.log", "wb")):
        yield f"http://127.0.0.1:{port}"
