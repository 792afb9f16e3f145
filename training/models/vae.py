"""Variational autoencoder (Kingma & Welling 2013) with a continuous Bernoulli, Bernoulli or Gaussian decoder.

Randomness is not drawn inside the model: the loop supplies standard-normal noise per
example (seeded by seed and epoch), so results do not depend on how a batch is split
across replicas, and a resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import math

from training.backend import keras
from keras import ops

from training.models import cbernoulli
from training.config import VAEConfig
from training.models.mlp import ConfiguredModel, decoder_trunk, encoder_trunk, pixels

LOG_2PI = math.log(2.0 * math.pi)
# The Gaussian decoder's log-variance is bounded to [LOGVAR_MID - LOGVAR_HALF, LOGVAR_MID + LOGVAR_HALF]:
# unbounded, it collapses onto near-constant pixels and the likelihood runs away.
LOGVAR_MID, LOGVAR_HALF = -3.5, 5.5


@keras.saving.register_keras_serializable(package="aesweep")
class VAE(ConfiguredModel):
    """VAE(image_shape, VAEConfig(...)): its layers, likelihood (recon_loss, resolved), beta and K."""

    config_type = VAEConfig
    renamed = {"likelihood": "recon_loss"}

    def __init__(self, image_shape, config: VAEConfig, **kwargs):
        super().__init__(image_shape, config, **kwargs)
        likelihood = self.likelihood
        d = pixels(self.image_shape)

        x_in, h = encoder_trunk(self.image_shape, config.hidden, config.activation, "enc")
        z_mean = keras.layers.Dense(self.latent_dim, name="z_mean")(h)
        z_log_var = keras.layers.Dense(self.latent_dim, name="z_log_var")(h)
        self.encoder = keras.Model(x_in, [z_mean, z_log_var], name="encoder")

        z_in, h = decoder_trunk(self.latent_dim, config.hidden, config.activation, "dec")
        outputs = [keras.layers.Dense(d, name="x_param")(h)]
        if likelihood == "gaussian":
            outputs.append(keras.layers.Dense(d, name="x_log_var")(h))
        self.decoder = keras.Model(z_in, outputs, name="decoder")
        self.built = True  # every variable exists once the sub-models do

    # "cbernoulli" (continuous Bernoulli: a density on [0, 1]), "bce" (Bernoulli: a density only for
    # binary pixels), "gaussian" (learned variance) or "mse" (unit variance)
    likelihood = property(lambda self: self.config.recon_loss)
    kl_weight = property(lambda self: float(self.config.kl_weight))
    iw_train_samples = property(lambda self: int(self.config.iw_train_samples))  # K > 1: the IWAE bound

    # --- the surface shared with the sparse autoencoder
    # Per example: K latent draws (K = iw_train_samples).
    noise_dim = property(lambda self: self.iw_train_samples * self.latent_dim)

    def encode(self, x, training=False):
        """(B, H, W) -> z_mean, z_log_var, each (B, latent)."""
        return self.encoder(x, training=training)

    def encode_mean(self, x):
        return self.encode(x)[0]

    def decode_params(self, z, training=False):
        """(B, latent) -> x_param (B, D) [, x_log_var (B, D)]: logits for "bce" and "cbernoulli", means otherwise."""
        out = self.decoder(z, training=training)
        if self.likelihood == "gaussian":
            param, raw = out
            return ops.sigmoid(param), LOGVAR_MID + LOGVAR_HALF * ops.tanh(raw)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return (ops.sigmoid(out) if self.likelihood == "mse" else out), None

    def decode(self, z):
        """(B, latent) -> pixel means (B, H, W) in [0, 1] (the continuous Bernoulli's mean, not its lambda)."""
        param, _ = self.decode_params(z)
        mean = {"bce": ops.sigmoid, "cbernoulli": cbernoulli.mean}.get(self.likelihood, lambda p: p)(param)
        return ops.reshape(mean, (-1,) + self.image_shape)

    def call(self, x, training=False):
        """Reconstruction from the posterior mean: (B, H, W) -> (B, H, W)."""
        return self.decode(self.encode(x, training=training)[0])

    # --- likelihood terms
    def log_px_z(self, x_flat, z, training=False):
        """log p(x|z) per example, (B, D) x (B, latent) -> (B,)."""
        param, log_var = self.decode_params(z, training=training)
        if self.likelihood == "cbernoulli":
            return ops.sum(cbernoulli.log_prob(x_flat, param), axis=-1)
        if self.likelihood == "bce":
            # log Bernoulli(x | sigmoid(logits)) = -softplus(-l) * x - softplus(l) * (1 - x)
            return -ops.sum(x_flat * ops.softplus(-param) + (1.0 - x_flat) * ops.softplus(param), axis=-1)
        if log_var is None:  # unit-variance Gaussian
            log_var = ops.zeros_like(param)
        return -0.5 * ops.sum(LOG_2PI + log_var + ops.square(x_flat - param) / ops.exp(log_var), axis=-1)

    # Augmented images are samples of the data it models: it reconstructs what it is given.
    reconstructs_clean = False

    def loss_terms(self, x, noise, batch_mean=None, training=True, target=None, other_view=None,
                   batch_gather=None):
        """Negative ELBO per example: loss = -log p(x|z) + beta * KL(q(z|x) || N(0, I)).

        noise: (B, noise_dim) standard normal draws: the reparameterisation z = mu + sigma * eps
        (K draws when iw_train_samples = K > 1, whose loss is then the negative importance-weighted
        bound -log mean_k w_k, with beta weighting log p(z) - log q(z|x)).
        """
        k = self.iw_train_samples
        z_mean, z_log_var = self.encode(x, training=training)
        x_flat = ops.reshape(x, (ops.shape(x)[0], -1))
        kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
        if k == 1:
            z = z_mean + ops.exp(0.5 * z_log_var) * noise
            recon = -self.log_px_z(x_flat, z, training=training)
            return {"loss": recon + self.kl_weight * kl, "recon": recon, "kl": kl,
                    "elbo": -(recon + kl), "penalty": ops.zeros(())}
        eps = ops.transpose(ops.reshape(noise, (-1, k, self.latent_dim)), (1, 0, 2))  # (K, B, latent)
        log_px, log_pz, log_qz = self._log_terms(x_flat, z_mean, z_log_var, eps, training)
        log_w = log_px + self.kl_weight * (log_pz - log_qz)
        bound = ops.logsumexp(log_w, axis=0) - math.log(k)
        recon = -ops.mean(log_px, axis=0)
        return {"loss": -bound, "recon": recon, "kl": kl, "elbo": ops.mean(log_px + log_pz - log_qz, axis=0),
                "iw_bound": bound, "penalty": ops.zeros(())}

    def _log_terms(self, x_flat, z_mean, z_log_var, eps, training=False):
        """log p(x|z_k), log p(z_k), log q(z_k|x), each (K, B), for draws eps (K, B, latent)."""
        k, b = ops.shape(eps)[0], ops.shape(eps)[1]
        z = z_mean[None] + ops.exp(0.5 * z_log_var)[None] * eps  # (K, B, latent)
        x_rep = ops.reshape(ops.broadcast_to(x_flat[None], (k, b, x_flat.shape[-1])), (k * b, -1))
        log_px = ops.reshape(self.log_px_z(x_rep, ops.reshape(z, (k * b, self.latent_dim)), training=training),
                             (k, b))
        log_pz = -0.5 * ops.sum(LOG_2PI + ops.square(z), axis=-1)
        log_qz = -0.5 * ops.sum(LOG_2PI + z_log_var[None] + ops.square(eps), axis=-1)
        return log_px, log_pz, log_qz

    def log_weights(self, x, noise, proposal=None):
        """Importance log-weights log p(x,z_k) - log q(z_k|x) for K samples.

        x: (B, H, W); noise: (K, B, latent) -> (K, B). logsumexp over K minus log K is the IWAE bound.
        proposal: (mean, log_var), each (B, latent), to sample from instead of the encoder's q(z|x).
        """
        z_mean, z_log_var = self.encode(x) if proposal is None else proposal
        log_px, log_pz, log_qz = self._log_terms(ops.reshape(x, (ops.shape(x)[0], -1)), z_mean, z_log_var, noise)
        return log_px + log_pz - log_qz

    def build(self, input_shape=None):  # sub-models are built at construction
        self.built = True
