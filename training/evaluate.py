"""Evaluation with the metric names that tracking and tuning log and compare.

    both models      test_recon_mse, val_loss
    labelled data    val_cluster_acc (k-means on the validation images' codes; during training at the cadence
                     of the costlier figures (Validation, training.loop), every epoch where a sweep ranks by it:
                     clustering recipes; labels score, never train)
    VAE              test_elbo, test_log_likelihood (importance-weighted estimate of log p(x) with the
                     encoder's proposal q(z|x), K = iw_samples; nats per image: the published estimator),
                     val_log_likelihood (the same estimate on the validation images: what selects), and
                     with iw_refine_steps > 0 test_log_likelihood_refined (refined proposals, beside it);
                     active_units on the test images
    VAE, by epoch    val_log_likelihood_k50 (the same estimate on the validation images with a cheap
                     K=VAL_IW_SAMPLES, for the curves; the final val_log_likelihood uses K = iw_samples), val_active_units (Burda et al. 2016: latent
                     dimensions u with Var_x(E_q(u|x)[u]) > ACTIVE_THRESHOLD; a collapsed dimension's
                     posterior mean is the same for every image)
    labelled data    cluster_acc_train, cluster_acc_test, nmi_test, ari_test (k-means on the code)
    SAE              mean_activation
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import threadpool_limits

VAL_NOISE_STREAM = 1_000_003  # a fixed RNG stream for validation noise, apart from the training streams
TEST_NOISE_STREAM = 2_000_003
REFINE_NOISE_STREAM = 4_000_037
VAL_IW_STREAM = 3_000_017
REFINE_SAMPLES, REFINE_LEARNING_RATE = 8, 0.01
ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016
VAL_IW_SAMPLES = 50  # K of the per-epoch estimate: cheap on validation sets of a few thousand images
# Its own name: the final `val_log_likelihood` (what selects) uses K = iw_samples, as the test figure does.
EPOCH_LOG_LIKELIHOOD = f"val_log_likelihood_k{VAL_IW_SAMPLES}"


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy under the best one-to-one mapping of clusters to labels (Hungarian algorithm)."""
    y_true, y_pred = np.asarray(y_true).astype(np.int64), np.asarray(y_pred).astype(np.int64)
    n = int(max(y_true.max(), y_pred.max())) + 1
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def embed(model, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    return np.concatenate([np.asarray(model.encode_mean(x[i:i + batch])) for i in range(0, len(x), batch)])


def reconstruct(model, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i:i + batch])) for i in range(0, len(x), batch)])


def unit_activity(model, x: np.ndarray) -> np.ndarray:
    """(latent,) variance over the images `x` of each dimension's posterior mean E_q(u|x)[u] (the code for the
    SAE): Burda et al.'s activity statistic, what counts active units and orders traversal rows. Near 0: the
    dimension ignores its input (a collapsed unit)."""
    return embed(model, x).astype(np.float64).var(axis=0)


def active_units(activity: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> int:
    """How many dimensions are active (Burda et al. 2016): activity (see unit_activity) above `threshold`."""
    return int(np.sum(np.asarray(activity) > threshold))


def has_posterior(model) -> bool:
    """Whether the model's code is the mean of a posterior q(z|x) (the VAE), where activity means something."""
    return hasattr(model, "log_weights")


# The per-epoch validation figures that cost more than the losses (an importance-weighted estimate with K samples
# per image, k-means): a training computes them at a bounded cadence, and every epoch only where asked
# (training.loop); the final evaluation always has them.
EXTRAS = (EPOCH_LOG_LIKELIHOOD, "val_active_units", "val_cluster_acc")


class Validation:
    """The validation figures of one training, epoch after epoch, on the same images and the same noise draws:

        validate = Validation(model, x_val, seed, y_val, n_clusters, compiled=True)  # once per training
        validate()                         # every figure (validation_metrics's)
        validate(extras=())                # the losses and val_recon_mse only: the cheap ones
        validate(extras={"val_cluster_acc"})

    The losses use a fixed noise draw, so epochs compare like for like; with labels, `val_cluster_acc`: k-means
    (n_clusters) on the held-out images' codes, scored against their labels. VAE: `val_log_likelihood_k50` (IWAE
    estimate, K=VAL_IW_SAMPLES, its own fixed draw) and `val_active_units`.

    The noise is drawn once; with `compiled`, the model's work is one `tf.function` call per epoch (traced once)
    instead of a string of eager ops: ~1.5 ms instead of ~20 ms for the default VAE's
    losses on digits. The batches are those of the eager functions (loss terms on the whole set, reconstructions and
    codes in batches of 2048, importance samples in chunks of the budget) and the reductions the same numpy ones:
    the figures are the eager ones to float32 rounding (the graph fuses ops, as the training step's does; k-means
    on codes a last bit apart may still settle elsewhere). The final evaluation stays eager."""

    def __init__(self, model, x_val: np.ndarray, seed: int, y_val: np.ndarray | None = None, n_clusters: int = 0,
                 compiled: bool = False, budget: int = 200_000, batch: int = 2048):
        from training.backend import tf

        self.model, self.x, self.seed, self.y, self.n_clusters = model, x_val, seed, y_val, n_clusters
        self.posterior = has_posterior(model)
        self.clusters = y_val is not None and 1 < n_clusters <= len(x_val)
        rng = np.random.default_rng([seed, VAL_NOISE_STREAM])
        noise = rng.standard_normal((len(x_val), model.noise_dim)).astype(np.float32)
        self.inputs = [tf.constant(x_val), tf.constant(noise)]
        self.iw_chunks: list[tuple[int, int]] = []
        if self.posterior:  # importance_weighted's chunks and draws, in its order
            rng = np.random.default_rng([seed, VAL_IW_STREAM])
            chunk = max(1, budget // VAL_IW_SAMPLES)
            self.iw_chunks = [(i, min(i + chunk, len(x_val))) for i in range(0, len(x_val), chunk)]
            self.inputs += [tf.constant(rng.standard_normal((VAL_IW_SAMPLES, b - a, model.latent_dim))
                                        .astype(np.float32)) for a, b in self.iw_chunks]
        self.batches = [(i, min(i + batch, len(x_val))) for i in range(0, len(x_val), batch)]
        # No autograph: the branches are tf.cond already, and converting the model's code cost ~half the trace.
        self._pass = tf.function(self._model_pass, autograph=False) if compiled else self._model_pass
        self.tf, self.flags = tf, {False: tf.constant(False), True: tf.constant(True)}

    def _model_pass(self, x, noise, codes, log_weights, *iw_noise):
        """The model's share: loss terms, reconstructions, codes and importance log-weights per chunk; the last two
        only where `codes` / `log_weights` (bool tensors) ask, else empty. Branches (tf.cond), not Python ifs:
        one trace serves every epoch, with or without the costlier figures."""
        tf, m = self.tf, self.model
        out = {"terms": m.loss_terms(x, noise, training=False),
               "recon": tf.concat([m(x[a:b]) for a, b in self.batches], axis=0)}
        n = x.shape[0]
        out["codes"] = tf.cond(codes, lambda: tf.concat([m.encode_mean(x[a:b]) for a, b in self.batches], axis=0),
                               lambda: tf.zeros((n, 0)))
        out["log_weights"] = [
            tf.cond(log_weights, lambda a=a, b=b, w=w: m.log_weights(x[a:b], w),
                    lambda a=a, b=b: tf.zeros((0, b - a)))
            for (a, b), w in zip(self.iw_chunks, iw_noise)]
        return out

    def __call__(self, extras=EXTRAS) -> dict[str, float]:
        """The losses and val_recon_mse, and of the EXTRAS those named in `extras` that apply to the model and data."""
        want = {k for k in extras if k in EXTRAS}
        likelihood = self.posterior and EPOCH_LOG_LIKELIHOOD in want
        active = self.posterior and "val_active_units" in want
        clusters = self.clusters and "val_cluster_acc" in want
        out = self._pass(*self.inputs[:2], self.flags[active or clusters], self.flags[likelihood], *self.inputs[2:])
        terms = out["terms"]
        val = {f"val_{k}": float(np.mean(np.asarray(v))) for k, v in terms.items() if k != "penalty"}
        val["val_loss"] = val["val_loss"] + float(np.asarray(terms["penalty"]))
        val["val_recon_mse"] = float(np.mean((np.asarray(out["recon"]) - self.x) ** 2))
        if likelihood:
            ll = [logsumexp(np.asarray(w, dtype=np.float64), axis=0) - math.log(VAL_IW_SAMPLES)
                  for w in out["log_weights"]]
            val[EPOCH_LOG_LIKELIHOOD] = float(np.concatenate(ll).mean())
        z = np.asarray(out["codes"])
        if active:
            val["val_active_units"] = float(active_units(z.astype(np.float64).var(axis=0)))
        if clusters and np.isfinite(z).all():  # a diverged model has no clustering to score (the loop then stops)
            # One thread: on a validation set of a few hundred codes, OpenMP's start-up costs ~10x the work.
            with threadpool_limits(1):
                km = KMeans(n_clusters=self.n_clusters, n_init=10, random_state=self.seed).fit(z)
            val["val_cluster_acc"] = cluster_accuracy(self.y, km.labels_)
        return val


def validation_metrics(model, x_val: np.ndarray, seed: int, y_val: np.ndarray | None = None,
                       n_clusters: int = 0) -> dict[str, float]:
    """Every validation figure of `model` once (see Validation), eagerly: no tracing for a single call."""
    return Validation(model, x_val, seed, y_val, n_clusters)()


def refine_proposal(model, x: np.ndarray, steps: int, seed: int, samples: int = REFINE_SAMPLES,
                    chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Gaussian proposals (mean, log_var), each (N, latent): the encoder's q(z|x), then
    `steps` Adam steps on each image's own K=`samples` importance-weighted bound.

    The model is untouched; only the proposal of the importance sampler improves (closing the
    encoder's amortisation gap), and an importance-weighted estimate stays a stochastic lower bound
    of log p(x) whatever the proposal. Noise comes from its own stream, apart from the estimate's.
    """
    from training.backend import keras, tf

    rng = np.random.default_rng([seed, REFINE_NOISE_STREAM])
    means, log_vars = [], []
    for i in range(0, len(x), chunk):
        xb = tf.constant(x[i:i + chunk])
        m0, v0 = model.encode(xb)
        mean, log_var = tf.Variable(m0), tf.Variable(v0)
        optimizer = keras.optimizers.Adam(REFINE_LEARNING_RATE)

        @tf.function
        def step(noise):
            with tf.GradientTape() as tape:
                logw = model.log_weights(xb, noise, proposal=(mean, log_var))
                loss = -tf.reduce_sum(tf.reduce_logsumexp(logw, axis=0))
            optimizer.apply_gradients(zip(tape.gradient(loss, [mean, log_var]), [mean, log_var]))

        for _ in range(steps):
            step(rng.standard_normal((samples, xb.shape[0], model.latent_dim)).astype(np.float32))
        means.append(mean.numpy())
        log_vars.append(log_var.numpy())
    return np.concatenate(means), np.concatenate(log_vars)


def importance_weighted(model, x: np.ndarray, k: int, seed: int, budget: int = 200_000,
                        proposal: tuple[np.ndarray, np.ndarray] | None = None,
                        stream: int = TEST_NOISE_STREAM) -> tuple[float, float]:
    """(mean ELBO, mean IWAE log-likelihood estimate) in nats per image, with K=k samples from the
    encoder's q(z|x), or from `proposal` = (mean, log_var) per image (see refine_proposal)."""
    rng = np.random.default_rng([seed, stream])
    chunk = max(1, budget // k)
    elbo, ll = [], []
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        noise = rng.standard_normal((k, len(xb), model.latent_dim)).astype(np.float32)
        q = None if proposal is None else (proposal[0][i:i + chunk], proposal[1][i:i + chunk])
        logw = np.asarray(model.log_weights(xb, noise, proposal=q), dtype=np.float64)  # (K, B)
        elbo.append(logw.mean(axis=0))
        ll.append(logsumexp(logw, axis=0) - math.log(k))
    return float(np.concatenate(elbo).mean()), float(np.concatenate(ll).mean())


def clustering(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray,
               seed: int, n_init: int = 10) -> dict[str, float]:
    """k-means (k = number of classes) fitted on train codes and applied to test codes."""
    k = int(len(np.unique(np.concatenate([y_train, y_test]))))
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z_train)
    pred_test = km.predict(z_test)
    return {"cluster_acc_train": cluster_accuracy(y_train, km.labels_),
            "cluster_acc_test": cluster_accuracy(y_test, pred_test),
            "nmi_test": float(normalized_mutual_info_score(y_test, pred_test)),
            "ari_test": float(adjusted_rand_score(y_test, pred_test))}


def evaluate(model, data, config) -> dict[str, float]:
    """Final metrics of a trained model on `data` (a training.data.Dataset)."""
    val = validation_metrics(model, data.x_val, config.seed, data.y_val, data.num_classes)
    metrics = {**{k: val[k] for k in ("val_loss", "val_recon_mse", "val_cluster_acc") if k in val},
               "test_recon_mse": float(np.mean((reconstruct(model, data.x_test) - data.x_test) ** 2))}
    if config.model == "vae":
        metrics["active_units"] = float(active_units(unit_activity(model, data.x_test)))
        # The headline is the published estimator: the encoder's proposal, K = iw_samples. Selection
        # uses the same estimate on the validation images; test figures are never compared to choose.
        metrics["val_log_likelihood"] = importance_weighted(model, data.x_val, config.iw_samples, config.seed,
                                                            stream=VAL_IW_STREAM)[1]
        metrics["test_elbo"], metrics["test_log_likelihood"] = importance_weighted(
            model, data.x_test, config.iw_samples, config.seed)
        if config.iw_refine_steps:
            # A tighter estimate of the same model's log p(x), reported beside the headline, never for it.
            proposal = refine_proposal(model, data.x_test, config.iw_refine_steps, config.seed)
            metrics["test_log_likelihood_refined"] = importance_weighted(model, data.x_test, config.iw_samples,
                                                                         config.seed, proposal=proposal)[1]
    if data.labelled:
        metrics.update(clustering(embed(model, data.x_train), data.y_train, embed(model, data.x_test),
                                  data.y_test, config.seed))
    if config.model == "sae":
        metrics["mean_activation"] = float(embed(model, data.x_test).mean())
    return metrics
