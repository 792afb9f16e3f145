"""Sparse autoencoder: a sigmoid code layer with a KL-divergence sparsity penalty (Ng, CS294A notes).

penalty = sparsity_weight * sum_j KL(rho || rho_hat_j), where rho_hat_j is unit j's mean activation
over the (global) batch. The loop passes `batch_mean`, which averages over the global batch across
replicas, so the penalty and its gradient equal the single-device ones.
"""
from __future__ import annotations

from training.backend import keras
from keras import ops

from training.config import SAEConfig
from training.models.mlp import ConfiguredModel, decoder_trunk, drop_inputs, encoder_trunk, pixels

EPS = 1e-6


def local_mean(t):
    """The batch mean on one device (the loop passes a global-batch mean instead)."""
    return ops.mean(t, axis=0)


def unit_rows(t):
    return t / (ops.norm(t, axis=-1, keepdims=True) + EPS)


def kl_sparsity(rho, rho_hat):
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)); rho_hat (latent,) -> scalar."""
    rho_hat = ops.clip(rho_hat, EPS, 1.0 - EPS)
    return ops.sum(rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat)))


@keras.saving.register_keras_serializable(package="aesweep")
class SparseAutoencoder(ConfiguredModel):
    """SparseAutoencoder(image_shape, SAEConfig(...)): its layers, reconstruction loss (resolved), sparsity
    penalty, denoising (the mask comes from the loop's noise) and the two-view terms: consistency
    (invariance of the code to augmentation) and contrast (invariance that also tells images apart)."""

    config_type = SAEConfig

    def __init__(self, image_shape, config: SAEConfig, recon_divisor: float = 1.0, **kwargs):
        super().__init__(image_shape, config, **kwargs)
        # What the summed reconstruction error is divided by: 1, or with recon_scale="variance" the training
        # images' total pixel variance (recon_divisor_for), fixed when the model is built and saved with it.
        self.recon_divisor = float(recon_divisor)
        x_in, h = encoder_trunk(self.image_shape, config.hidden, config.activation, "enc")
        code = keras.layers.Dense(self.latent_dim, activation="sigmoid", name="code")(h)
        self.encoder = keras.Model(x_in, code, name="encoder")
        z_in, h = decoder_trunk(self.latent_dim, config.hidden, config.activation, "dec")
        logits = keras.layers.Dense(pixels(self.image_shape), name="x_logits")(h)
        self.decoder = keras.Model(z_in, logits, name="decoder")
        self.built = True  # every variable exists once the sub-models do

    def get_config(self):
        return {**super().get_config(), "recon_divisor": self.recon_divisor}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        divisor = float(config.pop("recon_divisor", 1.0))  # models saved before recon_scale existed: 1
        model = super().from_config(config)
        model.recon_divisor = divisor
        return model

    @property
    def noise_dim(self):
        return pixels(self.image_shape) if self.config.input_dropout > 0 else 0

    def encode_mean(self, x):
        """(B, H, W) -> code activations (B, latent) in (0, 1)."""
        return self.encoder(x)

    def decode(self, z):
        return ops.reshape(ops.sigmoid(self.decoder(z)), (-1,) + self.image_shape)

    def call(self, x, training=False):
        return self.decode(self.encoder(x, training=training))

    # Corruptions (dropped pixels, augmentation) are undone: the target is the clean image, so the
    # code learns to ignore small shifts and rotations as it ignores missing pixels.
    reconstructs_clean = True

    def loss_terms(self, x, noise=None, batch_mean=None, training=True, target=None, other_view=None,
                   batch_gather=None):
        """Per-example reconstruction of `target` (default: x itself) from x, summed over pixels, plus
        the batch-level sparsity penalty. With `other_view` (another augmentation of the same images):
        plus consistency_weight times the relative squared distance between the two views' codes
        (view_distance) and contrast_weight times the InfoNCE loss of telling each image's other
        view apart from the rest of the global batch's (view_contrast)."""
        c = self.config
        x_in = drop_inputs(x, noise, c.input_dropout) if training and c.input_dropout > 0 else x
        terms, code = self.terms_and_code(x_in, x if target is None else target, batch_mean, training)
        if other_view is not None and c.uses_second_view:
            other = self.encoder(other_view, training=training)
            if c.consistency_weight > 0:
                terms["consistency"] = self.view_distance(code, other, batch_mean)
                terms["loss"] = terms["loss"] + c.consistency_weight * terms["consistency"]
            if c.contrast_weight > 0:
                terms["contrast"] = self.view_contrast(code, other, c.contrast_temperature, batch_mean, batch_gather)
                terms["loss"] = terms["loss"] + c.contrast_weight * terms["contrast"]
        return terms

    @staticmethod
    def view_distance(code, other, batch_mean=None):
        """|code - other|^2 per example, relative to the mean squared distance between two random codes
        of the (global) batch, 2 * sum_j Var(code_j): 0 = invariant, ~1 = views as far apart as random
        images. Relative, so shrinking every code towards one point (collapse) cannot lower it."""
        batch_mean = batch_mean or local_mean
        spread = 2.0 * ops.sum(batch_mean(ops.square(code)) - ops.square(batch_mean(code)))
        return ops.sum(ops.square(code - other), axis=-1) / (spread + EPS)

    @staticmethod
    def view_contrast(code, other, temperature, batch_mean=None, batch_gather=None):
        """InfoNCE (van den Oord et al. 2018) per example: -log softmax of the cosine similarity /
        temperature between an image's code and its other view's, against the other views of every
        image in the (global) batch (one direction; SimCLR's symmetric loss also uses same-view
        negatives). Codes are centred on the batch mean first: the sigmoid code lives in the
        positive orthant, where all raw cosines are near 1. Invariance alone is met by collapse;
        this term is met only by codes that also tell images apart.
        `batch_gather` concatenates a per-replica tensor over replicas (identity on one device)."""
        batch_mean = batch_mean or local_mean
        centre = batch_mean(code)
        a, b = unit_rows(code - centre), unit_rows(other - centre)
        others = batch_gather(b) if batch_gather is not None else b
        logits = ops.matmul(a, ops.transpose(others)) / temperature
        return ops.logsumexp(logits, axis=-1) - ops.sum(a * b, axis=-1) / temperature

    def terms_and_code(self, x_in, x, batch_mean=None, training=True):
        """loss_terms of input `x_in` reconstructing target `x`, and the code (B, latent)."""
        batch_mean = batch_mean or local_mean
        code = self.encoder(x_in, training=training)
        logits = self.decoder(code, training=training)
        x_flat = ops.reshape(x, (ops.shape(x)[0], -1))
        if self.config.recon_loss == "bce":
            recon = ops.sum(x_flat * ops.softplus(-logits) + (1.0 - x_flat) * ops.softplus(logits), axis=-1)
        else:
            recon = ops.sum(ops.square(x_flat - ops.sigmoid(logits)), axis=-1)
        if self.recon_divisor != 1.0:
            recon = recon / self.recon_divisor
        kl = kl_sparsity(self.config.sparsity_target, batch_mean(code))
        return {"loss": recon, "recon": recon, "sparsity_kl": kl, "penalty": self.config.sparsity_weight * kl}, code

    def build(self, input_shape=None):
        self.built = True


def recon_divisor_for(config: SAEConfig, x_train) -> float:
    """recon_scale="variance": the training images' total pixel variance, sum_j Var(x_j), the summed squared
    error of reconstructing every image as the mean image (label-free, from the data); "sum": 1."""
    if config.recon_scale != "variance":
        return 1.0
    flat = x_train.reshape(len(x_train), -1).astype("float64")
    return float(flat.var(axis=0).sum()) or 1.0
