"""Typed, validated training configuration.

One frozen `TrainConfig` describes a training run end to end. It is built once (from the CLI, MLproject
parameters, a preset or a tuning trial) and passed down; nothing below it reads flags or environment
variables for these values. It is composed of parts, each a small frozen dataclass that checks its own
values: the model's (`VAEConfig` or `SAEConfig`, which the model receives whole), the data and its
augmentation, the optimiser, the SAE's clustering fine-tuning and the evaluation.

Users see one flat set of names: flags, MLproject parameters, MLflow params, presets and the config
stored with checkpoints all use the fields' own names (`latent_dim`, `learning_rate`, ...):
    TrainConfig(model="sae", latent_dim=10, learning_rate=1e-3)     # flat, as presets and tests write it
    config.latent_dim == config.network.latent_dim                    # flat reads, or through the part
    config.replace(epochs=3); config.to_dict(); TrainConfig.from_dict(d)
A field of the other model's part reads as its default (it does not apply); given a value that would
change training, it is refused with the reason (an `only` note on the field).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from training.errors import UserError

MODELS = ("vae", "sae")
RECON_LOSSES = ("auto", "cbernoulli", "bce", "mse", "gaussian")
LR_SCHEDULES = ("constant", "cosine")
ACTIVATIONS = ("relu", "softplus", "tanh", "elu", "gelu", "sigmoid", "swish")


class ConfigError(UserError, ValueError):
    """A configuration value is invalid; the message says which and what to do."""


def option(default: Any, help: str, **meta: Any) -> Any:
    """A config field and its help, the one text the CLIs (training.cli) show for it. `meta`: choices=(...)
    for a closed set (shown as the flag's metavar); only="..." for a model's field that is refused, with
    that reason, when given to the other model."""
    return field(default=default, metadata={"help": help, **meta})


def bad(name: str, value: Any, want: str) -> ConfigError:
    return ConfigError(f"invalid {name}={value!r}: {want}")


def whole(name: str, value: Any, least: int) -> None:
    if int(value) != value or value < least:
        raise bad(name, value, f"must be an integer >= {least}")


def at_least_zero(part: Any, *names: str) -> None:
    for name in names:
        if not getattr(part, name) >= 0:
            raise bad(name, getattr(part, name), "must be >= 0")


class Part:
    """A part of the configuration: frozen, checked on creation (`validate`), replaced whole."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        pass

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


@dataclass(frozen=True)
class DataConfig(Part):
    """The dataset and the label-free augmentation of its training inputs."""

    dataset: str = option("digits", "digits (bundled, offline), mnist, mnist-test, frey, or npz:PATH for your own "
                                    "arrays")
    data_dir: str | None = option(None, "folder searched for dataset files before any download; else "
                                        "$AESWEEP_DATA_DIR")
    augment_shift: float = option(0.0, "augment training inputs with random shifts of up to this fraction of the "
                                       "image's height and width (0.1 = 2.8 px on 28x28); 0 = off")
    augment_rotate: float = option(0.0, "augment training inputs with random rotations of up to this many degrees; "
                                        "0 = off")

    @property
    def augmented(self) -> bool:
        return bool(self.augment_shift or self.augment_rotate)

    def validate(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise bad("dataset", self.dataset, "give a dataset name such as 'digits'")
        if not 0 <= self.augment_shift < 0.5:
            raise bad("augment_shift", self.augment_shift, "a fraction of the image size in [0, 0.5), no longer "
                                                           "pixels (0.1 shifts 28x28 images by up to 2.8 pixels)")
        if not 0 <= self.augment_rotate <= 180:
            raise bad("augment_rotate", self.augment_rotate, "degrees within [0, 180]")


@dataclass(frozen=True)
class NetworkConfig(Part):
    """What both models are built from: an MLP encoder and its mirror as decoder around the code."""

    kind: ClassVar[str]
    latent_dim: int = option(8, "size of the latent code")
    hidden: tuple[int, ...] = option((256, 128), "encoder layer widths, comma-separated; the decoder mirrors them")
    activation: str = option("relu", "hidden-layer activation")
    # The VAE's likelihood p(x|z) per pixel, or the SAE's reconstruction loss. "cbernoulli": the continuous
    # Bernoulli (Loaiza-Ganem & Cunningham 2019); "bce" on greyscale data gives figures that are not
    # log-likelihoods; "gaussian": learned per-pixel variance (VAE only); "mse": unit variance. A model
    # receives it resolved (TrainConfig.resolved_recon_loss), never "auto".
    recon_loss: str = option("auto", "reconstruction likelihood; auto = gaussian for frey, cbernoulli (continuous "
                                     "Bernoulli, a density on [0, 1]) for other VAE data, mse for the SAE; bce = "
                                     "Bernoulli (a density for binary pixels)", choices=RECON_LOSSES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        super().__post_init__()

    def validate(self) -> None:
        if int(self.latent_dim) != self.latent_dim or self.latent_dim < 1:
            raise bad("latent_dim", self.latent_dim, "must be an integer >= 1")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise bad("hidden", self.hidden, "give one or more layer widths >= 1, e.g. 256,128")
        if self.activation not in ACTIVATIONS:
            raise bad("activation", self.activation, "choose relu, softplus, tanh, elu, gelu, sigmoid or swish")
        if self.recon_loss not in RECON_LOSSES:
            raise bad("recon_loss", self.recon_loss, f"choose one of {', '.join(RECON_LOSSES)}")


@dataclass(frozen=True)
class VAEConfig(NetworkConfig):
    """The variational autoencoder (training.models.vae.VAE)."""

    kind: ClassVar[str] = "vae"
    kl_weight: float = option(1.0, "VAE: beta, the weight of the KL term")
    # K > 1: the importance-weighted bound of Burda et al.
    iw_train_samples: int = option(1, "VAE: importance samples K in the training objective (1 = ELBO, >1 = IWAE "
                                      "bound)", only="importance-weighted training is for the VAE")

    def validate(self) -> None:
        super().validate()
        at_least_zero(self, "kl_weight")
        whole("iw_train_samples", self.iw_train_samples, 1)


RECON_SCALES = ("sum", "variance")
SECOND_VIEW = "it compares two augmentations' codes: use the SAE with augmentation (--augment-shift/--augment-rotate)"


@dataclass(frozen=True)
class SAEConfig(NetworkConfig):
    """The sparse autoencoder (training.models.sae.SparseAutoencoder)."""

    kind: ClassVar[str] = "sae"
    sparsity_weight: float = option(0.01, "SAE: weight of the KL sparsity penalty")
    sparsity_target: float = option(0.05, "SAE: rho, target mean activation of each code unit, in (0, 1)")
    # The dropout mask comes from the input pipeline's per-example noise, rescaled by 1 / (1 - p).
    input_dropout: float = option(0.0, "SAE: denoising: fraction of input pixels zeroed in training, in [0, 1)",
                                  only="denoising is for the sparse autoencoder")
    # Relative to the batch's code spread: invariance of the code that collapse cannot fake.
    consistency_weight: float = option(0.0, "SAE with augmentation: weight of the distance between two "
                                            "augmentations' codes; 0 = off", only=SECOND_VIEW)
    # Cosine similarity of batch-centred codes / contrast_temperature, against the global batch's: codes
    # invariant to augmentation that still tell images apart.
    contrast_weight: float = option(0.0, "SAE with augmentation: weight of the InfoNCE term telling each image's "
                                         "other augmentation apart from the batch's; 0 = off", only=SECOND_VIEW)
    contrast_temperature: float = option(0.5, "SAE: temperature of that InfoNCE term's cosine similarities")
    # "variance": the reconstruction error (summed over pixels) over the training images' total pixel variance,
    # i.e. the share of the images' variance left unexplained: the same scale for images of any size and
    # contrast, so the weights of the other terms (sparsity, contrast, IDEC's gamma) carry to other data.
    recon_scale: str = option("sum", "SAE: reconstruction error summed over pixels (sum), or that over the training "
                                     "images' total pixel variance (variance: a scale free of image size, for "
                                     "recipes that carry to other datasets)", choices=RECON_SCALES,
                              only="the scale of the reconstruction is the sparse autoencoder's")

    def validate(self) -> None:
        super().validate()
        at_least_zero(self, "sparsity_weight")
        if self.recon_scale not in RECON_SCALES:
            raise bad("recon_scale", self.recon_scale, f"choose one of {', '.join(RECON_SCALES)}")
        if not 0.0 < self.sparsity_target < 1.0:
            raise bad("sparsity_target", self.sparsity_target, "rho must lie strictly between 0 and 1")
        if self.recon_loss in ("gaussian", "cbernoulli"):
            raise bad("recon_loss", self.recon_loss, "the sparse autoencoder takes 'mse' or 'bce'")
        if not 0.0 <= self.input_dropout < 1.0:
            raise bad("input_dropout", self.input_dropout, "must lie in [0, 1)")
        at_least_zero(self, "consistency_weight", "contrast_weight")
        if not self.contrast_temperature > 0:
            raise bad("contrast_temperature", self.contrast_temperature, "must be > 0")

    @property
    def uses_second_view(self) -> bool:
        return self.consistency_weight > 0 or self.contrast_weight > 0


NETWORKS: dict[str, type[NetworkConfig]] = {"vae": VAEConfig, "sae": SAEConfig}


@dataclass(frozen=True)
class OptimiserConfig(Part):
    """Adam(W) and its learning-rate schedule, over the epochs, in global batches."""

    learning_rate: float = option(1e-3, "Adam learning rate")
    batch_size: int = option(128, "GLOBAL batch size, split across replicas")
    epochs: int = option(20, "number of epochs")
    # Given, an epoch is a fixed amount of training (Keras fit's steps_per_epoch over a repeated dataset): a
    # recipe's epochs, warm-up and IDEC epochs then mean the same number of updates on a dataset of any size.
    steps_per_epoch: int = option(0, "updates per epoch (also in IDEC fine-tuning); 0 = one pass over the training "
                                     "images. Given, passes reshuffle back to back, so a recipe trains as long on "
                                     "a dataset of any size")
    lr_schedule: str = option("constant", "learning-rate schedule: constant, or cosine decay to 0 over the epochs",
                              choices=LR_SCHEDULES)
    warmup_epochs: int = option(0, "linear learning-rate warm-up from 0 over this many first epochs; 0 = none")
    weight_decay: float = option(0.0, "decoupled (AdamW) weight decay; 0 = plain Adam")

    def validate(self) -> None:
        if not self.learning_rate > 0:
            raise bad("learning_rate", self.learning_rate, "must be > 0")
        whole("batch_size", self.batch_size, 1)
        whole("epochs", self.epochs, 1)
        whole("steps_per_epoch", self.steps_per_epoch, 0)
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", self.lr_schedule, f"choose one of {', '.join(LR_SCHEDULES)}")
        if int(self.warmup_epochs) != self.warmup_epochs or not 0 <= self.warmup_epochs < self.epochs:
            raise bad("warmup_epochs", self.warmup_epochs, "must be an integer in [0, epochs)")
        at_least_zero(self, "weight_decay")


@dataclass(frozen=True)
class ClusteringConfig(Part):
    """SAE only: IDEC fine-tuning of the encoder (k = the number of classes) before the final k-means."""

    cluster_epochs: int = option(0, "SAE: epochs of IDEC clustering fine-tuning of the encoder before k-means; "
                                    "0 = off")
    # Per example, against a reconstruction summed over pixels: IDEC's gamma=0.1 on a per-pixel mean is
    # about 0.1 * pixels here.
    cluster_weight: float = option(50.0, "SAE: gamma, weight of the IDEC clustering loss")

    def validate(self) -> None:
        whole("cluster_epochs", self.cluster_epochs, 0)
        at_least_zero(self, "cluster_weight")


@dataclass(frozen=True)
class EvaluationConfig(Part):
    """The held-out figures and images: the VAE's importance-weighted log-likelihood, latent traversals."""

    # The encoder's proposal q(z|x), as published VAE results use.
    iw_samples: int = option(1000, "importance samples K for the VAE's validation and test log-likelihood (IWAE "
                                   "estimate with the encoder's proposal)")
    # Closes the amortisation gap; any proposal gives a lower bound of log p(x).
    iw_refine_steps: int = option(0, "VAE: also report test_log_likelihood_refined, each test image's proposal "
                                     "q(z|x) refined by this many Adam steps first (0 = off)")
    traversal_steps: int = option(9, "points along each latent axis in traversal images")

    def validate(self) -> None:
        whole("iw_samples", self.iw_samples, 1)
        whole("iw_refine_steps", self.iw_refine_steps, 0)
        if self.traversal_steps < 2:
            raise bad("traversal_steps", self.traversal_steps, "must be >= 2")


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Everything that determines one training run: the model's kind, its parts and the seed. Build it from
    flat names, from parts, or both (flat names override the parts given):
        TrainConfig(model="vae", latent_dim=2, epochs=5)
        TrainConfig(model="sae", network=SAEConfig(latent_dim=10), optimiser=OptimiserConfig(epochs=50))"""

    model: str = option("vae", "vae (variational autoencoder) or sae (sparse autoencoder)", choices=MODELS)
    data: DataConfig = DataConfig()
    network: VAEConfig | SAEConfig = VAEConfig()
    optimiser: OptimiserConfig = OptimiserConfig()
    clustering: ClusteringConfig = ClusteringConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    seed: int = option(0, "random seed (initialisation, shuffling, noise)")

    def __init__(self, model: str = "vae", *, seed: int = 0, **values: Any) -> None:
        if model not in MODELS:
            raise bad("model", model, f"choose one of {', '.join(MODELS)}")
        network_type = NETWORKS[model]
        unknown = set(values) - set(PARTS) - set(FLAT)
        if unknown:
            raise TypeError(f"TrainConfig got unexpected keyword argument(s) {', '.join(sorted(unknown))}")
        other = {k: values.pop(k) for k in list(values) if k in FLAT and FLAT[k][0] == "network"
                 and k not in FIELDS[network_type]}
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "seed", seed)
        for name, types in PARTS.items():
            kind = network_type if name == "network" else types[0]
            part = values.get(name) or kind()
            if not isinstance(part, kind):
                raise ConfigError(f"invalid {name}={type(part).__name__}(...): model={model!r} takes a {kind.__name__}")
            own = {k: values[k] for k in FIELDS[kind] if k in values}
            object.__setattr__(self, name, part.replace(**own) if own else part)
        refuse_other_model(model, other)
        self.validate()

    def validate(self) -> None:
        """The checks across parts (each part checks its own values)."""
        if isinstance(self.network, SAEConfig) and self.network.uses_second_view and not self.data.augmented:
            name = "consistency_weight" if self.network.consistency_weight > 0 else "contrast_weight"
            raise bad(name, getattr(self.network, name), SECOND_VIEW)
        if self.cluster_epochs and self.model != "sae":
            raise bad("cluster_epochs", self.cluster_epochs, "clustering fine-tuning is for the SAE")
        if self.iw_refine_steps and self.model != "vae":
            raise bad("iw_refine_steps", self.iw_refine_steps, "proposal refinement is for the VAE")

    def __getattr__(self, name: str) -> Any:
        """Flat reads: `config.latent_dim` is `config.network.latent_dim`; the other model's fields read as
        their defaults (they do not apply)."""
        if name not in FLAT or FLAT[name][0] is None:
            raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")
        part = object.__getattribute__(self, FLAT[name][0])
        return getattr(part, name, FLAT[name][1].default)

    @property
    def uses_second_view(self) -> bool:
        """Whether training compares two augmentations of each image."""
        return isinstance(self.network, SAEConfig) and self.network.uses_second_view

    def resolved_recon_loss(self) -> str:
        """The reconstruction likelihood actually used ("auto" resolved)."""
        if self.recon_loss != "auto":
            return self.recon_loss
        if self.model == "sae":
            return "mse"
        return "gaussian" if self.dataset == "frey" else "cbernoulli"

    def model_config(self) -> VAEConfig | SAEConfig:
        """The model's part as the model is built from it: its likelihood resolved."""
        return self.network.replace(recon_loss=self.resolved_recon_loss())

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with `changes`: flat names (`epochs=3`, `model="sae"`) or whole parts (`network=...`)."""
        given = {k for name in PARTS.keys() & changes.keys() for k, (part, _) in FLAT.items() if part == name}
        return TrainConfig(**{k: v for k, v in self.to_dict().items() if k not in given} | changes)

    def to_dict(self) -> dict[str, Any]:
        """The flat view: every field by its own name (the other model's at its defaults), as checkpoints,
        sweep states and Ray Train's loop config store it."""
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v for name in FLAT}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        unknown = sorted(set(d) - set(FLAT))
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}: known keys are {', '.join(sorted(FLAT))}")
        return cls(**d)


def refuse_other_model(model: str, given: Mapping[str, Any]) -> None:
    """Values given for the other model's fields are checked as that model would, then ignored, unless they
    would change training (an `only` note): those are refused with the note."""
    if not given:
        return
    other = next(t for kind, t in NETWORKS.items() if kind != model)
    other(**given)
    for name, value in given.items():
        f = FLAT[name][1]
        if value != f.default and "only" in f.metadata:
            raise bad(name, value, f.metadata["only"])


# The parts of a TrainConfig and their types, in the order their fields are listed (flags, to_dict); the
# "network" part is the model's, of the type NETWORKS[model].
PARTS: dict[str, tuple[type[Part], ...]] = {
    f.name: tuple(NETWORKS.values()) if f.name == "network" else (type(f.default),)
    for f in fields(TrainConfig) if isinstance(f.default, Part)}


def _flat_fields() -> dict[str, tuple[str | None, dataclasses.Field]]:
    """Every flat name -> (its part, or None for TrainConfig's own field; the field), in listing order."""
    flat: dict[str, tuple[str | None, dataclasses.Field]] = {}
    for f in fields(TrainConfig):
        for part in PARTS.get(f.name, ()):
            for g in fields(part):
                flat.setdefault(g.name, (f.name, g))
        if f.name not in PARTS:
            flat[f.name] = (None, f)
    return flat


FLAT = _flat_fields()
FIELDS = {part: {f.name for f in fields(part)} for parts in PARTS.values() for part in parts}


def config_fields() -> list[dataclasses.Field]:
    """The fields users see, one flag, param and preset key each, in listing order: the model, then each
    part's (both models'), then the seed."""
    return [f for _, f in FLAT.values()]


# When a field that applies to its model means something for a run, as a test of the run's config values.
# What does not apply is not recorded (a `sparsity_weight` on a VAE is noise).
APPLIES_WHEN: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "iw_samples": lambda v: v["model"] == "vae",
    "iw_refine_steps": lambda v: v["model"] == "vae",
    "cluster_epochs": lambda v: v["model"] == "sae",
    "cluster_weight": lambda v: v["model"] == "sae" and bool(v["cluster_epochs"]),
    "consistency_weight": lambda v: bool(v["augment_shift"] or v["augment_rotate"]),
    "contrast_weight": lambda v: bool(v["augment_shift"] or v["augment_rotate"]),
    "steps_per_epoch": lambda v: bool(v["steps_per_epoch"]),
    "contrast_temperature": lambda v: bool(v["augment_shift"] or v["augment_rotate"]) and bool(v["contrast_weight"]),
}


def applicable_params(config: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The fields that apply to this run's model and options, in listing order, without unset (None) ones:
    the model's own part's fields, not the other model's, and the rest as APPLIES_WHEN says.

    `config` may also be a mapping of field values (e.g. a sweep's base config with a trial's sampled
    values, not yet validated); missing fields take their defaults.
        applicable_params(TrainConfig(model="vae"))  # has kl_weight, not sparsity_weight
    """
    values = TrainConfig().to_dict() | (config.to_dict() if isinstance(config, TrainConfig) else dict(config))
    network = FIELDS.get(NETWORKS.get(values["model"]), set())
    return {name: values[name] for name, (part, _) in FLAT.items()
            if values[name] is not None and (part != "network" or name in network)
            and APPLIES_WHEN.get(name, lambda v: True)(values)}


def parse_hidden(text: str) -> tuple[int, ...]:
    """'256,128' -> (256, 128), with a clear error for anything else."""
    try:
        widths = tuple(int(t) for t in str(text).replace(" ", "").split(",") if t)
    except ValueError:
        raise ConfigError(f"invalid hidden={text!r}: give comma-separated integers, e.g. 256,128") from None
    if not widths:
        raise ConfigError(f"invalid hidden={text!r}: give comma-separated integers, e.g. 256,128") from None
    return widths
