"""Documented commands work as written: the MLproject's `train` entry point through `mlflow run`, and
README's serving example (its shell commands and its Python) against what that run registered.

The `main` entry point (the sweep) runs through `mlflow run` in tests/test_tuning.py (`mlflow_run_sweep`).
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.mlflow_helpers import free_port, process
from tests.test_tuning import env_for

README = (ROOT / "README.md").read_text()


def readme_block(lang: str, containing: str) -> str:
    """The one fenced `lang` block of README.md that contains `containing`."""
    found = [b for b in re.findall(rf"```{lang}\n(.*?)```", README, re.S) if containing in b]
    assert len(found) == 1, f"README has {len(found)} {lang} blocks with {containing!r}"
    return found[0]


def as_user(tmp: Path) -> dict:
    """A shell with the venv active (`source .venv/bin/activate`: its bin first on PATH) and nothing
    else set: README's commands say which store they use."""
    env = env_for("unused")
    env.pop("MLFLOW_TRACKING_URI")
    return env


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    """`mlflow run . -e train` on tiny settings, registering the README's model name."""
    tmp = tmp_path_factory.mktemp("train-entry")
    uri = f"sqlite:///{tmp}/mlflow.db"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "run", str(ROOT), "-e", "train", "--env-manager", "local",
           "--experiment-name", "e2e-train", "-P", "epochs=2", "-P", "latent_dim=2", "-P", "hidden=32",
           "-P", "batch_size=64", "-P", "iw_samples=10", "-P", "register_as=vae-digits", "-P", f"out={tmp / 'out'}"]
    out = subprocess.run(cmd, cwd=tmp, env=env_for(uri), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return {"tmp": tmp, "uri": uri, "client": MlflowClient(uri)}


def test_train_entry_point_nests_the_training_under_the_project_run(train_run):
    client = train_run["client"]
    exp = client.get_experiment_by_name("e2e-train")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 2, [(r.info.run_name, r.data.tags) for r in runs]
    project, training = parents[0], next(r for r in runs if r is not parents[0])
    # The project's run holds the entry point's parameters as given; the training, its real values.
    assert project.info.status == "FINISHED" and project.data.params["epochs"] == "2"
    assert training.data.tags["mlflow.parentRunId"] == project.info.run_id
    assert training.info.status == "FINISHED" and training.info.run_name == "vae-digits"
    assert training.data.params["model"] == "vae" and training.data.params["latent_dim"] == "2"
    assert training.data.params["hidden"] == "32"
    assert [m.step for m in client.get_metric_history(training.info.run_id, "loss")] == [1, 2]
    assert client.get_model_version_by_alias("vae-digits", "champion").run_id == training.info.run_id


def test_readme_serving_example_as_written(train_run):
    tmp, port = train_run["tmp"], free_port()
    serve = readme_block("bash", "mlflow models serve")
    assert serve.startswith("source .venv/bin/activate\n")  # as_user() stands in for it
    serve = serve.removeprefix("source .venv/bin/activate\n").replace("-p 5001", f"-p {port}")
    ask = readme_block("bash", "curl").replace("127.0.0.1:5001/", f"127.0.0.1:{port}/")
    assert f"127.0.0.1:{port}/invocations" in ask and '"params": {"output": "latent"}' in ask
    with process(["bash", "-c", f"cd {shlex.quote(str(tmp))} && {serve}"], f"http://127.0.0.1:{port}/ping",
                 timeout=180, env=as_user(tmp), log=open(tmp / "serve.log", "wb")):
        out = subprocess.run(["bash", "-c", ask], cwd=tmp, env=as_user(tmp), capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        codes = np.asarray(json.loads(out.stdout)["predictions"])
        assert codes.shape == (2, 2) and np.isfinite(codes).all()  # two digits' latent codes (latent_dim=2)
        # A wrong shape: HTTP 400 whose message ends with one line saying what was expected; no stack trace.
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                     headers={"Content-Type": "application/json"},
                                     data=json.dumps({"inputs": [[0.0, 0.5, 1.0]]}).encode())
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(req, timeout=60)
        body = json.loads(bad.value.read())
        assert bad.value.code == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in body
        assert body["message"].splitlines()[-1].endswith(
            "expected images of shape (N, 8, 8) or flat rows of 64 pixels (N, 64); got shape (1, 3)")


def test_readme_python_example_as_written(train_run):
    code = readme_block("python", "mlflow.pyfunc.load_model")
    out = subprocess.run([sys.executable, "-c", code], cwd=train_run["tmp"], env=as_user(train_run["tmp"]),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["(2,", "8,", "8)", "(2,", "2)", "(4,", "8,", "8)"]


@pytest.mark.parametrize("venv_active", [False, True])
def test_messages_name_a_python_that_works_from_here(tmp_path, monkeypatch, venv_active):
    from tracking.commands import python_command

    path = (f"{Path(sys.executable).parent}:" if venv_active else "") + "/usr/bin:/bin"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", path)
    cmd = python_command("tracking best --help")
    assert cmd.startswith("python -m" if venv_active else f"{sys.executable} -m")
    out = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env={"PATH": path, "HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage: python -m tracking best" in out.stdout, out.stderr[-2000:]
