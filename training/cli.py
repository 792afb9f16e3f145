"""Command-line flags <-> TrainConfig, shared by `python -m training` and `python -m tuning`.

Each TrainConfig field has exactly one flag (underscores become dashes), whose help is the field's own
(training.config.option); MLproject's `train` entry point declares the same names, and a test keeps
them in lockstep.
"""
from __future__ import annotations

import argparse

from training.config import ConfigError, TrainConfig, config_fields, parse_hidden

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
    for f in config_fields():
        if f.name in skip:
            continue
        default = shown_defaults[f.name]
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if f.name == "hidden":
            kind, default = parse_hidden, ",".join(map(str, default))
        shown = "" if default is None else f" (default: {default})"
        choices = f.metadata.get("choices")
        # No argparse `choices`: "" must parse as "not given"; TrainConfig rejects bad values clearly.
        group.add_argument(flag(f.name), type=optional(kind), default=None,
                           metavar="{" + ",".join(choices) + "}" if choices else f.name.upper(),
                           help=f.metadata["help"] + shown)


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    from training.presets import PRESETS

    parser.add_argument("--preset", default=None, metavar="NAME",
                        help=f"start from a named recipe ({', '.join(PRESETS)}); flags given override it")


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> TrainConfig:
    """Flags override the preset (--preset), which overrides `base`, which overrides the defaults."""
    from training.presets import preset_values

    values = dict(base or {}) | preset_values(getattr(args, "preset", None))
    for f in config_fields():
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return TrainConfig(**values)
