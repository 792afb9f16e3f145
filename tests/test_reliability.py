"""Bad trials, bad input and planted secrets, against a real local Ray and a real SQLite MLflow store."""
from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.test_tuning import children, env_for, sweep_cli, the_parent

SECRET = f"planted-{uuid.uuid4().hex}"  # made at run time: no file of the project holds it


def listening_while_running(proc: subprocess.Popen, timeout: float) -> set[tuple[str, int, str]]:
    """(address, port, process name) of every socket that proc or a descendant listened on until it ended."""
    seen: set[tuple[str, int, str]] = set()
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the sweep did not finish in time")
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    seen |= {(c.laddr.ip, c.laddr.port, p.name()) for c in p.net_connections(kind="inet")
                             if c.status == psutil.CONN_LISTEN}
        time.sleep(0.5)
    return seen


def loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback)


def test_diverging_trial_fails_alone_ray_listens_on_loopback_and_secrets_stay_out_of_ray_logs(tmp_path):
    """learning rate 10 diverges: that trial is FAILED with one line, the healthy one wins, the sweep exits 0;
    a cloud key in the driver's environment reaches neither the store nor Ray's session logs nor the output."""
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {grid: [10.0, 1e-3]}\nlatent_dim: 4\nkl_weight: 1.0\n")  # 1e-3: a YAML string
    import tempfile

    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # Ray's socket paths must stay under 107 bytes

    with open(tmp_path / "out.txt", "w+") as stdout, open(tmp_path / "err.txt", "w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tuning", "--model", "vae", "--dataset", "digits", "--hidden", "32",
             "--batch-size", "64", "--iw-samples", "20", "--storage-path", str(tmp_path / "ray"), "--space",
             str(space), "--num-samples", "1", "--max-epochs", "6", "--scheduler", "fifo", "--name", "diverge"],
            cwd=tmp_path, stdout=stdout, stderr=stderr, text=True,
            env=env_for(f"sqlite:///{tmp_path}/mlflow.db") | {"AWS_SECRET_ACCESS_KEY": SECRET,
                                                              "RAY_TMPDIR": str(ray_tmp), "HOME": str(tmp_path)})
        sockets = listening_while_running(proc, timeout=600)
        out = subprocess.CompletedProcess(proc.args, proc.returncode, (tmp_path / "out.txt").read_text(),
                                          (tmp_path / "err.txt").read_text())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # Every port of the sweep's own Ray (GCS, raylet, workers, agents) listens on loopback only.
    assert {"gcs_server", "raylet"} <= {name for _, _, name in sockets}, sockets
    assert all(loopback(ip) for ip, _, _ in sockets), sorted(s for s in sockets if not loopback(s[0]))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = the_parent(client)
    kids = {float(k.data.params["learning_rate"]): k for k in children(client, parent.info.run_id)}
    assert set(kids) == {10.0, 1e-3}
    bad, good = kids[10.0], kids[1e-3]
    assert bad.info.status == "FAILED" and "diverged" in bad.data.tags["failure_reason"]
    assert "\n" not in bad.data.tags["failure_reason"]
    assert good.info.status == "FINISHED" and parent.info.status == "FINISHED"
    assert parent.data.tags["best_run_id"] == good.info.run_id
    # The secret: not in the console, the store, the artifacts or Ray's session logs.
    assert SECRET not in out.stdout + out.stderr
    leaks = [p for p in list(ray_tmp.rglob("*")) + list(tmp_path.glob("mlflow.db*")) + list(tmp_path.rglob("mlruns/**/*"))
             if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert list(ray_tmp.rglob("runtime_env_agent.log")), "Ray's logs were not where the test looks"
    # Ray's cluster token (written by ray.init) is readable by this user only.
    assert (tmp_path / ".ray" / "auth_token").stat().st_mode & 0o077 == 0


@pytest.mark.slow  # make test-slow (CI runs it): one of the slowest in make test
def test_every_trial_failing_fails_the_sweep_in_one_line(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: 10.0\nlatent_dim: 4\n")
    out = sweep_cli(tmp_path, "--model", "vae", "--space", str(space), "--num-samples", "2", "--max-epochs", "4",
                    "--scheduler", "fifo", "--name", "allfail", "--max-failures", "0")
    assert out.returncode != 0
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no trial of 2 trained to the end" in errors[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    parent = the_parent(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    assert parent.info.status == "FAILED" and "diverged" in parent.data.tags["failure_reason"]


@pytest.mark.parametrize("argv, message", [
    (["-m", "training", "--hidden", "abc"], "invalid hidden='abc'"),
    (["-m", "training", "--epochs", "x"], "argument --epochs"),
    (["-m", "tuning", "--max-epochs", "0"], "invalid --max-epochs 0"),
    (["-m", "tuning", "--num-samples", "0"], "invalid --num-samples 0"),
    (["-m", "training", "--tracking-uri", "http://bob:hunter2-pw@127.0.0.1:9", "--epochs", "1"], "unreachable"),
])
def test_bad_input_is_one_line(tmp_path, argv, message):
    out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=env_for(f"sqlite:///{tmp_path}/mlflow.db"))
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1 and message in lines[0], out.stderr
    assert "hunter2" not in out.stdout + out.stderr


def test_yaml_numbers_in_a_space_are_numbers(tmp_path):
    from tuning.space import load_space

    p = tmp_path / "s.yaml"
    p.write_text("learning_rate: {loguniform: [1e-4, 3e-3]}\nkl_weight: 5e-1\nlatent_dim: {choice: [4, 8]}\n")
    space = load_space(str(p), "vae")
    assert space["learning_rate"] == {"loguniform": [1e-4, 3e-3]} and space["kl_weight"] == 0.5
    assert space["latent_dim"] == {"choice": [4, 8]}


def test_tracking_server_gone_stops_training_in_one_line(tmp_path):
    """The server dies mid-training: the training stops within the bounded retries, with one line, no traceback;
    the run it could not close is closed (FAILED, with the reason) by the next command against the server."""
    import os
    import signal
    import time

    from tests.mlflow_helpers import mlflow_server

    with mlflow_server(tmp_path) as url:
        env = env_for(url) | {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
                              "XDG_STATE_HOME": str(tmp_path / "state")}
        proc = subprocess.Popen([sys.executable, "-m", "training", "--dataset", "digits", "--hidden", "16",
                                 "--epochs", "100000", "--no-system-metrics", "--checkpoint-dir", str(tmp_path / "ck")],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        client = MlflowClient(url)
        deadline = time.time() + 120
        while time.time() < deadline:  # wait for the first logged epoch
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
            if runs and client.get_metric_history(runs[0].info.run_id, "loss"):
                break
            time.sleep(1)
        else:
            proc.kill()
            pytest.fail("no epoch was logged")
    t0 = time.time()  # the server is stopped here
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        pytest.fail("training did not stop within 180 s of the server's end")
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err and lines[-1].startswith("error: the tracking store") and "--checkpoint-dir" in lines[-1]
    assert time.time() - t0 < 120  # bounded retries (1 here), not MLflow's minutes
    assert (tmp_path / "ck").is_dir()
    store = MlflowClient(f"sqlite:///{tmp_path}/server.db")
    [run] = store.search_runs([e.experiment_id for e in store.search_experiments()])
    assert run.info.status == "RUNNING"  # the server could not be told
    with mlflow_server(tmp_path, port=int(url.rsplit(":", 1)[1])):  # the server is back
        # The first command against a server just restarted may wait on its start: not the 3-s timeout of above.
        out = subprocess.run([sys.executable, "-m", "tracking", "best", "--tracking-uri", url], cwd=ROOT,
                             env=env | {"MLFLOW_HTTP_REQUEST_TIMEOUT": "60", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"closed run {run.info.run_id}" in out.stdout
        closed = client.get_run(run.info.run_id)
    assert closed.info.status == "FAILED" and "stopped answering" in closed.data.tags["failure_reason"]


def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path}/new.db"
    code = "import sys; from tracking.store import prepare; print(prepare(sys.argv[1], 'aesweep-same')[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], cwd=ROOT, env=env_for(uri), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    assert len({o[0].strip() for o in outs}) == 1  # one experiment, found by all


def test_a_store_that_is_not_sqlite_is_one_line(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("not a database\n" * 100)
    out = subprocess.run([sys.executable, "-m", "training", "--epochs", "1", "--tracking-uri", f"sqlite:///{bad}"],
                         cwd=ROOT, env=env_for(f"sqlite:///{bad}"), capture_output=True, text=True, timeout=300)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1 and "cannot open tracking store" in lines[0], out.stderr[-2000:]


def test_sigterm_then_resume_continues_one_run_without_losing_an_epoch(tmp_path):
    """SIGTERM mid-training: the run is KILLED with every checkpointed epoch logged; the same command resumes
    the same run, which ends FINISHED with each epoch exactly once; --out files are written."""
    import signal

    from tests.test_tracking import train_cli

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ("--epochs", "40", "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "o"),
            "--no-system-metrics")
    proc = train_cli(uri, *args, wait=False, env={"PYTHONPATH": str(ROOT)})
    for line in proc.stdout:  # wait until training is under way
        if line.startswith("epoch   3/"):
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    client = MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED"
    import json

    saved = json.loads((tmp_path / "ck" / "state.json").read_text())["epoch"]
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert steps == list(range(1, saved + 1))  # the epoch the signal interrupted is logged, or redone
    out = train_cli(uri, *args, env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])  # still one run
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == list(range(1, 41))
    assert (tmp_path / "o" / "metrics.json").is_file() and (tmp_path / "o" / "model.keras").is_file()
