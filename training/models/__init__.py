"""Model builders: `build_model(config, image_shape)` returns a VAE or a sparse autoencoder.

Both models expose the same small surface used by the loop, evaluation and images:
    encode_mean(x) -> code (B, latent)      the deterministic embedding
    decode(z)      -> images (B, H, W)      pixel means in [0, 1]
    noise_dim                               per-example noise the loop supplies (0 for the SAE)
    loss_terms(x, noise, batch_mean, target=None) -> {"loss": (B,), ..., "penalty": ()}
    reconstructs_clean                      True: with augmentation, the loop passes the clean
                                            images as `target` (the SAE); False: x is the target
"""
from __future__ import annotations

from training.config import TrainConfig
from training.models.sae import SparseAutoencoder
from training.models.vae import VAE

__all__ = ["VAE", "SparseAutoencoder", "build_model"]


def build_model(config: TrainConfig, image_shape: tuple[int, int]):
    """Create the model for `config`. Call under `strategy.scope()`: it creates variables."""
    if config.model == "vae":
        return VAE(image_shape=image_shape, latent_dim=config.latent_dim, hidden=config.hidden,
                   activation=config.activation, likelihood=config.resolved_recon_loss(),
                   kl_weight=config.kl_weight, iw_train_samples=config.iw_train_samples)
    return SparseAutoencoder(image_shape=image_shape, latent_dim=config.latent_dim, hidden=config.hidden,
                             activation=config.activation, recon_loss=config.resolved_recon_loss(),
                             sparsity_weight=config.sparsity_weight, sparsity_target=config.sparsity_target,
                             input_dropout=config.input_dropout,
                             consistency_weight=config.consistency_weight, contrast_weight=config.contrast_weight,
                             contrast_temperature=config.contrast_temperature)
