"""Resumable epoch checkpoints: weights, optimizer state, epoch, history and config.

A checkpoint directory holds `state.json` (epoch, history, config) and `weights.npz`
(model and optimizer variables, in order). Files are written to a temporary name and
renamed, so a run killed mid-write leaves the previous checkpoint intact. The loop's
randomness is a pure function of (seed, epoch), so the epoch is the RNG state.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from training.config import ConfigError, TrainConfig

STATE = "state.json"
WEIGHTS = "weights.npz"


def save(directory: str | os.PathLike, model, optimizer, epoch: int, history: list[dict], config_dict: dict) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {f"m{i}": np.asarray(v) for i, v in enumerate(model.weights)}
    arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    tmp = d / (WEIGHTS + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, d / WEIGHTS)
    state = {"epoch": epoch, "history": history, "config": config_dict}
    (d / (STATE + ".tmp")).write_text(json.dumps(state, indent=1))
    os.replace(d / (STATE + ".tmp"), d / STATE)


def exists(directory: str | os.PathLike | None) -> bool:
    return bool(directory) and (Path(directory) / STATE).is_file() and (Path(directory) / WEIGHTS).is_file()


def read_state(directory: str | os.PathLike) -> dict:
    try:
        state = json.loads((Path(directory) / STATE).read_text())
        int(state["epoch"]), list(state["history"]), dict(state["config"])
        return state
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"checkpoint in {directory} is damaged ({STATE}: {type(e).__name__}); delete it or use a "
                          f"fresh --checkpoint-dir") from None


def restore(directory: str | os.PathLike, model, optimizer, config_dict: dict) -> tuple[int, list[dict]]:
    """Load a checkpoint into `model` and `optimizer` (already built); returns (epoch, history)."""
    state = read_state(directory)
    # Options added since the checkpoint was written take their defaults (what it was trained with).
    saved_config = TrainConfig.from_dict({**TrainConfig().to_dict(), **state["config"]}).to_dict()
    saved = {k: v for k, v in saved_config.items() if k not in ("epochs", "data_dir", "iw_samples")}
    now = {k: v for k, v in config_dict.items() if k not in ("epochs", "data_dir", "iw_samples")}
    if saved != now:
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise ConfigError(f"checkpoint in {directory} was made with a different config ({', '.join(diff)}); "
                         f"use a fresh checkpoint directory or the same config")
    try:
        with np.load(Path(directory) / WEIGHTS, allow_pickle=False) as z:
            for i, v in enumerate(model.weights):
                v.assign(z[f"m{i}"])
            for i, v in enumerate(optimizer.variables):
                v.assign(z[f"o{i}"])
    except Exception as e:  # truncated, or made for other shapes: nothing of it is used
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"checkpoint in {directory} cannot be loaded ({first[:200]}); delete it or use a fresh "
                          f"--checkpoint-dir") from None
    return int(state["epoch"]), list(state["history"])
