"""Tracking against real stores: the SQLite default and a real `mlflow server` process."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.mlflow_helpers import free_port, mlflow_server, process

SECRET = "s3cr3t-Value-That-Must-Not-Leak-9876"
EPOCHS = 3


def train_cli(uri, *args, env=None, wait=True, cwd=ROOT):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1",
           **(env or {})}
    cmd = [sys.executable, "-m", "training", "--dataset", "digits", "--latent-dim", "2", "--hidden", "32",
           "--iw-samples", "10", "--batch-size", "64", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def sqlite_run(tmp_path_factory):
    """One registered training on a fresh SQLite store, with secrets in its environment."""
    tmp = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp}/mlflow.db"
    out = train_cli(uri, "--epochs", str(EPOCHS), "--image-every", "1", "--register", "--out", str(tmp / "out"),
                    env={"MLFLOW_TRACKING_PASSWORD": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET + "-aws"}, cwd=tmp)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("aesweep-vae-digits")
    runs = client.search_runs([exp.experiment_id])
    return {"tmp": tmp, "uri": uri, "client": client, "runs": runs, "stdout": out.stdout}


def test_one_finished_run_with_histories(sqlite_run):
    runs, client = sqlite_run["runs"], sqlite_run["client"]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    for key in ("loss", "kl", "val_loss", "val_elbo"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1)), key
    for key in ("test_log_likelihood", "test_elbo", "test_recon_mse", "cluster_acc_test", "nmi_test", "val_loss"):
        assert key in run.data.metrics
    assert run.data.params["latent_dim"] == "2" and run.data.params["hidden"] == "32"
    # Its full config, but only what applies to a VAE, and never '' or None.
    assert {"kl_weight", "iw_samples", "seed", "epochs"} <= set(run.data.params)
    assert not {"sparsity_weight", "cluster_weight", "contrast_temperature", "data_dir"} & set(run.data.params)
    assert all(v not in ("", "None") for v in run.data.params.values())
    assert run.data.tags["dataset_digest"] and run.data.tags["strategy"] == "DefaultStrategy"
    assert run.data.tags["replicas"] == "1" and run.data.tags["model_kind"] == "vae"
    assert any(k.startswith("system/cpu_utilization") for k in run.data.metrics), sorted(run.data.metrics)
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "digits"
    assert inputs[0].dataset.digest == run.data.tags["dataset_digest"][:32]


def test_images_for_each_step(sqlite_run):
    client, run_id = sqlite_run["client"], sqlite_run["runs"][0].info.run_id
    names = [a.path for a in client.list_artifacts(run_id, "images")]
    pattern = re.compile(r"^images/(?P<key>[a-z_]+)\+step\+(?P<step>\d+)\+.*\.png$")
    for key in ("latent_traversal", "reconstructions", "samples", "latent_manifold"):
        steps = sorted(int(m["step"]) for n in names if (m := pattern.match(n)) and m["key"] == key)
        assert steps == list(range(1, EPOCHS + 1)), (key, names[:5])
    assert [a.path for a in client.list_artifacts(run_id, "figures")] == ["figures/loss_curves.png"]


def test_registered_champion_loads_and_reconstructs(sqlite_run):
    import mlflow

    from training.data import load_dataset

    mlflow.set_tracking_uri(sqlite_run["uri"])
    mv = sqlite_run["client"].get_model_version_by_alias("vae-digits", "champion")
    assert mv.tags["source_run"] == sqlite_run["runs"][0].info.run_id
    assert mv.tags["metric"] == "val_log_likelihood"
    model = mlflow.pyfunc.load_model("models:/vae-digits@champion")
    x = load_dataset("digits").x_test[:5]
    recon = model.predict(x)
    assert recon.shape == (5, 8, 8) and np.mean((recon - x) ** 2) < np.mean((x - x.mean()) ** 2)
    assert model.predict(x, params={"output": "latent"}).shape == (5, 2)
    inner = model.unwrap_python_model()
    assert inner.decode(np.zeros((3, 2), np.float32)).shape == (3, 8, 8)
    assert inner.sample(4).shape == (4, 8, 8)
    keras_model = mlflow.keras.load_model(f"runs:/{mv.tags['source_run']}/vae-digits-keras")
    np.testing.assert_allclose(np.asarray(keras_model(x)), recon, rtol=1e-5, atol=1e-6)
    assert "registered vae-digits version 1: is now vae-digits@champion" in sqlite_run["stdout"]


def test_logged_models_are_named_and_carry_their_metrics(sqlite_run):
    client, run = sqlite_run["client"], sqlite_run["runs"][0]
    models = {m.name: m for m in client.search_logged_models([run.info.experiment_id])}
    assert set(models) == {"vae-digits", "vae-digits-keras"}
    assert run.data.tags["pyfunc_model_uri"] == f"models:/{models['vae-digits'].model_id}"
    for model in models.values():
        linked = {m.key: m for m in model.metrics}
        assert {"val_elbo", "val_loss", "test_log_likelihood", "test_recon_mse"} <= set(linked)
        assert linked["test_log_likelihood"].value == run.data.metrics["test_log_likelihood"]
        assert model.params["latent_dim"] == "2" and "sparsity_weight" not in model.params
    # Linking added no second point to the run's history at the last epoch.
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_elbo")] == list(range(1, EPOCHS + 1))


def test_alias_moves_only_on_improvement(sqlite_run):
    from tracking.registry import register

    client, run_id = sqlite_run["client"], sqlite_run["runs"][0].info.run_id
    uri = f"runs:/{run_id}/vae-digits"
    import mlflow

    mlflow.set_tracking_uri(sqlite_run["uri"])
    first = register(uri, "gate", run_id, "score", "max", 0.5, "d1", client)
    worse = register(uri, "gate", run_id, "score", "max", 0.4, "d1", client)
    better = register(uri, "gate", run_id, "score", "max", 0.7, "d1", client)
    other_data = register(uri, "gate", run_id, "score", "max", 0.9, "d2", client)
    assert [r.promoted for r in (first, worse, better, other_data)] == [True, False, True, False]
    assert str(client.get_model_version_by_alias("gate", "champion").version) == better.version
    assert client.get_model_version("gate", worse.version).tags["challenger"] == "true"
    assert "other data" in other_data.reason and "does not beat" in worse.reason


def test_champion_is_chosen_on_validation_not_test(sqlite_run):
    """Through the sweep's registration: a version with the better test figure but the worse validation
    figure stays a challenger; one with the better validation figure (and worse test) becomes champion."""
    import mlflow

    from training.config import TrainConfig
    from tuning.summary import register_best
    from tuning.sweep import SweepConfig

    client, source = sqlite_run["client"], sqlite_run["runs"][0]
    mlflow.set_tracking_uri(sqlite_run["uri"])
    sweep = SweepConfig(base=TrainConfig(model="vae"), space={}, register_as="val-gate")
    # Its own experiment: the shared store's training experiment keeps exactly its one run for the other tests.
    exp_id = client.create_experiment("val-gate")
    outcomes = []
    with mlflow.start_run(experiment_id=exp_id, run_name="parent"):
        for val, test, likelihood in ((-30.0, -31.0, "cbernoulli"), (-32.0, -25.0, "cbernoulli"),
                                      (-29.0, -40.0, "cbernoulli"), (-10.0, -10.0, "bce")):
            run = client.create_run(exp_id, tags={"pyfunc_model_uri": source.data.tags["pyfunc_model_uri"],
                                                  "dataset_digest": source.data.tags["dataset_digest"],
                                                  "recon_likelihood": likelihood})
            client.log_metric(run.info.run_id, "val_log_likelihood", val)
            client.log_metric(run.info.run_id, "test_log_likelihood", test)
            client.set_terminated(run.info.run_id)
            outcomes.append(register_best(client, {"run_id": run.info.run_id, "run_name": "t"}, sweep))
    assert [r.promoted for r in outcomes] == [True, False, True, False]
    assert "val_log_likelihood -32.0000 does not beat" in outcomes[1].reason
    assert "under the cbernoulli likelihood, this one's under bce: not comparable" in outcomes[3].reason
    champion = client.get_model_version_by_alias("val-gate", "champion")
    assert str(champion.version) == outcomes[2].version and champion.tags["metric"] == "val_log_likelihood"


def test_no_secret_anywhere_in_the_store(sqlite_run):
    tmp = sqlite_run["tmp"]
    leaks = []
    for root, _, files in os.walk(tmp):
        for f in files:
            data = open(os.path.join(root, f), "rb").read()
            if SECRET.encode() in data:
                leaks.append(os.path.join(root, f))
    assert (tmp / "mlflow.db").exists() and not leaks


def test_served_champion_answers_http(sqlite_run):
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/vae-digits@champion",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with process(cmd, f"http://127.0.0.1:{port}/ping", timeout=180,
                 env={"MLFLOW_TRACKING_URI": sqlite_run["uri"]}):
        x = np.random.default_rng(0).uniform(size=(2, 8, 8)).round(3).tolist()
        for params, shape in ((None, [2, 8, 8]), ({"output": "latent"}, [2, 2])):
            body = {"inputs": x} | ({"params": params} if params else {})
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                preds = json.loads(r.read())["predictions"]
            assert list(np.asarray(preds).shape) == shape


def test_divergence_ends_failed_with_reason(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = train_cli(uri, "--epochs", "3", "--learning-rate", "1e12", "--register", "--out", str(tmp_path / "o"))
    assert out.returncode == 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("aesweep-vae-digits").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["failure_reason"].startswith("diverged at epoch")
    assert client.search_registered_models() == []  # a failed job registers nothing


def test_sigterm_ends_killed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = train_cli(uri, "--epochs", "500", "--out", str(tmp_path / "o"), wait=False)
    lines = []
    for line in proc.stdout:  # wait until training is under way
        lines.append(line)
        if line.startswith("epoch   2/"):
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)  # keep draining: a full pipe would block the dying process
    lines.append(rest)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("aesweep-vae-digits").experiment_id])
    assert run.info.status == "KILLED", "".join(lines)


def test_unreachable_server_fails_fast_before_training(tmp_path):
    t0 = time.time()
    out = train_cli(f"http://127.0.0.1:{free_port()}", "--epochs", "1", "--out", str(tmp_path / "o"))
    assert time.time() - t0 < 40  # TensorFlow start-up included; the check itself is bounded at 10 s
    assert out.returncode == 2 and "unreachable" in out.stderr and "epoch" not in out.stdout
    assert "Traceback" not in out.stderr


def test_real_tracking_server(tmp_path):
    with mlflow_server(tmp_path) as url:
        out = train_cli(url, "--epochs", "2", "--image-every", "1", "--register-as", "served-vae",
                        "--out", str(tmp_path / "o"))
        assert out.returncode == 0, out.stderr[-3000:]
        from mlflow.tracking import MlflowClient

        client = MlflowClient(url)
        (run,) = client.search_runs([client.get_experiment_by_name("aesweep-vae-digits").experiment_id])
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
        assert any(a.path.startswith("images/latent_traversal") for a in client.list_artifacts(run.info.run_id,
                                                                                              "images"))
        assert str(client.get_model_version_by_alias("served-vae", "champion").version) == "1"
        assert (tmp_path / "artifacts").is_dir()


def test_image_failure_only_warns():
    from training.callbacks import TrainContext
    from training.config import TrainConfig
    from tracking.callback import MlflowCallback

    ctx = TrainContext(config=TrainConfig(), dataset=None, model=None, strategy_name="x", num_replicas=1,
                       num_workers=1, is_chief=True, start_epoch=0)
    with pytest.warns(UserWarning, match="could not draw images at epoch 3"):
        MlflowCallback()._log_images(ctx, 3)


def test_tracking_ui_serves_the_store_on_loopback(sqlite_run):
    port = free_port()
    cmd = [sys.executable, "-m", "tracking", "ui", "--port", str(port), "--tracking-uri", sqlite_run["uri"]]
    with process(cmd, f"http://127.0.0.1:{port}/health", timeout=120):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"http://127.0.0.1:{port}")
        assert [r.info.run_id for r in client.search_runs(
            [client.get_experiment_by_name("aesweep-vae-digits").experiment_id])] == \
            [sqlite_run["runs"][0].info.run_id]
        import psutil

        listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr.port == port and c.status == "LISTEN"}
        assert listening == {"127.0.0.1"}


def test_best_lists_runs_with_model_uris(sqlite_run):
    out = subprocess.run([sys.executable, "-m", "tracking", "best", "--tracking-uri", sqlite_run["uri"]],
                         capture_output=True, text=True, timeout=120)
    model_uri = sqlite_run["runs"][0].data.tags["pyfunc_model_uri"]
    assert out.returncode == 0 and "aesweep-vae-digits" in out.stdout and model_uri in out.stdout
    out = subprocess.run([sys.executable, "-m", "tracking", "best", "--tracking-uri", sqlite_run["uri"],
                          "--experiment", "nope"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no experiment named 'nope'" in out.stdout


def test_replayed_epochs_are_not_logged_twice(tmp_path):
    """A retried trial restarts from its last reported checkpoint and may replay epochs it had logged."""
    import shutil

    from mlflow.tracking import MlflowClient

    from training.callbacks import Callback
    from training.config import TrainConfig
    from training.data import load_dataset
    from training.loop import train
    from tracking.session import tracked_run

    class KeepEpoch1(Callback):
        def on_epoch_end(self, epoch, logs, context):
            if epoch == 1:
                context.save_checkpoint()  # as Tune's reporter does before handing a checkpoint on
                shutil.copytree(context.checkpoint_dir, tmp_path / "ckpt-epoch1")

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = TrainConfig(dataset="digits", latent_dim=2, hidden=(16,), batch_size=64, epochs=3, iw_samples=5)
    data = load_dataset("digits")
    with tracked_run(cfg, data, tracking_uri=uri, system_metrics=False, log_model=False, quiet=True) as run:
        train(cfg, callbacks=[run.callback, KeepEpoch1()], checkpoint_dir=str(tmp_path / "ckpt"), dataset=data)
    with tracked_run(cfg, data, tracking_uri=uri, run_id=run.run_id, system_metrics=False, log_model=False,
                     quiet=True) as again:
        train(cfg, callbacks=[again.callback], checkpoint_dir=str(tmp_path / "ckpt-epoch1"), dataset=data)
    client = MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(run.run_id, "loss")] == [1, 2, 3]
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_epoch_metrics_are_sent_in_batches_and_none_is_lost(tmp_path, monkeypatch):
    """Epochs' metrics are held back between sends (one request for many short epochs), but sent before any
    checkpoint is written, when training is interrupted, and at the end: each epoch keeps its own step."""
    from mlflow.tracking import MlflowClient

    import tracking.callback
    from training.callbacks import Callback
    from training.config import TrainConfig
    from training.data import load_dataset
    from training.loop import train
    from tracking.session import tracked_run

    monkeypatch.setattr(tracking.callback, "FLUSH_SECONDS", 3600.0)  # no send because time has passed
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = TrainConfig(dataset="digits", latent_dim=2, hidden=(16,), batch_size=64, epochs=8, iw_samples=5)
    data = load_dataset("digits")
    seen: dict[int, list[int]] = {}

    class Look(Callback):  # what the store holds at each epoch's end, after the tracking callback ran
        def __init__(self, stop_at=None):
            self.stop_at = stop_at

        def on_train_begin(self, context):
            context.decision_epochs.add(7)  # as Tune's reporter names a scheduler's rung

        def on_epoch_end(self, epoch, logs, context):
            seen[epoch] = [m.step for m in MlflowClient(uri).get_metric_history(run.run_id, "loss")]
            if epoch == 4:
                context.save_checkpoint()  # as Tune's reporter does before handing a checkpoint on
            if epoch == self.stop_at:
                raise KeyboardInterrupt  # Ctrl-C, or Tune stopping the trial

    quiet = dict(system_metrics=False, log_model=False, quiet=True, image_every=100)  # images only at the end
    with tracked_run(cfg, data, tracking_uri=uri, **quiet) as run:
        train(cfg, callbacks=[run.callback, Look()], checkpoint_dir=str(tmp_path / "ckpt"), dataset=data)
    assert seen[1] == [1] and seen[3] == [1]  # the first epoch at once, then held back
    assert seen[5] == [1, 2, 3, 4]  # sent before epoch 4's checkpoint was written
    assert seen[6] == [1, 2, 3, 4] and seen[7] == list(range(1, 8))  # and before a report a scheduler decides at
    client = MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(run.run_id, "loss")] == list(range(1, 9))  # all at the end
    times = [m.timestamp for m in client.get_metric_history(run.run_id, "loss")]
    assert all(a < b for a, b in zip(times, times[1:]))  # each epoch's own time, not the time of the send

    with pytest.raises(KeyboardInterrupt):
        with tracked_run(cfg, data, tracking_uri=uri, **quiet) as run:
            train(cfg, callbacks=[run.callback, Look(stop_at=6)], checkpoint_dir=str(tmp_path / "ckpt2"),
                  dataset=data)
    assert [m.step for m in client.get_metric_history(run.run_id, "loss")] == list(range(1, 7))
    assert client.get_run(run.run_id).info.status == "KILLED"


def test_an_epoch_the_loop_checkpointed_is_sent_at_its_end(tmp_path, monkeypatch):
    """The loop writes its timed checkpoint before the epoch's callbacks: that epoch's metrics go out at its end."""
    from mlflow.tracking import MlflowClient

    import tracking.callback
    import training.loop
    from training.callbacks import Callback
    from training.config import TrainConfig
    from training.data import load_dataset
    from training.loop import train
    from tracking.session import tracked_run

    monkeypatch.setattr(tracking.callback, "FLUSH_SECONDS", 3600.0)
    monkeypatch.setattr(training.loop, "CHECKPOINT_SECONDS", 0.0)  # the loop checkpoints every epoch
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = TrainConfig(dataset="digits", latent_dim=2, hidden=(16,), batch_size=64, epochs=4, iw_samples=5)
    data = load_dataset("digits")
    seen = {}

    class Look(Callback):
        def on_epoch_end(self, epoch, logs, context):
            seen[epoch] = (context.checkpoint_epoch,
                           [m.step for m in MlflowClient(uri).get_metric_history(run.run_id, "loss")])

    with tracked_run(cfg, data, tracking_uri=uri, system_metrics=False, log_model=False, quiet=True,
                     image_every=100) as run:
        train(cfg, callbacks=[run.callback, Look()], checkpoint_dir=str(tmp_path / "ckpt"), dataset=data)
    assert seen[2] == (2, [1, 2]) and seen[3] == (3, [1, 2, 3])
