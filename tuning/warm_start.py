"""Warm start (`--warm-start EXPERIMENT_OR_SWEEP`): a new sweep that begins where an earlier one ended.

The earlier sweep's trials that trained to the end (read from MLflow by tracking.sweep_history) are
turned back into points of this sweep's space (each swept key typed as the space has it; points outside
the space, or missing a swept key, are left out) and grouped by configuration (the mean over seeds, as
--repeats ranks them). Then:
  * random search: the best `--warm-start-top` K configurations are the first trials (points_to_evaluate);
  * Optuna: every earlier configuration is told to the study with its result (Ray's OptunaSearch
    `points_to_evaluate` with `evaluated_rewards`: added as finished trials, not run again), so TPE's first
    suggestions already know them and the new sweep explores instead of repeating them.

    points, rewards, source = from_earlier(sweep, uri)
"""
from __future__ import annotations

from dataclasses import replace

from training.config import ConfigError


def typed(text: str, spec: dict):
    """A param's text as the space's value for that key, or None when the space does not contain it."""
    kind, arg = next(iter(spec.items()))
    if kind in ("choice", "grid"):
        matches = [v for v in arg if str(v) == text or _number(text) == _number(v)]
        return matches[0] if matches else None
    value = _number(text)
    if value is None or not arg[0] <= value <= arg[1]:
        return None
    return int(value) if kind == "randint" else float(value)


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def points_of(trials: list[dict], space: dict, swept: tuple[str, ...]) -> list[dict]:
    """Rows {swept values..., "value": metric} for the earlier trials whose values this space contains."""
    rows = []
    for trial in trials:
        point = {k: typed(trial["params"][k], space[k]) for k in swept if k in trial["params"]}
        if len(point) == len(swept) and None not in point.values():
            rows.append(point | {"value": trial["value"], "status": "FINISHED", "stopped_early": False})
    return rows


def from_earlier(sweep, tracking_uri: str) -> tuple[list[dict], list[float], str]:
    """(points, their mean results, what was read): every configuration of the earlier sweep that this space
    contains, best first by the mean of `sweep.metric` over its seeds."""
    from tracking.sweep_history import earlier_trials
    from tuning.repeats import configurations

    try:
        trials, what = earlier_trials(tracking_uri, sweep.warm_start, sweep.metric)
    except LookupError as e:
        raise ConfigError(str(e)) from None
    trials = [t for t in trials if t.get("model_kind") in (None, sweep.base.model)]
    rows = points_of(trials, sweep.space, sweep.swept)
    if not rows:
        raise ConfigError(f"--warm-start {sweep.warm_start}: {what} has no trial that trained to the end with "
                          f"{sweep.metric} inside this sweep's space ({', '.join(sweep.swept)}); widen --space or "
                          f"warm-start from another sweep")
    groups = configurations(rows, sweep.swept, "value", sweep.mode)
    return [g["config"] for g in groups], [g["mean"] for g in groups], f"{what}: {len(trials)} trials"


def apply(sweep, tracking_uri: str):
    """The sweep with its warm start resolved: `start_points` (random) or `told` (Optuna) filled in."""
    if not sweep.warm_start or sweep.resume:
        return sweep
    points, rewards, what = from_earlier(sweep, tracking_uri)
    if sweep.search == "optuna":
        told = tuple(zip(points, rewards))
        print(f"[aesweep] warm start from {what}: Optuna told {len(told)} earlier configurations "
              f"(best {sweep.metric} {rewards[0]:.4f})")
        return replace(sweep, told=told, start_points=(), warm_start_from=what)
    top = tuple(points[:sweep.warm_start_top])
    print(f"[aesweep] warm start from {what}: the first {len(top)} trials are its best configurations "
          f"(best {sweep.metric} {rewards[0]:.4f})")
    return replace(sweep, start_points=tuple(sweep.start_points) + top, warm_start_from=what)
