"""Readable names for trials: `latent=16 lr=7.9e-4 beta=3.0` (child run names, figure titles).

    from tuning.labels import trial_label
    trial_label({"latent_dim": 16, "learning_rate": 7.89e-4, "kl_weight": 3.02})  # 'latent=16 lr=7.9e-4 beta=3.0'
"""
from __future__ import annotations

# The short names of TrainConfig fields in labels; a field not listed keeps its own name.
ABBREVIATIONS = {
    "latent_dim": "latent", "learning_rate": "lr", "kl_weight": "beta", "sparsity_weight": "sparsity",
    "sparsity_target": "rho", "batch_size": "batch", "activation": "act", "weight_decay": "wd",
    "warmup_epochs": "warmup", "lr_schedule": "schedule", "input_dropout": "dropout",
    "iw_train_samples": "K", "cluster_weight": "gamma", "cluster_epochs": "idec", "augment_shift": "shift",
    "augment_rotate": "rotate", "consistency_weight": "consistency", "contrast_weight": "contrast",
    "contrast_temperature": "tau", "recon_loss": "recon",
}


def short_value(value) -> str:
    """Two significant digits for floats (7.9e-4, 0.25, 3.0); others as written ('256,128' for lists)."""
    if isinstance(value, bool) or not isinstance(value, (float, list, tuple)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value != 0 and not 1e-2 <= abs(value) < 1e4:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return repr(float(f"{value:.2g}"))


def trial_label(sampled: dict) -> str:
    """'latent=16 lr=7.9e-4 beta=3.0': each key abbreviated (ABBREVIATIONS), in the order given."""
    return " ".join(f"{ABBREVIATIONS.get(k, k)}={short_value(v)}" for k, v in sampled.items())
