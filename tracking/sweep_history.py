"""What a sweep reads from and writes to MLflow beyond its trials' own runs: seed-repeat rankings, an
earlier sweep's results (warm start) and Population Based Training's exploits.

    log_configurations(rows, "val_elbo", mean_sd)          # on the active parent run: configurations.json
    tag_champion(client, "vae-digits", "3", "val_elbo", group)
    earlier_trials(uri, "vae-digits-20261128-010203", "val_elbo")  # [(swept params as text, value, tags)]
    record_exploit(uri, run_id, index=1, donor_trial=..., epoch=3, new={...}, donor_value=...)
"""
from __future__ import annotations

import json
import math
import tempfile

import mlflow
from mlflow.tracking import MlflowClient

from tracking.secrets import redact
from tracking.sweep_runs import STOPPED_EARLY, child_filter


# ------------------------------------------------------------------ seed repeats


def log_configurations(rows: list[dict], metric: str, best: dict | None) -> None:
    """On the active (parent) run: `configurations.json` (table view) and `.csv`, and the best
    configuration's mean and sd of `metric` over its seeds (`best_config_<metric>_mean`, `_sd`)."""
    if rows:
        import pandas as pd

        df = pd.DataFrame(rows)
        mlflow.log_table(df, artifact_file="configurations.json")
        with tempfile.TemporaryDirectory() as tmp:
            df.to_csv(f"{tmp}/configurations.csv", index=False)
            mlflow.log_artifact(f"{tmp}/configurations.csv")
    if best is not None and math.isfinite(best["mean"]):
        mlflow.log_metrics({f"best_config_{metric}_mean": best["mean"], f"best_config_{metric}_sd": best["sd"],
                            "best_config_seeds": best["seeds"]})
        mlflow.set_tag(f"best_config_{metric}", f"{best['mean']:.4f} ± {best['sd']:.4f} ({best['seeds']} seeds)")


def tag_champion(client: MlflowClient, name: str, version: str, metric: str, group: dict) -> None:
    """The registered version (the best configuration's best seed) carries its configuration's mean ± sd."""
    tags = {f"config_{metric}_mean": f"{group['mean']:.6g}", f"config_{metric}_sd": f"{group['sd']:.6g}",
            "config_seeds": str(group["seeds"]),
            f"config_{metric}": f"{group['mean']:.4f} ± {group['sd']:.4f} ({group['seeds']} seeds)"}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


# ------------------------------------------------------------------ warm start


def find_sweeps(client: MlflowClient, name: str) -> tuple[list, str]:
    """The parent runs of the sweep named `name`, else of every sweep in the experiment named `name`;
    with a description of what was found ("sweep X" / "experiment X (N sweeps)")."""
    experiments = client.search_experiments()
    ids = [e.experiment_id for e in experiments]
    quoted = name.replace("'", "\\'")
    if ids:
        runs = client.search_runs(ids, filter_string=f"tags.sweep = 'true' and attributes.run_name = '{quoted}'")
        if runs:
            return runs, f"sweep {name}"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        runs = client.search_runs([experiment.experiment_id], filter_string="tags.sweep = 'true'", max_results=1000)
        return runs, f"experiment {name} ({len(runs)} sweeps)"
    return [], name


def earlier_trials(tracking_uri: str, name: str, metric: str) -> tuple[list[dict], str]:
    """The trials of the earlier sweep (or of every sweep in the experiment) `name` that trained to the
    end with a finite `metric`: [{"params": {...as text}, "value": float, "run_id": ...}], and what was read.
    Raises LookupError (one line) when no such sweep exists."""
    client = MlflowClient(tracking_uri)
    parents, what = find_sweeps(client, name)
    if not parents:
        raise LookupError(f"--warm-start {name}: no sweep or experiment of that name in {redact(tracking_uri)}; "
                          f"give a sweep's name (its parent run's name) or an experiment's")
    out = []
    for parent in parents:
        finished = child_filter(parent.info.run_id) + " and attributes.status = 'FINISHED'"
        children = client.search_runs([parent.info.experiment_id], filter_string=finished, max_results=5000)
        for run in children:
            value = run.data.metrics.get(metric)
            if run.data.tags.get(STOPPED_EARLY) == "true" or value is None or not math.isfinite(value):
                continue
            out.append({"params": dict(run.data.params), "value": float(value), "run_id": run.info.run_id,
                        "model_kind": run.data.tags.get("model_kind")})
    return out, what


def log_warm_start(source: str, what: str, points: list[dict], told: int) -> None:
    """On the active (parent) run: where the sweep started from, the points it starts with, how many
    earlier results its searcher was told."""
    mlflow.set_tags({"warm_start": source, "warm_start_from": what, "warm_start_points": str(len(points)),
                     "warm_start_told": str(told)})
    mlflow.log_dict({"source": source, "from": what, "points": points, "told": told}, "warm_start.json")


# ------------------------------------------------------------------ Population Based Training


def record_exploit(tracking_uri: str, run_id: str, donor_trial: str, donor_run_id: str | None,
                   epoch: int, new: dict, donor_metrics: dict) -> int:
    """On a trial's child run: its next exploit, number `index` (it continued from `donor_trial`'s checkpoint of
    `epoch` with the values `new`). Tags `pbt_exploits` (count) and `pbt_exploit_<index>` (JSON: donor
    trial and run, epoch, new values); in the metric history, at step `epoch`: `pbt/exploit` (= index),
    `pbt/<key>` for each new numeric value, and `pbt/donor_<metric>`: the donor's metrics at that epoch
    as its checkpoint holds them. Returns `index`."""
    client = MlflowClient(tracking_uri)
    index = int(client.get_run(run_id).data.tags.get("pbt_exploits", "0")) + 1
    record = {"donor_trial": donor_trial, "donor_run_id": donor_run_id, "epoch": int(epoch), "new": new}
    client.set_tag(run_id, "pbt_exploits", str(index))
    client.set_tag(run_id, f"pbt_exploit_{index}", json.dumps(record, sort_keys=True)[:4000])
    log_hyperparameters(tracking_uri, run_id, epoch, new, {"pbt/exploit": float(index)} |
                        {f"pbt/donor_{k}": float(v) for k, v in donor_metrics.items()
                         if isinstance(v, (int, float)) and math.isfinite(float(v))})
    return index


def log_hyperparameters(tracking_uri: str, run_id: str, epoch: int, values: dict, extra: dict | None = None) -> None:
    """`pbt/<key>` = value at step `epoch` for each numeric value (the hyperparameters' schedule)."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = {f"pbt/{k}": float(v) for k, v in values.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)} | (extra or {})
    MlflowClient(tracking_uri).log_batch(run_id, metrics=[Metric(k, v, now, int(epoch)) for k, v in metrics.items()])

