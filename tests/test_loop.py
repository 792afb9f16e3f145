"""The training loop: determinism, resume, divergence, and data parallelism on logical CPUs."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from training.callbacks import Callback
from training.config import ConfigError, TrainConfig
from training.data import load_dataset
from training.loop import epoch_batches, train
from training.models import build_model
from tests.conftest import ROOT

SMALL = dict(dataset="digits", latent_dim=3, hidden=(32,), batch_size=64, iw_samples=20)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def losses(result):
    return [h["loss"] for h in result.history]


@pytest.mark.parametrize("kind", ["vae", "sae"])
def test_same_seed_same_metrics(digits, kind):
    cfg = TrainConfig(model=kind, epochs=2, **SMALL)
    a, b = train(cfg, dataset=digits), train(cfg, dataset=digits)
    assert a.status == "finished" and a.epochs_completed == 2
    assert losses(a) == losses(b)
    assert a.metrics == b.metrics
    assert losses(train(cfg.replace(seed=1), dataset=digits)) != losses(a)
    assert {"val_loss", "val_cluster_acc", "test_recon_mse", "cluster_acc_test", "nmi_test"} <= set(a.metrics)
    # Held-out clustering (2 epochs: both carry the costlier figures): above chance after even 2 epochs.
    assert all(0.25 < h["val_cluster_acc"] <= 1 for h in a.history)  # chance: about 0.17
    if kind == "vae":
        assert a.metrics["test_log_likelihood"] >= a.metrics["test_elbo"]
        assert {"loss", "recon", "kl", "val_elbo"} <= set(a.history[0])
    else:
        assert 0 < a.metrics["mean_activation"] < 1 and "sparsity_kl" in a.history[0]


class Interrupt(Callback):
    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, epoch, logs, context):
        if epoch == self.at:
            raise KeyboardInterrupt


class Recorder(Callback):
    def __init__(self):
        self.epochs, self.begin = [], None

    def on_train_begin(self, context):
        self.begin = context.start_epoch

    def on_epoch_end(self, epoch, logs, context):
        self.epochs.append(epoch)


@pytest.mark.parametrize("kind", ["vae", "sae"])
def test_resume_equals_uninterrupted(tmp_path, digits, kind):
    cfg = TrainConfig(model=kind, epochs=4, **SMALL)
    full = train(cfg, dataset=digits)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, dataset=digits, checkpoint_dir=str(tmp_path), callbacks=[Interrupt(at=2)])
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 2
    rec = Recorder()
    resumed = train(cfg, dataset=digits, checkpoint_dir=str(tmp_path), callbacks=[rec])
    assert rec.begin == 2 and rec.epochs == [3, 4]
    assert losses(resumed) == losses(full)
    assert resumed.metrics == full.metrics


def test_resume_refuses_other_config(tmp_path, digits):
    train(TrainConfig(model="vae", epochs=1, **SMALL), dataset=digits, checkpoint_dir=str(tmp_path),
          evaluate_at_end=False)
    with pytest.raises(ValueError, match="different config.*latent_dim"):
        train(TrainConfig(model="vae", epochs=2, **{**SMALL, "latent_dim": 4}), dataset=digits,
              checkpoint_dir=str(tmp_path))
    # A checkpoint written before an option existed resumes: the option had its default then.
    state = json.loads((tmp_path / "state.json").read_text())
    del state["config"]["contrast_weight"]
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert train(TrainConfig(model="vae", epochs=2, **SMALL), dataset=digits, checkpoint_dir=str(tmp_path),
                 evaluate_at_end=False).epochs_completed == 2


def test_divergence_is_a_status_not_a_crash(digits):
    rec = Recorder()
    r = train(TrainConfig(model="vae", epochs=5, learning_rate=1e12, **SMALL), dataset=digits, callbacks=[rec])
    assert r.diverged and r.status.startswith("diverged at epoch ")
    n = int(r.status.rsplit(" ", 1)[1])
    assert r.epochs_completed == n - 1 == len(r.history) == len(rec.epochs)
    assert r.metrics == {}


def test_stop_training_from_a_callback(digits):
    class Stop(Callback):
        def on_epoch_end(self, epoch, logs, context):
            context.stop_training = epoch == 2

    r = train(TrainConfig(model="sae", epochs=5, **SMALL), dataset=digits, callbacks=[Stop()])
    assert r.status == "stopped at epoch 2" and len(r.history) == 2 and "val_loss" in r.metrics


def test_costlier_figures_at_their_cadence_and_every_epoch_where_asked(digits):
    """K=50 estimate, active units and k-means on the sparse epochs (here every 2nd and the last); a name in
    context.every_epoch (a sweep's metric) every epoch; the losses every epoch."""
    from training.evaluate import EXTRAS

    class Ask(Callback):
        def __init__(self, every, names):
            self.every, self.names = every, names

        def on_train_begin(self, context):
            context.extras_every = self.every
            context.every_epoch.update(self.names)

    cfg = TrainConfig(model="vae", epochs=5, **SMALL)
    r = train(cfg, dataset=digits, callbacks=[Ask(2, ())], evaluate_at_end=False)
    assert [sorted(k for k in EXTRAS if k in h) for h in r.history] == [[], sorted(EXTRAS), [], sorted(EXTRAS),
                                                                         sorted(EXTRAS)]
    assert all({"val_loss", "val_elbo", "val_recon_mse"} <= set(h) for h in r.history)
    asked = train(cfg, dataset=digits, callbacks=[Ask(2, ("val_cluster_acc",))], evaluate_at_end=False)
    assert all("val_cluster_acc" in h for h in asked.history)
    assert [h["val_loss"] for h in asked.history] == [h["val_loss"] for h in r.history]
    assert asked.history[1] == {**r.history[1], "seconds": asked.history[1]["seconds"]}  # same figures


def test_checkpoints_when_due_at_the_end_and_when_asked(tmp_path, digits):
    """No checkpoint per epoch: at the last epoch, and when a callback asks (context.save_checkpoint, as Tune's
    reporter does before handing it on)."""
    seen = []

    class Look(Callback):
        def on_epoch_end(self, epoch, logs, context):
            state = tmp_path / "state.json"
            seen.append(json.loads(state.read_text())["epoch"] if state.is_file() else None)
            if epoch == 2:
                context.save_checkpoint()
                seen.append(json.loads(state.read_text())["epoch"])

    train(TrainConfig(model="vae", epochs=4, **SMALL), dataset=digits, checkpoint_dir=str(tmp_path),
          callbacks=[Look()], evaluate_at_end=False)
    assert seen == [None, None, 2, 2, 4]


def test_epoch_over_arrays_equals_epoch_over_a_dataset(digits):
    """One replica: the epoch's arrays go to the device without a tf.data pipeline; the same steps, same figures."""
    from training.backend import keras, tf
    from training.loop import epoch_columns, make_optimizer, make_train_step
    from training.runner import run_epoch

    cfg = TrainConfig(model="vae", iw_train_samples=2, **SMALL)
    columns = epoch_columns(digits.x_train, 2 * cfg.latent_dim, 64, seed=0, epoch=1)
    results = []
    for data in (epoch_batches(digits.x_train, 2 * cfg.latent_dim, 64, seed=0, epoch=1), columns):
        keras.utils.set_random_seed(0)
        model = build_model(cfg, digits.image_shape)
        optimizer = make_optimizer(cfg, len(digits.x_train) // 64)
        step = make_train_step(model, optimizer, tf.distribute.get_strategy(), 64)
        logs = run_epoch(tf.distribute.get_strategy(), step, data, global_batch=64)
        results.append((logs, [np.asarray(w) for w in model.weights]))
    (a, wa), (b, wb) = results
    assert a == b and len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def test_batch_larger_than_data_is_a_config_error(digits):
    with pytest.raises(ConfigError, match="batch_size=5000"):
        train(TrainConfig(model="vae", epochs=1, **{**SMALL, "batch_size": 5000}), dataset=digits)


DISTRIBUTED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from training.config import TrainConfig
    from training.distribute import describe
    from training.loop import train
    # Every source of randomness in play: IWAE draws (VAE); denoising masks, two augmented views and IDEC (SAE).
    extra = dict(iw_train_samples=3) if sys.argv[1] == "vae" else dict(input_dropout=0.2, cluster_epochs=1,
                                                                       augment_shift=0.125, augment_rotate=5.0,
                                                                       consistency_weight=1.0,
                                                                       contrast_weight=1.0)
    cfg = TrainConfig(model=sys.argv[1], dataset="digits", latent_dim=3, hidden=(32,), batch_size=64,
                      epochs=2, iw_samples=20, sparsity_weight=0.5, **extra)
    one = train(cfg, distribution=tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = train(cfg, distribution=tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print(json.dumps({"one": one.history, "two": two.history, "replicas": two.distribution["replicas"],
                      "strategy": two.distribution["strategy"], "one_c": one.cluster_history,
                      "two_c": two.cluster_history}))
""")


@pytest.mark.parametrize("kind", ["vae", "sae"])
def test_mirrored_two_devices_equals_one_device(kind):
    out = subprocess.run([sys.executable, "-c", DISTRIBUTED, kind], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["strategy"] == "MirroredStrategy" and res["replicas"] == 2
    # Float tolerance only: a per-replica (not global-batch) sparsity mean is off by ~1e-4 here, a
    # per-replica contrast (no all_gather) by ~log 2. The consistency ratio's spread is a difference of
    # means, the least precise figure (~5e-6).
    terms = ("loss", "recon", "val_loss") + (("kl",) if kind == "vae" else ("sparsity_kl", "contrast"))
    for h1, h2 in zip(res["one"], res["two"], strict=True):
        for key in terms:
            assert h2[key] == pytest.approx(h1[key], rel=2e-6), key
        if kind == "sae":
            assert h2["consistency"] == pytest.approx(h1["consistency"], rel=2e-5)
    assert len(res["one_c"]) == (kind == "sae")
    for c1, c2 in zip(res["one_c"], res["two_c"], strict=True):
        assert c2["loss"] == pytest.approx(c1["loss"], rel=1e-5) and c2["cluster_kl"] == pytest.approx(
            c1["cluster_kl"], rel=1e-4)


def test_clustering_fine_tuning_needs_labels(tmp_path):
    path = tmp_path / "unlabelled.npz"
    np.savez(path, x_train=np.random.default_rng(0).integers(0, 256, (80, 6, 6), dtype=np.uint8))
    with pytest.raises(ConfigError, match="no labels"):
        train(TrainConfig(model="sae", dataset=f"npz:{path}", epochs=1, cluster_epochs=2, batch_size=16))


def test_sae_reconstructs_clean_images_from_augmented_ones():

    x = np.random.default_rng(4).uniform(size=(8, 6, 6)).astype(np.float32)
    batch = next(iter(epoch_batches(x, 0, 8, seed=1, epoch=3, shift=0.3, rotate=10, clean_targets=True)))
    aug, clean = np.asarray(batch[0]), np.asarray(batch[2])
    perm = np.random.default_rng([1, 3]).permutation(8)
    np.testing.assert_array_equal(clean, x[perm])  # targets: the same images, un-augmented
    assert not np.allclose(aug, clean)
    assert len(next(iter(epoch_batches(x, 0, 8, 1, 3, clean_targets=True)))) == 2  # no augmentation: no targets
    model = build_model(TrainConfig(model="sae", latent_dim=2, hidden=(8,)), (6, 6))
    recon = np.asarray(model(aug)).reshape(8, -1)
    np.testing.assert_allclose(model.loss_terms(aug, target=clean, training=False)["recon"],
                               ((recon - clean.reshape(8, -1)) ** 2).sum(1), rtol=1e-5)
