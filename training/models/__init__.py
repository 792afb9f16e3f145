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
from training.models.sae import SparseAutoencoder, recon_divisor_for
from training.models.vae import VAE

__all__ = ["VAE", "SparseAutoencoder", "build_model"]


def build_model(config: TrainConfig, image_shape: tuple[int, int], x_train=None):
    """Create the model for `config`, from its own part (config.model_config()). Call under
    `strategy.scope()`: it creates variables. `x_train`: the training images, for what the model takes
    from its data (the SAE's reconstruction scale with recon_scale="variance")."""
    part = config.model_config()
    if config.model == "sae":
        if part.recon_scale != "sum" and x_train is None:
            raise ValueError(f"recon_scale={part.recon_scale!r} needs the training images (x_train)")
        return SparseAutoencoder(image_shape, part, recon_divisor_for(part, x_train) if x_train is not None else 1.0)
    return VAE(image_shape, part)
