"""Command-line flags <-> TrainConfig, shared by `python -m training` and `python -m tuning`.

Each TrainConfig field has exactly one flag (underscores become dashes); MLproject's
`train` entry point declares the same names, and a test keeps them in lockstep.
"""
from __future__ import annotations

import argparse
from dataclasses import fields

from training.config import MODELS, RECON_LOSSES, TrainConfig, parse_hidden

HELP = {
    "model": "vae (variational autoencoder) or sae (sparse autoencoder)",
    "dataset": "digits (bundled, offline), mnist, mnist-test, frey, or npz:PATH for your own arrays",
    "data_dir": "folder searched for dataset files before any download; else $AESWEEP_DATA_DIR",
    "latent_dim": "size of the latent code",
    "hidden": "encoder layer widths, comma-separated; the decoder mirrors them",
    "activation": "hidden-layer activation",
    "kl_weight": "VAE: beta, the weight of the KL term",
    "sparsity_weight": "SAE: weight of the KL sparsity penalty",
    "sparsity_target": "SAE: rho, target mean activation of each code unit, in (0, 1)",
    "recon_loss": "reconstruction likelihood; auto = gaussian for frey, bce for other VAE data, mse for the SAE",
    "learning_rate": "Adam learning rate",
    "batch_size": "GLOBAL batch size, split across replicas",
    "epochs": "number of epochs",
    "seed": "random seed (initialisation, shuffling, noise)",
    "iw_samples": "importance samples K for the VAE's test log-likelihood (IWAE estimate)",
    "traversal_steps": "points along each latent axis in traversal images",
}
CHOICES = {"model": MODELS, "recon_loss": RECON_LOSSES}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field; defaults stay None so presets can fill the gaps."""
    defaults = TrainConfig()
    group = parser.add_argument_group("training configuration")
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if f.name == "hidden":
            kind, default = parse_hidden, ",".join(map(str, default))
        shown = "" if default is None else f" (default: {default})"
        group.add_argument(flag(f.name), type=kind, default=None, choices=CHOICES.get(f.name),
                           metavar=None if f.name in CHOICES else f.name.upper(),
                           help=HELP[f.name] + shown)


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> TrainConfig:
    """Flags given on the command line override `base` (a preset), which overrides the defaults."""
    values = dict(base or {})
    for f in fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return TrainConfig(**values)
