"""Seed repeats (`--repeats R`): each sampled configuration trained with R seeds, ranked by the mean.

How the R trials of a configuration are made:
  * random search: `__trial_index__` is a grid of R values and BasicVariantGenerator keeps the sampled
    values constant over grid points (`constant_grid_search`), so each sample becomes R trials;
  * Optuna: Ray's `Repeater` asks the searcher once per configuration, runs it R times and tells the
    searcher the mean over the R seeds.
Either way a trial's config carries `__trial_index__` i (Ray's `TRIAL_INDEX`); it trains with seed
`sweep seed + i` (`seeded`), so repeat 0 is the trial an unrepeated sweep would have run.

At the end (`configurations`): trials grouped by their swept values, each configuration's mean and sample
sd over its seeds; configurations ranked by the mean; the champion is the best configuration's seed that
is best on validation (only configurations whose every seed trained to the end can win).

    groups = configurations(rows, swept=("latent_dim", "learning_rate"), metric="val_elbo", mode="max")
    groups[0]["mean"], groups[0]["sd"], groups[0]["best"]["run_id"]
"""
from __future__ import annotations

import math
import statistics

INDEX = "__trial_index__"  # ray.tune.search.repeater.TRIAL_INDEX (checked by tests/test_repeats.py)


def seeded(sampled: dict, base_seed: int) -> dict:
    """A trial's sampled values with its repeat index turned into its training seed (no index: unchanged)."""
    if INDEX not in sampled:
        return dict(sampled)
    values = {k: v for k, v in sampled.items() if k != INDEX}
    return values | {"seed": int(base_seed) + int(sampled[INDEX])}


def tune_space(param_space: dict, repeats: int, search: str) -> dict:
    """The param space given to the Tuner: for random search with repeats, the repeat index as a grid."""
    if repeats <= 1 or search != "random":
        return param_space
    from ray import tune

    return {**param_space, INDEX: tune.grid_search(list(range(repeats)))}


def wrap_searcher(searcher, repeats: int, search: str):
    """The search algorithm that makes R trials of each configuration (see the module docstring)."""
    if repeats <= 1 or search == "random":  # random: BasicVariantGenerator(constant_grid_search=True) does it
        return searcher
    from ray.tune.search import Repeater

    return Repeater(searcher, repeat=repeats, set_index=True)


def tune_num_samples(num_samples: int, repeats: int, search: str) -> int:
    """Tune's num_samples for `num_samples` configurations: the grid multiplies random search's samples by R
    itself; Repeater counts every trial."""
    return num_samples if repeats <= 1 or search == "random" else num_samples * repeats


def add_seeds(rows: list[dict], configs: list[dict], base_seed: int) -> None:
    """Each trial row gets its `seed` (rows in the order of the trials' configs)."""
    for row, config in zip(rows, configs):
        if INDEX in (config or {}):
            row["seed"] = int(base_seed) + int(config[INDEX])


def configurations(rows: list[dict], swept: tuple[str, ...], metric: str, mode: str,
                   trained_to_end=lambda r: r["status"] == "FINISHED" and not r["stopped_early"]) -> list[dict]:
    """Trials grouped by their swept values, best first. Each group: `config` (the swept values), `seeds`
    (the number of trials with a finite metric), `mean` and `sd` (sample sd; 0 for one seed) of the metric,
    `values`, `complete` (every trial of the group trained to the end), `best` (the trial row with the best
    metric among those trained to the end, or None) and `rows`. Complete groups rank first, then by mean."""
    groups: dict[tuple, dict] = {}
    for row in rows:
        key = tuple((k, repr(row.get(k))) for k in swept)
        group = groups.setdefault(key, {"config": {k: row.get(k) for k in swept if k in row}, "rows": []})
        group["rows"].append(row)
    sign = 1.0 if mode == "max" else -1.0
    out = []
    for group in groups.values():
        values = [float(r[metric]) for r in group["rows"]
                  if isinstance(r.get(metric), (int, float)) and math.isfinite(float(r[metric]))]
        done = [r for r in group["rows"] if trained_to_end(r) and isinstance(r.get(metric), (int, float))
                and math.isfinite(float(r[metric]))]
        group |= {"seeds": len(values), "values": values,
                  "mean": statistics.fmean(values) if values else math.nan,
                  "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                  "complete": bool(values) and len(done) == len(group["rows"]),
                  "best": max(done, key=lambda r: sign * float(r[metric])) if done else None}
        out.append(group)
    out.sort(key=lambda g: (not g["complete"], not g["values"], -sign * g["mean"] if g["values"] else 0.0))
    return out


def mean_sd(group: dict, digits: int = 4) -> str:
    """'-31.2040 ± 0.5121 (3 seeds)'"""
    return f"{group['mean']:.{digits}f} ± {group['sd']:.{digits}f} ({group['seeds']} seeds)"


def table(groups: list[dict], swept: tuple[str, ...], metric: str) -> list[dict]:
    """Flat rows for the parent's `configurations.json`: rank, swept values, mean, sd, seeds, the values,
    and the best seed's run."""
    out = []
    for rank, g in enumerate(groups, 1):
        row = {"rank": rank} | {k: g["config"].get(k) for k in swept}
        row |= {f"{metric}_mean": g["mean"], f"{metric}_sd": g["sd"], "seeds": g["seeds"],
                "complete": g["complete"], f"{metric}_values": ", ".join(f"{v:.4f}" for v in g["values"]),
                "best_seed": (g["best"] or {}).get("seed"), "best_run_id": (g["best"] or {}).get("run_id")}
        out.append(row)
    return out


def print_configurations(groups: list[dict], metric: str, mode: str, top: int = 5) -> None:
    from tuning.labels import trial_label

    print(f"\n[aesweep] configurations by mean {metric} over seeds ({mode}):")
    for g in groups[:top]:
        if not g["values"]:
            continue
        note = "" if g["complete"] else "   (not every seed trained to the end: not eligible)"
        print(f"  {trial_label(g['config']):<44}{mean_sd(g)}{note}")
