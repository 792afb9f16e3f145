"""Losses against numpy on tiny cases, and exact save/load with Keras safe mode."""
import numpy as np
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import norm

from training.config import ConfigError, TrainConfig
from training.models import build_model
from training.models.sae import kl_sparsity


def relu(a):
    return np.maximum(a, 0.0)


def dense_weights(model):
    return [np.asarray(w, dtype=np.float64) for w in model.weights]


def cb_log_norm_direct(lam):
    """log C(lambda) of the continuous Bernoulli, straight from its definition; at lambda = 1/2 (0/0 there: a
    decoder whose units are all off outputs exactly 1/2) its limit, log 2."""
    t = 1.0 - 2.0 * np.asarray(lam, dtype=np.float64)
    at_half = np.abs(t) < 1e-12
    t = np.where(at_half, 0.5, t)
    return np.where(at_half, np.log(2.0), np.log(2.0 * np.arctanh(t) / t))


def numpy_vae_terms(model, x, eps):
    """Independent forward pass of a one-hidden-layer VAE from its weight arrays."""
    w1, b1, wm, bm, wv, bv = dense_weights(model.encoder)
    xf = x.reshape(len(x), -1).astype(np.float64)
    h = relu(xf @ w1 + b1)
    mu, lv = h @ wm + bm, h @ wv + bv
    z = mu + np.exp(0.5 * lv) * eps
    dec = dense_weights(model.decoder)
    hd = relu(z @ dec[0] + dec[1])
    out = hd @ dec[2] + dec[3]
    if model.likelihood in ("bce", "cbernoulli"):
        p = expit(out)
        log_px = np.sum(xf * np.log(p) + (1 - xf) * np.log(1 - p), axis=1)
        if model.likelihood == "cbernoulli":
            log_px += np.sum(cb_log_norm_direct(p), axis=1)
    else:
        mean = expit(out)
        log_var = -3.5 + 5.5 * np.tanh(hd @ dec[4] + dec[5])
        log_px = np.sum(norm.logpdf(xf, loc=mean, scale=np.exp(0.5 * log_var)), axis=1)
    kl = 0.5 * np.sum(np.exp(lv) + mu ** 2 - 1.0 - lv, axis=1)
    return log_px, kl, mu, lv


@pytest.mark.parametrize("likelihood", ["cbernoulli", "bce", "gaussian"])
def test_vae_elbo_matches_numpy(likelihood):
    cfg = TrainConfig(model="vae", latent_dim=3, hidden=(5,), kl_weight=2.0, recon_loss=likelihood)
    model = build_model(cfg, (4, 3))
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(6, 4, 3)).astype(np.float32)
    eps = rng.standard_normal((6, 3)).astype(np.float32)
    terms = {k: np.asarray(v) for k, v in model.loss_terms(x, eps).items()}
    log_px, kl, _, _ = numpy_vae_terms(model, x, eps)
    np.testing.assert_allclose(terms["recon"], -log_px, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(terms["loss"], -log_px + 2.0 * kl, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(terms["elbo"], log_px - kl, rtol=1e-4, atol=1e-3)


LAMBDAS = [0.001, 0.1, 0.3, 0.49, 0.4999, 0.5, 0.5001, 0.7, 0.95, 0.9999]


@pytest.mark.parametrize("lam", LAMBDAS)
def test_continuous_bernoulli_is_a_density_with_the_right_mean(lam):
    from training.models import cbernoulli

    logit = np.float32(np.log(lam) - np.log1p(-lam))
    x = np.linspace(0.0, 1.0, 20001, dtype=np.float32)
    density = np.exp(np.asarray(cbernoulli.log_prob(x, np.full_like(x, logit)), dtype=np.float64))
    assert np.trapezoid(density, x) == pytest.approx(1.0, abs=2e-5)  # integrates to 1 over [0, 1]
    mean = float(np.asarray(cbernoulli.mean(np.array([logit]))[0]))
    assert mean == pytest.approx(np.trapezoid(x * density, x), abs=2e-5)  # decode's mean is E[x], not lambda
    if abs(lam - 0.5) > 0.05:
        assert float(np.asarray(cbernoulli.log_norm(np.array([logit]))[0])) == pytest.approx(
            cb_log_norm_direct(np.float64(lam)), abs=1e-5)


def test_continuous_bernoulli_is_smooth_through_one_half():
    """The closed forms are 0/0 at lambda = 1/2: values and gradients stay finite and continuous there."""
    import tensorflow as tf

    from training.models import cbernoulli

    logits = tf.constant([-0.2, -0.1001, -0.0999, -1e-6, 0.0, 1e-6, 0.0999, 0.1001, 0.2, 60.0, -60.0])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        values = cbernoulli.log_norm(logits) + cbernoulli.mean(logits)
    grads = tape.gradient(values, logits).numpy()
    assert np.isfinite(values.numpy()).all() and np.isfinite(grads).all()
    log_c, mean = np.asarray(cbernoulli.log_norm(logits)), np.asarray(cbernoulli.mean(logits))
    np.testing.assert_allclose(log_c[3:6], np.log(2.0), atol=1e-6)
    np.testing.assert_allclose(mean[3:6], 0.5, atol=1e-6)
    np.testing.assert_allclose(log_c[1], log_c[2], atol=1e-5)  # either side of the series' cut-off
    np.testing.assert_allclose(mean[[1, 2, 7, 8]], 0.5 + np.array([-0.1, -0.1, 0.1, 0.2]) / 12, atol=1e-4)
    assert mean[-2] == pytest.approx(1 - 1 / 60, abs=1e-6) and mean[-1] == pytest.approx(1 / 60, abs=1e-6)


def test_iwae_log_weights_match_numpy():
    model = build_model(TrainConfig(model="vae", latent_dim=2, hidden=(4,)), (3, 3))
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(2, 3, 3)).astype(np.float32)
    noise = rng.standard_normal((5, 2, 2)).astype(np.float32)
    logw = np.asarray(model.log_weights(x, noise))
    for k in range(5):
        log_px, _, mu, lv = numpy_vae_terms(model, x, noise[k])
        z = mu + np.exp(0.5 * lv) * noise[k]
        log_pz = norm.logpdf(z).sum(1)
        log_qz = norm.logpdf(z, loc=mu, scale=np.exp(0.5 * lv)).sum(1)
        np.testing.assert_allclose(logw[k], log_px + log_pz - log_qz, rtol=1e-4, atol=1e-3)
    # The IWAE bound is at least the ELBO (Jensen), with equality at K=1.
    assert np.all(logsumexp(logw, 0) - np.log(5) >= logw.mean(0) - 1e-6)


def test_sparsity_penalty_matches_numpy():
    cfg = TrainConfig(model="sae", latent_dim=4, hidden=(6,), sparsity_weight=0.5, sparsity_target=0.1)
    model = build_model(cfg, (3, 3))
    x = np.random.default_rng(3).uniform(size=(8, 3, 3)).astype(np.float32)
    terms = {k: np.asarray(v) for k, v in model.loss_terms(x).items()}
    rho_hat = np.asarray(model.encode_mean(x), dtype=np.float64).mean(0)
    rho = 0.1
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    np.testing.assert_allclose(terms["sparsity_kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(terms["penalty"], 0.5 * kl, rtol=1e-5)
    recon = np.asarray(model(x)).reshape(8, -1) - x.reshape(8, -1)
    np.testing.assert_allclose(terms["recon"], (recon ** 2).sum(1), rtol=1e-5)
    # At the target the penalty vanishes.
    assert float(kl_sparsity(0.1, np.full(4, 0.1, np.float32))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["vae", "sae"])
def test_save_load_exact_in_safe_mode(tmp_path, kind):
    import keras

    model = build_model(TrainConfig(model=kind, latent_dim=3, hidden=(7, 5)), (4, 4))
    x = np.random.default_rng(4).uniform(size=(3, 4, 4)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    np.testing.assert_array_equal(np.asarray(loaded.encode_mean(x)), np.asarray(model.encode_mean(x)))


@pytest.mark.parametrize("changes, message", [
    ({"latent_dim": 0}, "latent_dim=0"), ({"learning_rate": 0.0}, "learning_rate=0.0"),
    ({"sparsity_target": 1.0}, "strictly between 0 and 1"), ({"model": "gan"}, "choose one of vae, sae"),
    ({"hidden": ()}, "hidden"), ({"epochs": 0}, "epochs=0"), ({"batch_size": -3}, "batch_size=-3"),
    ({"model": "sae", "recon_loss": "gaussian"}, "sparse autoencoder takes"),
])
def test_config_errors_are_clear(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_denoising_mask_comes_from_the_pipeline_noise():
    from training.models.mlp import drop_inputs

    x = np.ones((4, 10, 10), np.float32)
    noise = np.random.default_rng(5).standard_normal((4, 100)).astype(np.float32)
    out = np.asarray(drop_inputs(x, noise, 0.25))
    assert 0.2 < np.mean(out == 0) < 0.3
    np.testing.assert_allclose(out[out > 0], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(out, np.asarray(drop_inputs(x, noise, 0.25)))  # same noise, same mask


def test_importance_weighted_training_bound():
    model = build_model(TrainConfig(model="vae", latent_dim=2, hidden=(8,), iw_train_samples=4), (3, 3))
    rng = np.random.default_rng(6)
    x = rng.uniform(size=(5, 3, 3)).astype(np.float32)
    noise = rng.standard_normal((5, model.noise_dim)).astype(np.float32)
    assert model.noise_dim == 8
    terms = {k: np.asarray(v) for k, v in model.loss_terms(x, noise).items()}
    # -loss is the IWAE bound: at least the mean ELBO of its K draws (Jensen), at most log p(x) in expectation.
    assert np.all(-terms["loss"] >= terms["elbo"] - 1e-4)
    logw = np.asarray(model.log_weights(x, noise.reshape(5, 4, 2).transpose(1, 0, 2)))
    np.testing.assert_allclose(-terms["loss"], logsumexp(logw, 0) - np.log(4), rtol=1e-5, atol=1e-4)


def test_idec_targets_sharpen_soft_assignments():
    from training.finetune import soft_assign, target_distribution

    z = np.array([[0.0, 0.0], [0.1, 0.0], [3.0, 3.0]], np.float32)
    centres = np.array([[0.0, 0.0], [3.0, 3.0]], np.float32)
    q = np.asarray(soft_assign(z, centres))
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)
    p = target_distribution(q)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    assert np.all(p.max(1) >= q.max(1)) and list(q.argmax(1)) == [0, 0, 1]


@pytest.mark.parametrize("changes, message", [
    ({"lr_schedule": "step"}, "choose one of constant, cosine"), ({"warmup_epochs": 20}, r"in \[0, epochs\)"),
    ({"model": "vae", "input_dropout": 0.2}, "denoising is for the sparse"),
    ({"model": "sae", "iw_train_samples": 3}, "for the VAE"), ({"model": "vae", "cluster_epochs": 2}, "for the SAE"),
    ({"model": "sae", "input_dropout": 1.0}, r"\[0, 1\)"), ({"weight_decay": -1.0}, "weight_decay=-1.0"),
    ({"model": "sae", "iw_refine_steps": 10}, "refinement is for the VAE"), ({"iw_refine_steps": -1}, ">= 0"),
    ({"model": "sae", "consistency_weight": 1.0}, "with augmentation"),
    ({"model": "sae", "contrast_weight": 1.0}, "with augmentation"),
    ({"augment_shift": 3}, r"fraction of the image size in \[0, 0.5\)"), ({"augment_rotate": 200}, "degrees"),
    ({"model": "sae", "augment_shift": 0.1, "contrast_weight": 1.0, "contrast_temperature": 0.0}, "must be > 0"),
])
def test_recipe_option_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_presets_are_valid_and_flags_override_them():
    from training.cli import config_from_args
    from training.presets import PRESETS, preset
    import argparse

    for name in PRESETS:
        assert preset(name).model in ("vae", "sae")
    cfg = config_from_args(argparse.Namespace(preset="frey-vae", latent_dim=5, dataset="npz:/x.npz"))
    assert cfg.latent_dim == 5 and cfg.hidden == (200,) and cfg.dataset == "npz:/x.npz"
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        config_from_args(argparse.Namespace(preset="nope"))


def test_view_distance_is_relative_to_the_code_spread():
    from training.models.sae import SparseAutoencoder

    rng = np.random.default_rng(5)
    code, other = rng.uniform(size=(32, 4)), rng.uniform(size=(32, 4))
    d = np.asarray(SparseAutoencoder.view_distance(code, other))
    assert d.shape == (32,) and 0.5 < d.mean() < 1.5  # independent views: about as far apart as random codes
    # Shrinking every code towards one point (collapse) does not lower it; matching views does.
    np.testing.assert_allclose(SparseAutoencoder.view_distance(0.1 * code + 0.5, 0.1 * other + 0.5), d, rtol=1e-3)
    assert float(np.mean(SparseAutoencoder.view_distance(code, code + 0.01 * (other - code)))) < 1e-3


def test_view_contrast_rewards_codes_that_tell_images_apart():
    from training.models.sae import SparseAutoencoder

    rng = np.random.default_rng(6)
    code = rng.uniform(size=(32, 4)).astype(np.float32)
    other = code + 0.01 * rng.standard_normal((32, 4)).astype(np.float32)
    matched = np.asarray(SparseAutoencoder.view_contrast(code, other, 0.5))
    shuffled = np.asarray(SparseAutoencoder.view_contrast(code, other[rng.permutation(32)], 0.5))
    assert matched.shape == (32,) and matched.mean() < shuffled.mean() - 1.0
    # A collapsed code cannot tell its own view from the others': the loss is log(batch), whatever the scale.
    flat = np.full((32, 4), 0.3, np.float32)
    np.testing.assert_allclose(SparseAutoencoder.view_contrast(flat, flat, 0.5), np.log(32), rtol=1e-5)
    # Computed by hand: softmax cross-entropy of the centred, unit-norm cosines / temperature.
    a, b = code - code.mean(0), other - code.mean(0)
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    logits = a @ b.T / 0.5
    want = np.log(np.exp(logits).sum(1)) - np.diag(logits)
    np.testing.assert_allclose(matched, want, rtol=1e-4, atol=1e-5)
