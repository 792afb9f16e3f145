"""End of a sweep: the best trial's model registered, and the comparison logged on the parent run.

On the parent run: the sweep metric's best value and the few metrics a user ranks by (`best_*`),
the best trial's swept values (`best.*` params), a table of all trials with flat columns the UI's
table view shows (`trials.json`, and `trials.csv`: trial, run name, status, stopped_early, epochs,
swept values, the metric and key metrics), a figure of each hyperparameter against the metric with
a parallel-coordinates panel, and the top trials' latent traversals side by side.
"""
from __future__ import annotations

import math
import os
import shlex
import sys
import tempfile
from pathlib import Path

from tracking import sweep_runs
from tracking.report import KEY_METRICS
from tracking.sweep_runs import STOPPED_AT, STOPPED_EARLY, SweepRuns, last_line
from tuning import ROOT
# Besides the sweep metric, what the table and the parent's best_* show: the figures a user ranks by.
RANKING_METRICS = KEY_METRICS + ("val_active_units",)


def trial_table(results, runs: dict, swept: tuple[str, ...], metric: str) -> list[dict]:
    """One row per trial, flat columns: trial, run_name, status, stopped_early, epochs, the swept values,
    `metric`, the RANKING_METRICS it has, and run_id."""
    rows = []
    for r in results:
        metrics, config = r.metrics or {}, r.config or {}
        trial_id = metrics.get("trial_id")
        run = runs.get(trial_id)
        tags = run.data.tags if run else {}
        row = {"trial": trial_id, "run_name": run.info.run_name if run else trial_id,
               "status": run.info.status if run else ("FAILED" if r.error else "?"),
               "stopped_early": tags.get(STOPPED_EARLY) == "true",
               "epochs": int(tags.get(STOPPED_AT) or metrics.get("epoch", 0))}
        row |= {k: config[k] for k in swept if k in config}
        row |= {k: metrics[k] for k in (metric, *RANKING_METRICS) if isinstance(metrics.get(k), (int, float))}
        row["run_id"] = run.info.run_id if run else None
        row["failure_reason"] = tags.get("failure_reason") or (last_line(r.error) if r.error else None)
        rows.append(row)
    return rows


def trained_to_end(row: dict) -> bool:
    return row["status"] == "FINISHED" and not row["stopped_early"]


def best_row(rows: list[dict], metric: str, mode: str) -> dict | None:
    """The best trial that trained to the end (and so logged a model)."""
    done = [r for r in rows if trained_to_end(r) and isinstance(r.get(metric), (int, float))
            and math.isfinite(r[metric])]
    if not done:
        return None
    return (max if mode == "max" else min)(done, key=lambda r: r[metric])


def summarize(results, sweep, uri: str, experiment_id: str, parent_id: str) -> dict:
    runs = SweepRuns(uri, experiment_id, parent_id)
    metric, mode = sweep.metric, sweep.mode
    rows = trial_table(results, runs.children(), sweep.swept, metric)
    repeated = getattr(sweep, "repeats", 1) > 1
    if repeated:
        from tuning import repeats

        repeats.add_seeds(rows, [r.config for r in results], sweep.base.seed)
    rows.sort(key=lambda r: (not trained_to_end(r), -(r.get(metric) or -math.inf) if mode == "max"
                             else (r.get(metric) if r.get(metric) is not None else math.inf)))
    best = best_row(rows, metric, mode)
    groups = None
    if repeated:  # ranked by the mean over seeds; the champion is the best configuration's best seed
        from tracking.sweep_history import log_configurations

        groups = repeats.configurations(rows, sweep.swept, metric, mode, trained_to_end)
        best = groups[0]["best"] if groups and groups[0]["complete"] else None
        log_configurations(repeats.table(groups, sweep.swept, metric), metric, groups[0] if best else None)
    summary = {"parent_run_id": parent_id, "trials": rows, "best": best, "registration": None,
               "configurations": groups}
    log_comparison(rows, metric)
    if best is None:
        print("[aesweep] no trial trained to the end; nothing to register")
        sweep_runs.log_parent(tags={"best_trial": "none"})
        print_summary(rows, best, metric, None, uri, sweep)
        return summary
    sweep_runs.log_parent(metrics={f"best_{k}": float(best[k]) for k in (metric, *RANKING_METRICS)
                                   if isinstance(best.get(k), (int, float)) and math.isfinite(float(best[k]))})
    sweep_runs.log_parent(params={f"best.{k}": best[k] for k in sweep.swept if k in best},
                          tags={"best_trial": best["trial"], "best_run_id": best["run_id"],
                                "best_run_name": best["run_name"]})
    log_traversal_panel(runs, rows, metric, sweep.top_k)
    summary["registration"] = register_best(runs.client, best, sweep)
    if groups and summary["registration"] is not None:
        from tracking.sweep_history import tag_champion

        tag_champion(runs.client, summary["registration"].name, summary["registration"].version, metric, groups[0])
    if groups:
        repeats.print_configurations(groups, metric, mode)
    print_summary(rows, best, metric, summary["registration"], uri, sweep)
    return summary


def register_best(client, best: dict, sweep):
    """Register the best trial's model (`client`: an MlflowClient on the sweep's store; see
    tracking.sweep_runs.register_run)."""
    from tracking.store import dataset_label

    name = sweep.register_as or f"{sweep.base.model}-{dataset_label(sweep.base.dataset)}"
    return sweep_runs.register_run(client, best["run_id"], best["run_name"], name, sweep.base.model)


def log_comparison(rows: list[dict], metric: str) -> None:
    if not rows:
        return
    import pandas as pd

    df = pd.DataFrame(rows)
    sweep_runs.log_trials(df)
    try:
        from tuning.figures import comparison_figure

        fig = comparison_figure(df, metric)
        if fig is not None:
            sweep_runs.log_figure(fig, "figures/hyperparameters.png")
            import matplotlib.pyplot as plt

            plt.close(fig)
    except Exception as e:  # a figure is a view, not a result
        print(f"[aesweep] warning: could not draw the comparison figure: {e}")


def log_traversal_panel(runs: SweepRuns, rows: list[dict], metric: str, top_k: int) -> None:
    """The `top_k` best trials that trained to the end: their final latent traversals side by side
    (tuning/figures.py draws it)."""
    from matplotlib.image import imread

    from tuning.figures import traversal_panel

    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in [r for r in rows if trained_to_end(r) and r["run_id"]][:top_k]:
            path = runs.final_traversal(row["run_id"], tmp)
            if path is None:
                continue
            image = imread(path)  # floats in [0, 1]: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA
            panels.append((row, (image if image.ndim == 2 else image[..., :3]) * 255))
    if not panels:
        return
    fig = traversal_panel(panels, metric)
    sweep_runs.log_figure(fig, "figures/top_traversals.png")
    import matplotlib.pyplot as plt

    plt.close(fig)


def print_summary(rows, best, metric, registration, uri, sweep) -> None:
    """The top trials, then the closing lines: trials stopped early, the selection metric, the
    registered model and a command that opens the UI from where the user stands."""
    width = max([len(str(r["run_name"])) for r in rows] + [5]) + 2
    # The VAE's active latent units on the validation images (Burda et al.): 0 is a collapsed posterior.
    active = any("val_active_units" in r for r in rows)
    print(f"\n[aesweep] best trials by {metric} ({sweep.mode}):")
    print(f"  {'trial':<{width}}{'status':<10}{'epochs':>7}{metric:>14}" + (f"{'active units':>14}" if active else ""))
    for r in [r for r in rows if r.get(metric) is not None][:5]:
        status = "stopped" if r["stopped_early"] else r["status"]
        units = f"{r['val_active_units']:>14.0f}" if active and "val_active_units" in r else ""
        print(f"  {str(r['run_name']):<{width}}{status:<10}{r['epochs']:>7}{r[metric]:>14.4f}{units}")
    stopped = [f"{r['run_name']} (epoch {r['epochs']})" for r in rows if r["stopped_early"]]
    failed = [str(r["run_name"]) for r in rows if r["status"] == "FAILED"]
    print(f"[aesweep] stopped early by {sweep.scheduler.upper()}: " + ("; ".join(stopped) if stopped else "none"))
    if failed:
        print(f"[aesweep] failed: {'; '.join(failed)} (tag failure_reason on each run)")
    direction = "higher" if sweep.mode == "max" else "lower"
    print(f"[aesweep] selected by {metric} on validation data ({direction} is better)"
          + (f": {best['run_name']} with {best[metric]:.4f}" if best else ""))
    if registration is not None:
        print(f"[aesweep] registered model: {registration.uri} ({registration.name} version {registration.version})")
    print(f"[aesweep] open the UI: {ui_command(uri)}   (then http://127.0.0.1:5000, experiment "
          f"{sweep_runs.parent_experiment()})")


def ui_command(uri: str, cwd: str | None = None) -> str:
    """`make ui` under make from the project root on its store; else the venv's python, from here."""
    here = Path(cwd or os.getcwd()).resolve()
    project_store = f"sqlite:///{ROOT / 'mlflow.db'}"
    if os.environ.get("MAKELEVEL") and here == ROOT and uri == project_store:
        return "make ui"
    python = Path(sys.executable)
    shown = os.path.relpath(python, here) if python.is_relative_to(here) else str(python)
    command = f"{shlex.quote(shown)} -m tracking ui"
    if here != ROOT:
        command = f"cd {shlex.quote(str(ROOT))} && {command}"
    from tracking.secrets import safe_uri

    return command + ("" if uri == project_store else f" --tracking-uri {shlex.quote(safe_uri(uri))}")
