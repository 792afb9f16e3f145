"""Command-line flags <-> TrainConfig, shared by `python -m training` and `python -m tuning`.

Each TrainConfig field has exactly one flag (underscores become dashes); MLproject's
`train` entry point declares the same names, and a test keeps them in lockstep.
"""
from __future__ import annotations

import argparse
from dataclasses import fields

from training.config import LR_SCHEDULES, MODELS, RECON_LOSSES, ConfigError, TrainConfig, parse_hidden

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
    "recon_loss": "reconstruction likelihood; auto = gaussian for frey, cbernoulli (continuous Bernoulli, a density "
                  "on [0, 1]) for other VAE data, mse for the SAE; bce = Bernoulli (a density for binary pixels)",
    "learning_rate": "Adam learning rate",
    "batch_size": "GLOBAL batch size, split across replicas",
    "epochs": "number of epochs",
    "seed": "random seed (initialisation, shuffling, noise)",
    "lr_schedule": "learning-rate schedule: constant, or cosine decay to 0 over the epochs",
    "warmup_epochs": "linear learning-rate warm-up from 0 over this many first epochs; 0 = none",
    "weight_decay": "decoupled (AdamW) weight decay; 0 = plain Adam",
    "input_dropout": "SAE: denoising: fraction of input pixels zeroed in training, in [0, 1)",
    "iw_train_samples": "VAE: importance samples K in the training objective (1 = ELBO, >1 = IWAE bound)",
    "cluster_epochs": "SAE: epochs of IDEC clustering fine-tuning of the encoder before k-means; 0 = off",
    "cluster_weight": "SAE: gamma, weight of the IDEC clustering loss",
    "augment_shift": "augment training inputs with random shifts of up to this fraction of the image's "
                     "height and width (0.1 = 2.8 px on 28x28); 0 = off",
    "augment_rotate": "augment training inputs with random rotations of up to this many degrees; 0 = off",
    "consistency_weight": "SAE with augmentation: weight of the distance between two augmentations' codes; 0 = off",
    "contrast_weight": "SAE with augmentation: weight of the InfoNCE term telling each image's other augmentation "
                       "apart from the batch's; 0 = off",
    "contrast_temperature": "SAE: temperature of that InfoNCE term's cosine similarities",
    "iw_samples": "importance samples K for the VAE's validation and test log-likelihood (IWAE estimate with "
                  "the encoder's proposal)",
    "iw_refine_steps": "VAE: also report test_log_likelihood_refined, each test image's proposal q(z|x) refined "
                       "by this many Adam steps first (0 = off)",
    "traversal_steps": "points along each latent axis in traversal images",
}
CHOICES = {"model": MODELS, "recon_loss": RECON_LOSSES, "lr_schedule": LR_SCHEDULES}


class OneLineErrors(argparse.ArgumentParser):
    """A bad flag gets one line naming it and the fix, not the whole usage (dozens of flags)."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def optional(kind):
    """An argparse type where "" means "not given" (MLproject passes every parameter)."""
    def parse(text: str):
        try:
            return None if text == "" else kind(text)
        except ConfigError as e:  # its own message says what to give; argparse would replace it
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (),
                         defaults: dict | None = None) -> None:
    """One flag per TrainConfig field; defaults stay None so presets can fill the gaps. `defaults`: the
    caller's own defaults for some fields (what it passes to config_from_args as `base`), shown in --help."""
    shown_defaults = TrainConfig().to_dict() | (defaults or {})
    group = parser.add_argument_group("training configuration")
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        default = shown_defaults[f.name]
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if f.name == "hidden":
            kind, default = parse_hidden, ",".join(map(str, default))
        shown = "" if default is None else f" (default: {default})"
        # No argparse `choices`: "" must parse as "not given"; TrainConfig rejects bad values clearly.
        group.add_argument(flag(f.name), type=optional(kind), default=None,
                           metavar="{" + ",".join(CHOICES[f.name]) + "}" if f.name in CHOICES else f.name.upper(),
                           help=HELP[f.name] + shown)


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    from training.presets import PRESETS

    parser.add_argument("--preset", default=None, metavar="NAME",
                        help=f"start from a named recipe ({', '.join(PRESETS)}); flags given override it")


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> TrainConfig:
    """Flags override the preset (--preset), which overrides `base`, which overrides the defaults."""
    from training.presets import preset_values

    values = dict(base or {}) | preset_values(getattr(args, "preset", None))
    for f in fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return TrainConfig(**values)
