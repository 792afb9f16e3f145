"""A real two-node Ray cluster on one machine, started as the README tells users to: `ray start --head` and
`ray start --address` (separate processes, token authentication on), a real `mlflow server`, and a sweep
driven through `--address`. The second node is killed mid-trial; its trial resumes on the head from its
checkpoint. Slow (5.5 min on 2 cores under a load average of about 20): marked `cluster`; CI runs it on its own.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from tests.mlflow_helpers import free_port, mlflow_server
from tests.test_tuning import TINY, children, env_for, the_parent

pytestmark = pytest.mark.cluster

RAY = str(Path(sys.executable).parent / "ray")
EPOCHS = 40  # about 20-30 s per trial here: long enough to kill the second node mid-trial


def ray_env(token: str | None) -> dict:
    """The environment of every node and of the driver: token authentication on, the test's own token."""
    env = env_for("")
    env.pop("MLFLOW_TRACKING_URI")
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(k, None)
    if token is not None:
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    return env


def start_node(args: list[str], env: dict, log: Path) -> str:
    """`ray start ...` in a new session (every Ray daemon of the node stays in its process group); returns
    what it prints to join the cluster, e.g. `ray start --address='10.0.0.5:6379'`."""
    ports = ["--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port())]
    proc = subprocess.run([RAY, "start", "--num-cpus", "1", "--object-store-memory", str(100 * 2**20),
                           "--disable-usage-stats", *ports, *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True, timeout=180)
    log.write_text(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def ray_processes(groups: set[int]) -> list[psutil.Process]:
    """Every live process in these process groups, and every descendant of them (Ray's workers have their own)."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if os.getpgid(p.pid) in groups:
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
    return [p for p in found.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def kill_all(procs: list[psutil.Process], groups: set[int]) -> None:
    for g in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(g, signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


def node_raylet(temp_dir: str) -> psutil.Process:
    """The raylet whose sockets live in this node's temp dir (two nodes on one machine: told apart by it)."""
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].endswith("/raylet") and any(a.startswith("--raylet_socket_name=" + temp_dir) for a in cmd):
            return p
    raise AssertionError(f"no raylet under {temp_dir}")


def node_id(raylet: psutil.Process) -> str:
    return next(a.split("=", 1)[1] for a in raylet.cmdline() if a.startswith("--node_id="))


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the driver exited ({proc.returncode}) while waiting for {what}: "
                                 f"{proc.stdout.read()[-3000:]}")
        with contextlib.suppress(Exception):  # the store may not exist yet
            if value := predicate():
                return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_node_cluster_survives_losing_a_node(tmp_path):
    token = secrets.token_hex(32)  # the cluster's token: passed by environment only, never written to a file
    env = ray_env(token)
    head_tmp, node2_tmp = tempfile.mkdtemp(dir="/tmp", prefix="aesc-h"), tempfile.mkdtemp(dir="/tmp", prefix="aesc-n")
    groups: set[int] = set()
    seen: list[psutil.Process] = []
    t_start, marks = time.time(), {}
    try:
        with mlflow_server(tmp_path) as uri:
            port = free_port()
            printed = start_node(["--head", "--port", str(port), "--temp-dir", head_tmp, "--include-dashboard",
                                  "false", "--dashboard-port", str(free_port()), "--ray-client-server-port",
                                  str(free_port())], env, tmp_path / "head.log")
            head = node_raylet(head_tmp)
            groups.add(os.getpgid(head.pid))
            # `ray start` puts the machine's address in place of 127.0.0.1: the address it prints is the one to join.
            address = re.search(r"ray start --address='([^']+)'", printed).group(1)
            assert address.endswith(f":{port}")
            start_node(["--address", address, "--temp-dir", node2_tmp, "--resources", '{"node2": 1}'],
                       env, tmp_path / "node2.log")
            node2 = node_raylet(node2_tmp)
            groups.add(os.getpgid(node2.pid))
            assert "node2,1" in " ".join(node2.cmdline())  # the custom resource tells its processes apart
            head_id, node2_id = node_id(head), node_id(node2)
            marks["nodes up"] = time.time() - t_start

            # A driver without the token is refused with one line that says what to set (while the sweep runs).
            refused = subprocess.Popen([sys.executable, "-m", "tuning", *TINY, "--address", address,
                                        "--tracking-uri", uri, "--storage-path", str(tmp_path / "refused")],
                                       cwd=tmp_path, env=ray_env(None), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, start_new_session=True)
            groups.add(refused.pid)
            shared = tmp_path / "shared"  # one machine: a local folder is storage every node shares
            cmd = [sys.executable, "-m", "tuning", *TINY, "--address", address, "--tracking-uri", uri,
                   "--storage-path", str(shared), "--cpus-per-trial", "1", "--scheduler", "fifo",
                   "--num-samples", "2", "--max-epochs", str(EPOCHS), "--max-failures", "2", "--name", "cl",
                   "--no-system-metrics"]
            t0 = time.time()
            driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, start_new_session=True)
            groups.add(driver.pid)
            client = MlflowClient(uri)

            def both_nodes_training():
                kids = children(client, the_parent(client).info.run_id)
                on = {k.data.tags.get("ray_node_id"): k for k in kids}
                if set(on) == {head_id, node2_id}:
                    steps = client.get_metric_history(on[node2_id].info.run_id, "loss")
                    return on if len(steps) >= 2 else None

            on = wait_for(both_nodes_training, 240, "a trial on each node, 2 epochs into the second", driver)
            marks["node2 killed"] = time.time() - t_start
            victim = on[node2_id].info.run_id
            # The second node dies: its raylet, its daemons and its workers, all at once.
            seen += ray_processes({os.getpgid(node2.pid)})
            kill_all([p for p in seen if p.pid != node2.pid] + [node2], {os.getpgid(node2.pid)})
            assert client.get_run(victim).info.status == "RUNNING", "the trial finished before its node was killed"
            killed_at = len(client.get_metric_history(victim, "loss"))

            out, _ = driver.communicate(timeout=600)
            seconds = time.time() - t0
            marks["sweep done"] = time.time() - t_start
            assert driver.returncode == 0, out[-4000:]
            _, err = refused.communicate(timeout=120)
            assert refused.returncode == 2, err[-3000:]
            last = err.strip().splitlines()[-1]
            assert last.startswith("error: the Ray cluster at") and "RAY_AUTH_MODE=token" in last, err[-3000:]

            parent = the_parent(client)
            kids = children(client, parent.info.run_id)
            assert parent.info.status == "FINISHED"
            assert len(kids) == 2 and len({k.data.tags["ray_trial_id"] for k in kids}) == 2  # no duplicate runs
            for kid in kids:
                assert kid.info.status == "FINISHED"
                steps = [m.step for m in client.get_metric_history(kid.info.run_id, "loss")]
                assert steps == list(range(1, EPOCHS + 1))  # every epoch once: no step logged twice
                assert [m.step for m in client.get_metric_history(kid.info.run_id, "test_elbo")] == [EPOCHS]
            moved = client.get_run(victim)
            survivor = next(k for k in kids if k.info.run_id != victim)
            assert moved.data.tags["attempts"] == "2" and survivor.data.tags["attempts"] == "1"
            assert moved.data.tags["ray_node_id"] == head_id  # retried on the head...
            assert 1 <= int(moved.data.tags["resumed_from_epoch"]) <= killed_at  # ...from its last checkpoint
            assert "resumed_from_epoch" not in survivor.data.tags
            print(f"two-node sweep with a node lost: {seconds:.0f}s; resumed from epoch "
                  f"{moved.data.tags['resumed_from_epoch']} of {killed_at} logged; "
                  + ", ".join(f"{k} at {v:.0f}s" for k, v in marks.items()))
    finally:
        seen += ray_processes(groups)
        kill_all(seen, groups)
        shutil.rmtree(head_tmp, ignore_errors=True)
        shutil.rmtree(node2_tmp, ignore_errors=True)
    assert not ray_processes(groups), "Ray processes outlived the test"
