"""End of a sweep: the best trial's model registered, and the comparison logged on the parent run.

On the parent run: `best_*` metrics, the best config as `best.*` params, a table of all trials
(config and final metrics; `trials.json` in the UI's table view and `trials.csv`), a figure of
each hyperparameter against the metric with a parallel-coordinates panel, and the top trials'
latent traversals side by side.
"""
from __future__ import annotations

import math
import re
import tempfile

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from tracking.registry import default_metric, register
from tuning.trial import TRIAL_TAG

IMAGE = re.compile(r"^images/latent_traversal\+step\+(?P<step>\d+)\+.*\.png$")


def children(client: MlflowClient, experiment_id: str, parent_id: str) -> dict[str, object]:
    runs = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                              max_results=5000)
    return {r.data.tags.get(TRIAL_TAG): r for r in runs}


def trial_table(results, runs: dict) -> list[dict]:
    """One row per trial: id, status, child run, sampled config and last reported metrics."""
    rows = []
    for r in results:
        trial_id = (r.metrics or {}).get("trial_id")
        run = runs.get(trial_id)
        row = {"trial_id": trial_id, "run_id": run.info.run_id if run else None,
               "status": run.info.status if run else ("ERROR" if r.error else "?"),
               "final": bool(r.metrics.get("final")) if r.metrics else False,
               "epochs": int(r.metrics.get("epoch", 0)) if r.metrics else 0}
        row |= {f"config.{k}": v for k, v in (r.config or {}).items()}
        row |= {k: v for k, v in (r.metrics or {}).items()
                if isinstance(v, (int, float)) and not k.startswith(("time_", "timestamp", "training_iteration",
                                                                      "pid", "iterations_since"))
                and k not in ("final", "epoch", "done")}
        rows.append(row)
    return rows


def best_row(rows: list[dict], metric: str, mode: str) -> dict | None:
    """The best trial that trained to the end (and so logged a model)."""
    done = [r for r in rows if r["final"] and isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    if not done:
        return None
    return (max if mode == "max" else min)(done, key=lambda r: r[metric])


def summarize(results, sweep, uri: str, experiment_id: str, parent_id: str) -> dict:
    client = MlflowClient(uri)
    rows = trial_table(results, children(client, experiment_id, parent_id))
    metric, mode = sweep.metric, sweep.mode
    rows.sort(key=lambda r: (not r["final"], -(r.get(metric) or -math.inf) if mode == "max"
                             else (r.get(metric) if r.get(metric) is not None else math.inf)))
    best = best_row(rows, metric, mode)
    summary = {"parent_run_id": parent_id, "trials": rows, "best": best, "registration": None}
    log_comparison(rows, metric)
    if best is None:
        print("[aesweep] no trial trained to the end; nothing to register")
        mlflow.set_tag("best_trial", "none")
        return summary
    mlflow.log_metrics({f"best_{k}": float(v) for k, v in best.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epochs",)
                        and not k.startswith("config.") and math.isfinite(float(v))})
    mlflow.log_params({f"best.{k[7:]}": v for k, v in best.items() if k.startswith("config.")})
    mlflow.set_tags({"best_trial": best["trial_id"], "best_run_id": best["run_id"]})
    log_traversal_panel(client, [r for r in rows if r["final"] and r["run_id"]][:sweep.top_k], metric)
    summary["registration"] = register_best(client, best, sweep)
    print_summary(rows, best, metric, summary["registration"], uri, sweep)
    return summary


def register_best(client, best: dict, sweep):
    from tracking.store import dataset_label

    run = client.get_run(best["run_id"])
    model_uri = run.data.tags.get("pyfunc_model_uri")
    if not model_uri:
        print(f"[aesweep] best trial {best['trial_id']} logged no model; nothing to register")
        return None
    name = sweep.register_as or f"{sweep.base.model}-{dataset_label(sweep.base.dataset)}"
    labelled = "val_cluster_acc" in run.data.metrics  # logged every epoch on labelled data
    reg_metric, reg_mode = default_metric(sweep.base.model, labelled)
    value = run.data.metrics.get(reg_metric)
    if value is None:
        print(f"[aesweep] best trial has no {reg_metric}; nothing to register")
        return None
    registration = register(model_uri, name, best["run_id"], reg_metric, reg_mode, value,
                            run.data.tags.get("dataset_digest", ""), client)
    print(registration.message())
    mlflow.set_tag("registered_as", f"{name}/{registration.version}")
    return registration


def log_comparison(rows: list[dict], metric: str) -> None:
    if not rows:
        return
    import pandas as pd

    df = pd.DataFrame(rows)
    mlflow.log_table(df, artifact_file="trials.json")
    with tempfile.TemporaryDirectory() as tmp:
        df.to_csv(f"{tmp}/trials.csv", index=False)
        mlflow.log_artifact(f"{tmp}/trials.csv")
    try:
        fig = comparison_figure(df, metric)
        if fig is not None:
            mlflow.log_figure(fig, "figures/hyperparameters.png")
            import matplotlib.pyplot as plt

            plt.close(fig)
    except Exception as e:  # a figure is a view, not a result
        print(f"[aesweep] warning: could not draw the comparison figure: {e}")


def comparison_figure(df, metric: str):
    """Each searched hyperparameter against `metric`, and a parallel-coordinates panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = [c for c in df.columns if c.startswith("config.") and df[c].nunique() > 1
              and np.issubdtype(df[c].dtype, np.number)]
    if metric not in df or not params:
        return None
    data = df[params + [metric]].dropna()
    fig, axes = plt.subplots(1, len(params) + 1, figsize=(4 * (len(params) + 1), 3.6))
    for ax, p in zip(axes, params):
        ax.scatter(data[p], data[metric])
        ax.set_xlabel(p[7:])
        ax.set_ylabel(metric)
        if p[7:] in ("learning_rate", "sparsity_weight") and (data[p] > 0).all():
            ax.set_xscale("log")
    ax = axes[-1]
    cols = params + [metric]
    scaled = data[cols].copy()
    for c in cols:
        v = np.log10(scaled[c]) if c[7:] in ("learning_rate", "sparsity_weight") and (scaled[c] > 0).all() \
            else scaled[c]
        span = v.max() - v.min()
        scaled[c] = (v - v.min()) / span if span else 0.5
    colours = plt.cm.viridis(scaled[metric].to_numpy())
    for i, (_, row) in enumerate(scaled.iterrows()):
        ax.plot(range(len(cols)), row.to_numpy(), color=colours[i], alpha=0.8)
    ax.set_xticks(range(len(cols)), [c.replace("config.", "") for c in cols], rotation=30, ha="right")
    ax.set_title("parallel coordinates (scaled)")
    fig.tight_layout()
    return fig


def log_traversal_panel(client, top: list[dict], metric: str) -> None:
    """The top trials' final latent traversals side by side, one column per trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in top:
            found = [(int(m["step"]), a.path) for a in client.list_artifacts(row["run_id"], "images")
                     if (m := IMAGE.match(a.path))]
            if not found:
                continue
            path = client.download_artifacts(row["run_id"], max(found)[1], tmp)
            panels.append((row, plt.imread(path)))
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 4.2), squeeze=False)
    for ax, (row, image) in zip(axes[0], panels):
        ax.imshow(image, cmap="gray")
        ax.set_axis_off()
        ax.set_title(f"{row['trial_id']}\nlatent {row.get('config.latent_dim', '?')}, {metric} {row[metric]:.3g}",
                     fontsize=8)
    fig.tight_layout()
    mlflow.log_figure(fig, "figures/top_traversals.png")
    plt.close(fig)


def print_summary(rows, best, metric, registration, uri, sweep) -> None:
    keys = [k for k in rows[0] if k.startswith("config.")]
    print(f"\n[aesweep] best trials by {metric} ({sweep.mode}):")
    print(f"  {'trial':<14}{'status':<10}{'epochs':>7}{metric:>14}  " + "  ".join(k[7:] for k in keys))
    for r in [r for r in rows if r.get(metric) is not None][:5]:
        cfg = "  ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys)
        print(f"  {str(r['trial_id']):<14}{r['status']:<10}{r['epochs']:>7}{r[metric]:>14.4f}  {cfg}")
    if registration is not None:
        print(f"[aesweep] model: {registration.uri}")
    ui = "python -m tracking ui" + ("" if uri.endswith(f"{'/'}mlflow.db") else f" --tracking-uri {uri}")
    print(f"[aesweep] open the UI: {ui}   (then http://127.0.0.1:5000)")
