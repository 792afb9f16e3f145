"""Typed, validated training configuration.

One frozen dataclass describes a training run end to end. It is built once
(from the CLI, MLproject parameters, a preset or a tuning trial) and passed
down; nothing below it reads flags or environment variables for these values.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from training.errors import UserError

MODELS = ("vae", "sae")
RECON_LOSSES = ("auto", "cbernoulli", "bce", "mse", "gaussian")
LR_SCHEDULES = ("constant", "cosine")


class ConfigError(UserError, ValueError):
    """A configuration value is invalid; the message says which and what to do."""


def option(default: Any, help: str, **meta: Any) -> Any:
    """A config field and its help, the one text the CLIs (training.cli) show for it. `meta`: e.g.
    choices=(...) for a closed set (shown as the flag's metavar)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines one training run; each field's help is its `option` text."""

    model: str = option("vae", "vae (variational autoencoder) or sae (sparse autoencoder)", choices=MODELS)
    dataset: str = option("digits", "digits (bundled, offline), mnist, mnist-test, frey, or npz:PATH for your own "
                                    "arrays")
    data_dir: str | None = option(None, "folder searched for dataset files before any download; else "
                                        "$AESWEEP_DATA_DIR")
    latent_dim: int = option(8, "size of the latent code")
    hidden: tuple[int, ...] = option((256, 128), "encoder layer widths, comma-separated; the decoder mirrors them")
    activation: str = option("relu", "hidden-layer activation")
    kl_weight: float = option(1.0, "VAE: beta, the weight of the KL term")
    sparsity_weight: float = option(0.01, "SAE: weight of the KL sparsity penalty")
    sparsity_target: float = option(0.05, "SAE: rho, target mean activation of each code unit, in (0, 1)")
    # The VAE's likelihood p(x|z) per pixel, or the SAE's reconstruction loss. "cbernoulli": the continuous
    # Bernoulli (Loaiza-Ganem & Cunningham 2019); "bce" on greyscale data gives figures that are not
    # log-likelihoods; "gaussian": learned per-pixel variance (VAE only); "mse": unit variance.
    recon_loss: str = option("auto", "reconstruction likelihood; auto = gaussian for frey, cbernoulli (continuous "
                                     "Bernoulli, a density on [0, 1]) for other VAE data, mse for the SAE; bce = "
                                     "Bernoulli (a density for binary pixels)", choices=RECON_LOSSES)
    learning_rate: float = option(1e-3, "Adam learning rate")
    batch_size: int = option(128, "GLOBAL batch size, split across replicas")
    epochs: int = option(20, "number of epochs")
    seed: int = option(0, "random seed (initialisation, shuffling, noise)")
    lr_schedule: str = option("constant", "learning-rate schedule: constant, or cosine decay to 0 over the epochs",
                              choices=LR_SCHEDULES)
    warmup_epochs: int = option(0, "linear learning-rate warm-up from 0 over this many first epochs; 0 = none")
    weight_decay: float = option(0.0, "decoupled (AdamW) weight decay; 0 = plain Adam")
    # The dropout mask comes from the input pipeline's per-example noise, rescaled by 1 / (1 - p).
    input_dropout: float = option(0.0, "SAE: denoising: fraction of input pixels zeroed in training, in [0, 1)")
    # K > 1: the importance-weighted bound of Burda et al.
    iw_train_samples: int = option(1, "VAE: importance samples K in the training objective (1 = ELBO, >1 = IWAE "
                                      "bound)")
    # k = the number of classes.
    cluster_epochs: int = option(0, "SAE: epochs of IDEC clustering fine-tuning of the encoder before k-means; "
                                    "0 = off")
    # Per example, against a reconstruction summed over pixels: IDEC's gamma=0.1 on a per-pixel mean is
    # about 0.1 * pixels here.
    cluster_weight: float = option(50.0, "SAE: gamma, weight of the IDEC clustering loss")
    # Label-free augmentation of the training inputs.
    augment_shift: float = option(0.0, "augment training inputs with random shifts of up to this fraction of the "
                                       "image's height and width (0.1 = 2.8 px on 28x28); 0 = off")
    augment_rotate: float = option(0.0, "augment training inputs with random rotations of up to this many degrees; "
                                        "0 = off")
    # Relative to the batch's code spread: invariance of the code that collapse cannot fake.
    consistency_weight: float = option(0.0, "SAE with augmentation: weight of the distance between two "
                                            "augmentations' codes; 0 = off")
    # Cosine similarity of batch-centred codes / contrast_temperature, against the global batch's: codes
    # invariant to augmentation that still tell images apart.
    contrast_weight: float = option(0.0, "SAE with augmentation: weight of the InfoNCE term telling each image's "
                                         "other augmentation apart from the batch's; 0 = off")
    contrast_temperature: float = option(0.5, "SAE: temperature of that InfoNCE term's cosine similarities")
    # The encoder's proposal q(z|x), as published VAE results use.
    iw_samples: int = option(1000, "importance samples K for the VAE's validation and test log-likelihood (IWAE "
                                   "estimate with the encoder's proposal)")
    # Closes the amortisation gap; any proposal gives a lower bound of log p(x).
    iw_refine_steps: int = option(0, "VAE: also report test_log_likelihood_refined, each test image's proposal "
                                     "q(z|x) refined by this many Adam steps first (0 = off)")
    traversal_steps: int = option(9, "points along each latent axis in traversal images")

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        self.validate()

    def validate(self) -> None:
        def bad(name: str, value: Any, want: str) -> ConfigError:
            return ConfigError(f"invalid {name}={value!r}: {want}")

        if self.model not in MODELS:
            raise bad("model", self.model, f"choose one of {', '.join(MODELS)}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise bad("dataset", self.dataset, "give a dataset name such as 'digits'")
        if int(self.latent_dim) != self.latent_dim or self.latent_dim < 1:
            raise bad("latent_dim", self.latent_dim, "must be an integer >= 1")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise bad("hidden", self.hidden, "give one or more layer widths >= 1, e.g. 256,128")
        if self.activation not in ("relu", "softplus", "tanh", "elu", "gelu", "sigmoid", "swish"):
            raise bad("activation", self.activation, "choose relu, softplus, tanh, elu, gelu, sigmoid or swish")
        if not self.kl_weight >= 0:
            raise bad("kl_weight", self.kl_weight, "must be >= 0")
        if not self.sparsity_weight >= 0:
            raise bad("sparsity_weight", self.sparsity_weight, "must be >= 0")
        if not 0.0 < self.sparsity_target < 1.0:
            raise bad("sparsity_target", self.sparsity_target, "rho must lie strictly between 0 and 1")
        if self.recon_loss not in RECON_LOSSES:
            raise bad("recon_loss", self.recon_loss, f"choose one of {', '.join(RECON_LOSSES)}")
        if self.model == "sae" and self.recon_loss in ("gaussian", "cbernoulli"):
            raise bad("recon_loss", self.recon_loss, "the sparse autoencoder takes 'mse' or 'bce'")
        if not self.learning_rate > 0:
            raise bad("learning_rate", self.learning_rate, "must be > 0")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise bad("batch_size", self.batch_size, "must be an integer >= 1")
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise bad("epochs", self.epochs, "must be an integer >= 1")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", self.lr_schedule, f"choose one of {', '.join(LR_SCHEDULES)}")
        if int(self.warmup_epochs) != self.warmup_epochs or not 0 <= self.warmup_epochs < self.epochs:
            raise bad("warmup_epochs", self.warmup_epochs, "must be an integer in [0, epochs)")
        if not self.weight_decay >= 0:
            raise bad("weight_decay", self.weight_decay, "must be >= 0")
        if not 0.0 <= self.input_dropout < 1.0:
            raise bad("input_dropout", self.input_dropout, "must lie in [0, 1)")
        if self.input_dropout > 0 and self.model != "sae":
            raise bad("input_dropout", self.input_dropout, "denoising is for the sparse autoencoder")
        for name in ("consistency_weight", "contrast_weight"):
            value = getattr(self, name)
            if not value >= 0:
                raise bad(name, value, "must be >= 0")
            if value > 0 and (self.model != "sae" or not (self.augment_shift or self.augment_rotate)):
                raise bad(name, value, "it compares two augmentations' codes: use the SAE with augmentation "
                                       "(--augment-shift/--augment-rotate)")
        if not self.contrast_temperature > 0:
            raise bad("contrast_temperature", self.contrast_temperature, "must be > 0")
        if int(self.iw_train_samples) != self.iw_train_samples or self.iw_train_samples < 1:
            raise bad("iw_train_samples", self.iw_train_samples, "must be an integer >= 1")
        if self.iw_train_samples > 1 and self.model != "vae":
            raise bad("iw_train_samples", self.iw_train_samples, "importance-weighted training is for the VAE")
        if int(self.cluster_epochs) != self.cluster_epochs or self.cluster_epochs < 0:
            raise bad("cluster_epochs", self.cluster_epochs, "must be an integer >= 0")
        if self.cluster_epochs and self.model != "sae":
            raise bad("cluster_epochs", self.cluster_epochs, "clustering fine-tuning is for the SAE")
        if not self.cluster_weight >= 0:
            raise bad("cluster_weight", self.cluster_weight, "must be >= 0")
        if not 0 <= self.augment_shift < 0.5:
            raise bad("augment_shift", self.augment_shift, "a fraction of the image size in [0, 0.5), no longer "
                                                           "pixels (0.1 shifts 28x28 images by up to 2.8 pixels)")
        if not 0 <= self.augment_rotate <= 180:
            raise bad("augment_rotate", self.augment_rotate, "degrees within [0, 180]")
        if int(self.iw_samples) != self.iw_samples or self.iw_samples < 1:
            raise bad("iw_samples", self.iw_samples, "must be an integer >= 1")
        if int(self.iw_refine_steps) != self.iw_refine_steps or self.iw_refine_steps < 0:
            raise bad("iw_refine_steps", self.iw_refine_steps, "must be an integer >= 0")
        if self.iw_refine_steps and self.model != "vae":
            raise bad("iw_refine_steps", self.iw_refine_steps, "proposal refinement is for the VAE")
        if self.traversal_steps < 2:
            raise bad("traversal_steps", self.traversal_steps, "must be >= 2")

    @property
    def uses_second_view(self) -> bool:
        """Whether training compares two augmentations of each image."""
        return self.consistency_weight > 0 or self.contrast_weight > 0

    def resolved_recon_loss(self) -> str:
        """The reconstruction likelihood actually used ("auto" resolved)."""
        if self.recon_loss != "auto":
            return self.recon_loss
        if self.model == "sae":
            return "mse"
        return "gaussian" if self.dataset == "frey" else "cbernoulli"

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}: known keys are {', '.join(sorted(known))}")
        return cls(**d)


def _vae(v: Mapping[str, Any]) -> bool:
    return v["model"] == "vae"


def _sae(v: Mapping[str, Any]) -> bool:
    return v["model"] == "sae"


def _sae_augmented(v: Mapping[str, Any]) -> bool:
    return _sae(v) and bool(v["augment_shift"] or v["augment_rotate"])


# When a TrainConfig field means something for a run, as a test of the run's config values: fields not
# listed apply to every run. What does not apply is not recorded (a `sparsity_weight` on a VAE is noise).
APPLIES_WHEN: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "kl_weight": _vae,
    "iw_train_samples": _vae,
    "iw_samples": _vae,
    "iw_refine_steps": _vae,
    "sparsity_weight": _sae,
    "sparsity_target": _sae,
    "input_dropout": _sae,
    "cluster_epochs": _sae,
    "cluster_weight": lambda v: _sae(v) and bool(v["cluster_epochs"]),
    "consistency_weight": _sae_augmented,
    "contrast_weight": _sae_augmented,
    "contrast_temperature": lambda v: _sae_augmented(v) and bool(v["contrast_weight"]),
}


def applicable_params(config: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The fields that apply to this run's model and options, in field order, without unset (None) ones.

    `config` may also be a mapping of field values (e.g. a sweep's base config with a trial's sampled
    values, not yet validated); missing fields take their defaults.
        applicable_params(TrainConfig(model="vae"))  # has kl_weight, not sparsity_weight
    """
    values = TrainConfig().to_dict() | (config.to_dict() if isinstance(config, TrainConfig) else dict(config))
    always = lambda v: True  # noqa: E731
    return {f.name: values[f.name] for f in fields(TrainConfig)
            if values[f.name] is not None and APPLIES_WHEN.get(f.name, always)(values)}


def parse_hidden(text: str) -> tuple[int, ...]:
    """'256,128' -> (256, 128), with a clear error for anything else."""
    try:
        widths = tuple(int(t) for t in str(text).replace(" ", "").split(",") if t)
    except ValueError:
        raise ConfigError(f"invalid hidden={text!r}: give comma-separated integers, e.g. 256,128") from None
    if not widths:
        raise ConfigError(f"invalid hidden={text!r}: give comma-separated integers, e.g. 256,128")
    return widths
