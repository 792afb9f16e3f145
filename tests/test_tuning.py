"""Sweeps on a real local Ray (2 CPUs) against a real SQLite MLflow store."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from training.config import ConfigError
from tuning.space import load_space, to_tune

TINY = ["--dataset", "digits", "--hidden", "32", "--batch-size", "64", "--iw-samples", "20"]


def env_for(uri: str) -> dict:
    # PYTHONPATH: subprocesses import this checkout, whatever checkout the venv was installed from.
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("RAY_ADDRESS", None)
    return env


def sweep_cli(tmp: Path, *args, wait=True):
    uri = f"sqlite:///{tmp}/mlflow.db"
    cmd = [sys.executable, "-m", "tuning", *TINY, "--storage-path", str(tmp / "ray"), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp, env=env_for(uri), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    return subprocess.run(cmd, cwd=tmp, env=env_for(uri), capture_output=True, text=True, timeout=600)


def children(client, parent_id):
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exp_ids, filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def the_parent(client):
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    parents = [r for r in client.search_runs(exp_ids) if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    return parents[0]


# ------------------------------------------------------------------ search space


def test_space_defaults_and_overrides(tmp_path):
    assert set(load_space(None, "vae")) == {"latent_dim", "learning_rate", "kl_weight"}
    assert load_space(None, "sae")["sparsity_weight"] == {"loguniform": [1e-4, 1.0]}
    f = tmp_path / "space.yaml"
    f.write_text("latent_dim: {choice: [4, 8]}\nkl_weight: 1.5\nhidden: {grid: ['64', '128,64']}\n")
    space = load_space(str(f), "vae")
    assert space["latent_dim"] == {"choice": [4, 8]} and space["kl_weight"] == 1.5
    tuned = to_tune(space)
    assert tuned["kl_weight"] == 1.5 and "grid_search" in tuned["hidden"]


def test_default_spaces_contain_every_preset():
    from training.presets import PRESETS, preset
    from tuning.space import contain

    for name in PRESETS:
        base = preset(name)
        space = load_space(None, base.model, base.recon_scale)
        assert contain(space, base) == space, name  # nothing to widen: the preset is a point of the space
    # The SAE's sparsity weights where they balance a reconstruction over the pixel variance (mnist-sae's)
    assert load_space(None, "sae", "variance")["sparsity_weight"] == {"loguniform": [2e-6, 2e-2]}


@pytest.mark.parametrize("text, message", [
    ("latent_size: {choice: [4]}", "unknown key 'latent_size'"),
    ("learning_rate: {loguniform: [0.01, 0.001]}", r"range \[0.01, 0.001\] is empty"),
    ("latent_dim: {choice: []}", "choice is empty"),
    ("kl_weight: {normal: [0, 1]}", "must be a value or one of"),
    ("epochs: 3", "unknown key 'epochs'"),
    ("[1, 2]", "expected a mapping"),
])
def test_space_errors_are_clear(tmp_path, text, message):
    f = tmp_path / "space.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_space(str(f), "vae")


def test_cli_bad_space_is_one_line(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("latent_dim: {uniform: [8, 2]}")
    out = sweep_cli(tmp_path, "--space", str(f))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "is empty" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing half-written


# ------------------------------------------------------------------ end to end through `mlflow run`


E2E_EPOCHS = 10  # 200 optimizer steps of the digits-vae recipe (batch 64): enough for a champion that reconstructs


@pytest.fixture(scope="module")
def mlflow_run_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlproject")
    uri = f"sqlite:///{tmp}/mlflow.db"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "run", str(ROOT), "--env-manager", "local",
           "--experiment-name", "e2e", "-P", "num_samples=4", "-P", f"max_epochs={E2E_EPOCHS}", "-P", "hidden=32",
           "-P", "batch_size=64", "-P", "iw_samples=20", "-P", "register_as=e2e-vae", "-P", "preset=digits-vae",
           "-P", "seed=0"]  # deterministic: unseeded sweeps draw a fresh seed (test_unseeded_sweeps_draw_a_fresh_seed)
    t0 = time.time()
    out = subprocess.run(cmd, cwd=tmp, env=env_for(uri), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return {"client": MlflowClient(uri), "uri": uri, "stdout": out.stdout + out.stderr, "seconds": time.time() - t0}


SWEPT = [k for k, v in load_space(None, "vae").items() if isinstance(v, dict)]  # the default VAE space's


def typed(text: str):
    return int(text) if text.lstrip("-").isdigit() else float(text)


def test_sweep_parent_and_children(mlflow_run_sweep):
    client = mlflow_run_sweep["client"]
    parent = the_parent(client)
    assert parent.info.status == "FINISHED" and parent.data.params["num_samples"] == "4"  # the mlflow run is the parent
    kids = children(client, parent.info.run_id)
    assert len(kids) == 4 and len({k.data.tags["ray_trial_id"] for k in kids}) == 4
    pattern = re.compile(r"^images/latent_traversal\+step\+(\d+)\+.*\.png$")
    for kid in kids:
        epochs = len(client.get_metric_history(kid.info.run_id, "val_elbo"))
        assert kid.info.status == "FINISHED", kid.info.status  # stopped early is not a failure
        if kid.data.tags.get("stopped_early") != "true":
            assert epochs == E2E_EPOCHS and {"val_log_likelihood", "test_log_likelihood",
                                    "test_log_likelihood_refined"} <= set(kid.data.metrics)
            assert "stopped_at_epoch" not in kid.data.tags
        else:  # stopped by ASHA: says so and where, and its history stops there
            assert 1 <= epochs < E2E_EPOCHS and kid.data.tags["stopped_at_epoch"] == str(epochs)
        assert [m.step for m in client.get_metric_history(kid.info.run_id, "loss")] == list(range(1, epochs + 1))
        steps = {int(m.group(1)) for a in client.list_artifacts(kid.info.run_id, "images")
                 if (m := pattern.match(a.path))}
        assert steps and max(steps) == epochs
    # The preset's own point (latent 8, learning rate 1e-3, beta 1) is one of the trials: the sweep starts there.
    preset = {k: float(v) for k, v in dict(latent_dim=8, learning_rate=1e-3, kl_weight=1.0).items()}
    assert any(all(float(k.data.params[n]) == v for n, v in preset.items()) for k in kids)
    best = parent.data.tags["best_run_id"]
    assert any(k.info.run_id == best and k.info.status == "FINISHED" for k in kids)
    names = {a.path for a in client.list_artifacts(parent.info.run_id)} | \
        {a.path for d in ("figures", "report") for a in client.list_artifacts(parent.info.run_id, d)}
    assert {"trials.json", "trials.csv", "figures/hyperparameters.png", "figures/top_traversals.png",
            "report/index.html"} <= names  # (the report: tests/test_sweep_report.py)


def test_children_hold_only_their_swept_values_and_readable_names(mlflow_run_sweep):
    from tuning.labels import trial_label

    client = mlflow_run_sweep["client"]
    parent = the_parent(client)
    kids = children(client, parent.info.run_id)
    for kid in kids:
        # Swept values only (the recipe's constants are on the parent), in the space's order, never ''.
        run = client.get_run(kid.info.run_id)
        assert list(run.data.params) == SWEPT or set(run.data.params) == set(SWEPT), run.data.params
        assert not {"", "''", "None"} & set(run.data.params.values())  # (MLflow shows a '' param as "''")
        assert kid.info.run_name == trial_label({k: typed(run.data.params[k]) for k in SWEPT})
        assert re.match(r"latent=\d+ lr=\d\.\de-\d ", kid.info.run_name) and len(kid.info.run_name) < 60
    assert len({k.info.run_name for k in kids}) == 4


def test_parent_holds_constants_once_and_ranking_metrics(mlflow_run_sweep):
    client = mlflow_run_sweep["client"]
    parent = the_parent(client)
    params, tags = parent.data.params, parent.data.tags
    assert parent.info.run_name == tags["mlflow.runName"] and parent.info.run_name.startswith("vae-digits-")
    # `mlflow run` logged the entry point's params ('' = not given); ours resolve them beside, never clash.
    import yaml

    given = set(yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]["main"]["parameters"])
    assert {"preset", "num_samples", "hidden", "seed", "repeats", "warm_start"} <= given
    ours = {k: v for k, v in params.items() if k not in given}
    assert not {"", "''", "None"} & set(ours.values()) and not any(k.startswith(("base.", "sweep.")) for k in ours)
    # A value beside the entry point's only where that one was not given.
    assert all(params[k.removesuffix(".resolved")] == "''" for k in ours if k.endswith(".resolved"))
    assert params["hidden"] == "32" and "hidden.resolved" not in params  # given and the same: once
    assert params["model.resolved"] == "vae" and params["metric.resolved"] == "val_elbo"
    assert params["iw_train_samples"] == "5" and params["epochs"] == str(E2E_EPOCHS)  # the recipe's constants, once
    assert not {"sparsity_weight", "cluster_weight", "contrast_weight", *SWEPT} & set(params)  # VAE; swept on kids
    assert tags["seed"] == params["seed"] == "0" and "seed.resolved" not in params  # given: used and logged
    assert {f"best.{k}" for k in SWEPT} <= set(params)
    metrics = set(parent.data.metrics)
    assert {"best_val_elbo", "best_test_log_likelihood", "best_test_elbo"} <= metrics
    assert not metrics & {"best_replicas", "best_workers", "best_seconds", "best_should_checkpoint", "best_epochs",
                          "best_trial_id", "best_epoch", "best_loss"}
    assert len(metrics) <= 10, sorted(metrics)


def test_trials_table_has_flat_columns(mlflow_run_sweep, tmp_path):
    client = mlflow_run_sweep["client"]
    parent = the_parent(client)
    trials = json.loads(Path(client.download_artifacts(parent.info.run_id, "trials.json", str(tmp_path))).read_text())
    columns = trials["columns"]
    assert columns[:5] == ["trial", "run_name", "status", "stopped_early", "epochs"]
    assert columns[5:8] == SWEPT and "val_elbo" in columns and "test_log_likelihood" in columns
    assert not [c for c in columns if "." in c] and not {"replicas", "workers", "should_checkpoint"} & set(columns)
    rows = [dict(zip(columns, row)) for row in trials["data"]]
    kids = {k.info.run_name: k for k in children(client, parent.info.run_id)}
    for row in rows:
        kid = kids[row["run_name"]]
        assert row["stopped_early"] == (kid.data.tags.get("stopped_early") == "true")
        assert row["status"] == "FINISHED"


def test_logged_models_are_named_with_linked_metrics(mlflow_run_sweep):
    client = mlflow_run_sweep["client"]
    parent = the_parent(client)
    best = client.get_run(parent.data.tags["best_run_id"])
    model = client.get_logged_model(best.data.tags["pyfunc_model_uri"].removeprefix("models:/"))
    assert model.name == "vae-digits" and model.source_run_id == best.info.run_id
    linked = {m.key: m.value for m in model.metrics}
    assert linked["val_elbo"] == best.data.metrics["val_elbo"]
    assert linked["test_log_likelihood"] == best.data.metrics["test_log_likelihood"]
    named = {m.name for m in client.search_logged_models([parent.info.experiment_id])}
    assert named == {"vae-digits", "vae-digits-keras"}


def test_closing_lines_name_stops_metric_model_and_ui(mlflow_run_sweep):
    out = mlflow_run_sweep["stdout"]
    client = mlflow_run_sweep["client"]
    stopped = [k.info.run_name for k in children(client, the_parent(client).info.run_id)
               if k.data.tags.get("stopped_early") == "true"]
    line = next(ln for ln in out.splitlines() if ln.startswith("[aesweep] stopped early"))
    assert all(name in line for name in stopped) and (stopped or line.endswith("none"))
    assert "[aesweep] selected by val_elbo on validation data" in out
    assert "[aesweep] registered model: models:/e2e-vae@champion" in out
    ui = next(ln for ln in out.splitlines() if ln.startswith("[aesweep] open the UI: "))
    # `mlflow run` runs the sweep in the project folder: the venv's python as seen from there
    python = Path(sys.executable)
    shown = os.path.relpath(python, ROOT) if python.is_relative_to(ROOT) else str(python)
    assert f"{shown} -m tracking ui --tracking-uri {mlflow_run_sweep['uri']}" in ui


def test_sweep_registers_its_best_trial_as_champion(mlflow_run_sweep):
    """The registered champion is the best trial's model and serves images. (Whether a sweep's champion learned
    something is tests/test_showcase.py's question, on the `make sweep` settings: this sweep is too small to.)"""
    import mlflow
    import numpy as np

    from training.data import load_dataset

    client = mlflow_run_sweep["client"]
    mv = client.get_model_version_by_alias("e2e-vae", "champion")
    assert mv.tags["source_run"] == the_parent(client).data.tags["best_run_id"]
    assert mv.tags["metric"] == "val_log_likelihood"  # chosen on validation, never on test
    mlflow.set_tracking_uri(mlflow_run_sweep["uri"])
    model = mlflow.pyfunc.load_model("models:/e2e-vae@champion")
    x = load_dataset("digits").x_test[:8]
    recon = np.asarray(model.predict(x))
    assert recon.shape == x.shape and np.isfinite(recon).all() and ((recon >= 0) & (recon <= 1)).all()
    assert "[aesweep] best trials by val_elbo" in mlflow_run_sweep["stdout"]


# ------------------------------------------------------------------ failures, workers, resume


@pytest.mark.slow  # make test-slow (CI runs it): one of the slowest in make test
def test_failing_trial_is_retried_then_failed_while_others_finish(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("sparsity_target: {grid: [0.1, 1.5]}\nlatent_dim: 4\n")  # rho = 1.5 is invalid
    # The data as a path relative to the driver's directory (trials run in others): digits as npz.
    from sklearn.datasets import load_digits

    (tmp_path / "data").mkdir()
    digits = load_digits()
    np.savez(tmp_path / "data" / "digits.npz", x_train=(digits.images * 15).astype(np.uint8), y_train=digits.target)
    out = sweep_cli(tmp_path, "--model", "sae", "--space", str(space), "--num-samples", "1", "--max-epochs", "2",
                    "--scheduler", "fifo", "--max-failures", "1", "--name", "fails", "--dataset", "npz:data/digits.npz")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    kids = {k.data.params.get("sparsity_target", "none"): k for k in children(client, the_parent(client).info.run_id)}
    assert len(kids) == 2
    good, bad = kids["0.1"], [k for p, k in kids.items() if p != "0.1"][0]
    assert good.info.status == "FINISHED"
    assert bad.info.status == "FAILED" and "sparsity_target" in bad.data.tags["failure_reason"]
    assert bad.data.tags["attempts"] == "2"  # the first try and one retry


@pytest.mark.slow  # make test-slow (CI runs it): one of the slowest in make test
def test_two_workers_per_trial_run_multiworker_mirrored(tmp_path):
    # Two workers of 0.5 logical CPU each, plus the trial's coordinator, fit this 2-CPU machine.
    # The SAE with every cross-replica term: the sparsity mean, the InfoNCE all_gather and IDEC.
    out = sweep_cli(tmp_path, "--num-samples", "1", "--max-epochs", "2", "--scheduler", "fifo",
                    "--workers-per-trial", "2", "--cpus-per-trial", "0.5", "--name", "mw", "--model", "sae",
                    "--augment-shift", "0.1", "--contrast-weight", "1", "--cluster-epochs", "1")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (kid,) = children(client, the_parent(client).info.run_id)
    assert kid.info.status == "FINISHED"
    assert kid.data.tags["strategy"] == "MultiWorkerMirroredStrategy"
    assert kid.data.tags["replicas"] == "2" and kid.data.tags["workers"] == "2"
    assert [m.step for m in client.get_metric_history(kid.info.run_id, "loss")] == [1, 2]
    assert [m.step for m in client.get_metric_history(kid.info.run_id, "contrast")] == [1, 2]
    assert "idec_cluster_kl" in kid.data.metrics and "val_cluster_acc" in kid.data.metrics
    trials = json.loads(client.download_artifacts(the_parent(client).info.run_id, "trials.json", str(tmp_path))
                        and (tmp_path / "trials.json").read_text())
    row = dict(zip(trials["columns"], trials["data"][0]))
    assert row["status"] == "FINISHED" and row["val_cluster_acc"] == pytest.approx(kid.data.metrics["val_cluster_acc"])


@pytest.mark.slow
def test_killed_driver_resumes_without_duplicate_runs(tmp_path):
    args = ["--num-samples", "3", "--max-epochs", "3", "--scheduler", "fifo", "--max-concurrent", "1",
            "--name", "resumable"]
    proc = sweep_cli(tmp_path, *args, wait=False)
    client = None  # made only once the driver has created the store: opening a fresh one races its migrations
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # wait for the first trial to finish, then kill the whole driver
            time.sleep(1)
            # The driver creates the store; touching a half-migrated SQLite file would race it.
            if not (tmp_path / "ray" / "resumable" / "aesweep-sweep.json").exists() or proc.poll() is not None:
                continue
            client = client or MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
            exp_ids = [e.experiment_id for e in client.search_experiments()]
            if client.search_runs(exp_ids, "tags.ray_trial_id != '' and attributes.status = 'FINISHED'"):
                break
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        ray_procs = psutil.Process(proc.pid).children(recursive=True)  # Ray's daemons and workers
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone dies, as when its machine's session kills it
        proc.wait()
    # Ray's processes follow their driver within seconds (Ray's kernel fate-sharing; workers see their raylet go).
    for p in ray_procs:  # what each was, for the message below
        with contextlib.suppress(psutil.Error):
            p.info = " ".join(p.cmdline())[:200]
    gone, alive = psutil.wait_procs(ray_procs, timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert not alive, [(p.pid, p.info) for p in alive]
    assert client is not None
    parent = the_parent(client)
    assert len(children(client, parent.info.run_id)) < 3
    done_before = {k.info.run_id for k in children(client, parent.info.run_id) if k.info.status == "FINISHED"}
    assert done_before
    # Resumed with other recipe flags: the sweep continues with its saved config (3 epochs, hidden 32).
    out = sweep_cli(tmp_path, *args, "--resume", "--max-epochs", "5", "--hidden", "16")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "with its saved training config" in out.stdout + out.stderr
    parent = the_parent(client)
    assert parent.info.status == "FINISHED"
    kids = children(client, parent.info.run_id)
    assert len(kids) == 3 and len({k.data.tags["ray_trial_id"] for k in kids}) == 3
    for kid in kids:
        assert kid.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(kid.info.run_id, "loss")] == [1, 2, 3]
        assert [m.step for m in client.get_metric_history(kid.info.run_id, "test_elbo")] == [3]  # evaluated once
        if kid.info.run_id in done_before:  # finished before the driver died: not run again
            assert kid.data.tags["attempts"] == "1" and "resumed_from_epoch" not in kid.data.tags


def test_resume_without_state_is_a_clear_error(tmp_path):
    out = sweep_cli(tmp_path, "--name", "never-ran", "--resume")
    assert out.returncode == 2 and "nothing to resume" in out.stderr


def test_multi_node_cluster_refuses_a_local_store(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from training.config import TrainConfig
    from tuning.space import default_space
    from tuning.sweep import SweepConfig, run

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        sweep = SweepConfig(base=TrainConfig(epochs=1), space=default_space("vae"), metric="val_elbo", mode="max",
                            address=cluster.address, storage_path=str(tmp_path / "ray"), name="c",
                            tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
        with pytest.raises(ConfigError, match="has 2 nodes, which cannot all reach sqlite:///.*--tracking-uri http"):
            run(sweep)
        assert not (tmp_path / "mlflow.db").exists()  # refused before anything was written
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_preset_point_is_tried_first_and_concurrency_still_applies():
    from tuning.__main__ import build_parser, sweep_from_args
    from tuning.sweep import own_generator, searcher

    sweep = sweep_from_args(build_parser().parse_args(["--preset", "frey-vae", "--max-concurrent", "1"]))
    assert sweep.start_points == ({"latent_dim": 20, "learning_rate": 0.002, "kl_weight": 1.0},)
    assert 20 in sweep.space["latent_dim"]["choice"]  # the space widened to contain it
    generator = searcher(sweep, 1)
    assert own_generator(sweep) and generator.max_concurrent == 1  # Tune would ignore max_concurrent_trials
    plain = sweep_from_args(build_parser().parse_args(["--max-concurrent", "1"]))
    assert plain.start_points == () and searcher(plain, 1).max_concurrent == 1


def test_clustering_recipes_are_ranked_by_held_out_clustering():
    from tuning.__main__ import build_parser, sweep_from_args

    def ranked(*flags):
        sweep = sweep_from_args(build_parser().parse_args(list(flags)))
        return sweep.metric, sweep.mode

    assert ranked("--preset", "mnist-sae") == ("val_cluster_acc", "max")
    assert ranked("--model", "sae", "--cluster-epochs", "2") == ("val_cluster_acc", "max")
    assert ranked("--model", "sae") == ("val_loss", "min")
    assert ranked("--preset", "mnist-sae", "--metric", "val_loss") == ("val_loss", "min")


def test_random_search_is_seeded():
    from ray import tune

    from tuning.__main__ import build_parser, sweep_from_args
    from tuning.space import to_tune
    from tuning.sweep import searcher

    def sampled(seed):
        sweep = sweep_from_args(build_parser().parse_args(["--seed", str(seed), "--num-samples", "3"]))
        generator = searcher(sweep)
        generator.add_configurations({"x": {"run": "aesweep_noop", "config": to_tune(sweep.space),
                                            "num_samples": 3}})
        return [generator.next_trial().config for _ in range(3)]

    tune.register_trainable("aesweep_noop", lambda config: None)
    assert sampled(0) == sampled(0) and sampled(0) != sampled(1)


def test_unseeded_sweeps_draw_a_fresh_seed():
    from tuning.__main__ import build_parser, sweep_from_args
    from tuning.sweep import choose_seed

    assert choose_seed(7) == 7 and choose_seed(0) == 0
    seeds = {sweep_from_args(build_parser().parse_args([])).base.seed for _ in range(3)}
    assert len(seeds) == 3  # a second sweep searches from another seed (2^31 to choose from)
    assert sweep_from_args(build_parser().parse_args(["--seed", ""])).base.seed not in seeds  # MLproject's ''


def test_trial_labels_are_short_and_readable():
    from tuning.labels import trial_label

    label = trial_label({"latent_dim": 16, "learning_rate": 7.89e-4, "kl_weight": 3.02})
    assert label == "latent=16 lr=7.9e-4 beta=3.0"
    assert trial_label({"sparsity_weight": 0.0123, "sparsity_target": 0.05, "hidden": "128,64"}) == \
        "sparsity=0.012 rho=0.05 hidden=128,64"
    assert trial_label({}) == ""


def test_applicable_params_by_model():
    from training.config import TrainConfig, applicable_params

    vae = applicable_params(TrainConfig(model="vae"))
    assert {"kl_weight", "iw_samples"} <= set(vae) and not {"sparsity_weight", "input_dropout", "cluster_weight",
                                                            "contrast_weight", "data_dir"} & set(vae)
    sae = applicable_params(TrainConfig(model="sae", cluster_epochs=0))
    assert "sparsity_target" in sae and not {"kl_weight", "cluster_weight", "consistency_weight"} & set(sae)
    idec = applicable_params(TrainConfig(model="sae", cluster_epochs=3, augment_shift=0.1, contrast_weight=1.0))
    assert {"cluster_weight", "contrast_weight", "contrast_temperature"} <= set(idec)


def test_reporter_checkpoints_the_first_epoch_then_by_time(tmp_path):
    from ray import tune

    from training.callbacks import TrainContext
    from training.config import TrainConfig
    from tuning.trial import TuneReporter

    def epochs(checkpoint_seconds, tmp):
        reports = []
        reporter = TuneReporter(lambda logs, checkpoint: reports.append((logs["epoch"], checkpoint)),
                                tune.Checkpoint, checkpoint_seconds=checkpoint_seconds)
        ctx = TrainContext(TrainConfig(epochs=4), None, None, "default", 1, 1, True, 0, checkpoint_dir=str(tmp))
        for epoch in range(1, 5):
            reporter.on_epoch_end(epoch, {"loss": 1.0}, ctx)
        return [(e, c is not None) for e, c in reports]

    # The last epoch waits for the final metrics (finish); epoch 1 always carries a checkpoint.
    assert epochs(0.0, tmp_path) == [(1, True), (2, True), (3, True)]
    assert epochs(3600.0, tmp_path) == [(1, True), (2, False), (3, False)]
