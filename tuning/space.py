"""Search spaces: per-model defaults, YAML overrides, and the Ray Tune param space.

A space maps TrainConfig fields to one of
    {choice: [a, b, ...]}   {uniform: [low, high]}   {loguniform: [low, high]}   {randint: [low, high]}
    {grid: [a, b, ...]}     every value, each --num-samples times
or a plain value (held fixed). Example YAML for --space:

    latent_dim: {choice: [4, 8, 16]}
    learning_rate: {loguniform: [3.0e-4, 3.0e-3]}
    kl_weight: 1.0
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from training.config import ConfigError, TrainConfig, config_fields

# Powers of two, plus the recipes' 10 (mnist-sae) and 20 (frey-vae): the default spaces contain every preset.
LATENT_DIMS = [2, 4, 8, 10, 16, 20, 32]
# The VAE's learning rates start at 3e-4: in the default sweep (about 800 steps a trial), the three trials
# near 1e-4 were its three worst, stopped at epoch 5 with a validation ELBO 70-115 nats below the best
# (BENCHMARKS.md).
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "vae": {"latent_dim": {"choice": LATENT_DIMS}, "learning_rate": {"loguniform": [3e-4, 3e-3]},
            "kl_weight": {"uniform": [0.25, 4.0]}},
    "sae": {"latent_dim": {"choice": LATENT_DIMS}, "learning_rate": {"loguniform": [1e-4, 3e-3]},
            "sparsity_weight": {"loguniform": [1e-4, 1.0]}, "sparsity_target": {"choice": [0.05, 0.1, 0.2]}},
}
# With recon_scale="variance" the reconstruction is divided by the images' total pixel variance (52.9 on
# MNIST-test), so the sparsity weight that balances it is about that much smaller.
VARIANCE_SCALED = {"sparsity_weight": {"loguniform": [2e-6, 2e-2]}}
KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
# Set by the sweep itself, never searched.
NOT_SEARCHABLE = ("model", "dataset", "data_dir", "epochs")


def default_space(model: str, recon_scale: str = "sum") -> dict[str, Any]:
    space = {k: dict(v) for k, v in DEFAULT_SPACES[model].items()}
    if model == "sae" and recon_scale == "variance":
        space.update({k: dict(v) for k, v in VARIANCE_SCALED.items()})
    return space


def load_space(path: str | None, model: str, recon_scale: str = "sum") -> dict[str, Any]:
    """The default space for `model` (and the SAE's reconstruction scale), with keys from the YAML file at
    `path` overriding it."""
    space = default_space(model, recon_scale)
    if not path:
        return space
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"search space file {p} not found; give a YAML file, e.g. latent_dim: {{choice: [4, 8]}}")
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping of config keys to ranges, got {type(loaded).__name__}")
    space.update(numbers(loaded))
    validate(space, str(p))
    return space


NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def numbers(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` (no dot) as a string: numbers written so become numbers again."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    if isinstance(value, str) and NUMBER.match(value.strip()):
        number = float(value)
        return int(number) if number.is_integer() and not any(c in value for c in ".eE") else number
    return value


def validate(space: dict[str, Any], where: str = "search space") -> None:
    known = {f.name for f in config_fields()}
    for key, spec in space.items():
        if key not in known or key in NOT_SEARCHABLE:
            allowed = ", ".join(sorted(known - set(NOT_SEARCHABLE)))
            raise ConfigError(f"{where}: unknown key {key!r}; searchable keys are {allowed}")
        if not isinstance(spec, dict):
            continue  # a fixed value, checked when the trial's TrainConfig is built
        if len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise ConfigError(f"{where}: {key} must be a value or one of {{{': ..., '.join(KINDS)}: ...}}, "
                              f"got {spec!r}")
        kind, arg = next(iter(spec.items()))
        if kind in ("choice", "grid"):
            if not isinstance(arg, list) or not arg:
                raise ConfigError(f"{where}: {key} {kind} is empty; list at least one value")
        else:
            if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, (int, float)) for a in arg)):
                raise ConfigError(f"{where}: {key} {kind} needs [low, high], got {arg!r}")
            low, high = arg
            if not low < high:
                raise ConfigError(f"{where}: {key} {kind} range [{low}, {high}] is empty; need low < high")
            if kind == "loguniform" and low <= 0:
                raise ConfigError(f"{where}: {key} loguniform needs low > 0, got {low}")


def to_tune(space: dict[str, Any]) -> dict[str, Any]:
    """The Ray Tune param space (tune.choice, tune.uniform, ...)."""
    from ray import tune

    validate(space)
    out = {}
    for key, spec in space.items():
        if isinstance(spec, dict):
            kind, arg = next(iter(spec.items()))
            if kind in ("choice", "grid"):
                out[key] = tune.choice(arg) if kind == "choice" else tune.grid_search(arg)
            else:
                out[key] = getattr(tune, kind)(*arg)
        else:
            out[key] = spec
    return out


def contain(space: dict[str, Any], base: TrainConfig) -> dict[str, Any]:
    """The space widened so that it contains `base`'s values (a preset is then one of its points)."""
    out = {}
    for key, spec in space.items():
        value = getattr(base, key)
        if isinstance(spec, dict):
            kind, arg = next(iter(spec.items()))
            if kind in ("choice", "grid") and value not in arg:
                spec = {kind: sorted(arg + [value]) if all(isinstance(a, (int, float)) for a in arg) else arg + [value]}
            elif kind in ("uniform", "loguniform", "randint") and not arg[0] <= value <= arg[1]:
                spec = {kind: [min(arg[0], value), max(arg[1], value + (1 if kind == "randint" else 0))]}
        out[key] = spec
    return out


def trial_config(base: TrainConfig, sampled: dict[str, Any]) -> TrainConfig:
    """The trial's TrainConfig: the sweep's base config with the sampled values."""
    values = dict(sampled)
    if isinstance(values.get("hidden"), str):
        from training.config import parse_hidden

        values["hidden"] = parse_hidden(values["hidden"])
    return base.replace(**values)
