"""Figures of a sweep, drawn from its trial table: pure drawing, a pandas DataFrame (or rows) in, a figure out.

    swept_columns(df)                        the hyperparameter columns that vary across trials
    comparison_figure(df, metric)            each swept hyperparameter against the metric (early-stopped
                                             trials marked), and a parallel-coordinates panel in real values
    traversal_panel(panels, metric)          the top trials' final traversals side by side, pixel for pixel,
                                             titled with their run names (tuning.labels.trial_label)

Columns are hyperparameters named as TrainConfig fields (bare, or prefixed "config."); `stopped_early` is True
for a trial the scheduler stopped.
"""
from __future__ import annotations

import math
import numpy as np

from tracking.report_figures import fmt, log_x
from training.config import config_fields
from tuning.space import NOT_SEARCHABLE

LOG_SCALE = ("learning_rate", "sparsity_weight", "weight_decay")
HYPERPARAMETERS = {f.name for f in config_fields()} - set(NOT_SEARCHABLE)
PANEL_BUDGET_PX = 2400  # widest top_traversals.png before panels wrap onto another row (3 digit traversals)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def name(column: str) -> str:
    return column.removeprefix("config.")


def swept_columns(df) -> list[str]:
    """Hyperparameter columns with more than one value across the trials (the space's searched keys)."""
    return [c for c in df.columns if name(c) in HYPERPARAMETERS and df[c].nunique(dropna=True) > 1]


def _log_axis(column: str, values) -> bool:
    return name(column) in LOG_SCALE and bool((np.asarray(values, dtype=float) > 0).all())


def _stopped(df) -> np.ndarray:
    return df["stopped_early"].astype(bool).to_numpy() if "stopped_early" in df else np.zeros(len(df), bool)


def comparison_figure(df, metric: str):
    """Scatter of each swept numeric hyperparameter against `metric` (finished trials as dots, early-stopped
    as crosses; log axis for learning rates and sparsity weights), and below, parallel coordinates of all of
    them with real values at the ticks, each line coloured by the metric. None when there is nothing to plot."""
    plt = _plt()
    params = [c for c in swept_columns(df) if np.issubdtype(df[c].dtype, np.number)]
    if metric not in df or not params:
        return None
    data = df[df[metric].notna() & np.isfinite(df[metric].astype(float))]
    data = data.dropna(subset=params)
    if data.empty:
        return None
    stopped = _stopped(data)
    n = len(params)
    fig = plt.figure(figsize=(max(3.6 * n, 9.0), 7.6), layout="constrained")
    grid = fig.add_gridspec(2, n, height_ratios=[1, 1.15])
    for i, p in enumerate(params):
        ax = fig.add_subplot(grid[0, i])
        for mask, style in ((~stopped, dict(marker="o", color="tab:blue", label="trained to the end")),
                            (stopped, dict(marker="x", color="tab:orange", label="stopped early"))):
            if mask.any():
                ax.scatter(data[p][mask], data[metric][mask], s=36, **style)
        if _log_axis(p, data[p]):
            log_x(ax)
        ax.set_xlabel(name(p) + (" (log)" if _log_axis(p, data[p]) else ""))
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel(metric)
            ax.legend(fontsize=8, loc="best")
    _parallel_coordinates(fig.add_subplot(grid[1, :]), data, params + [metric], metric, stopped)
    fig.suptitle(f"{len(data)} trials: hyperparameters against {metric}", fontsize=12)
    return fig


def _ticks(column: str, values: np.ndarray, integer: bool) -> tuple[list[float], bool]:
    """Tick values for one parallel axis in the column's own units (its range's ends, then round values or an
    integer column's few values), none closer than 7% of the axis to another; and whether the axis is log."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    lo, hi = float(values.min()), float(values.max())
    log = _log_axis(column, values)
    unique = np.unique(values)
    inner = unique if integer and len(unique) <= 8 else \
        (LogLocator(subs=(1.0, 3.0)) if log else MaxNLocator(5)).tick_values(lo, hi)
    f = np.log10 if log else float
    span = (f(hi) - f(lo)) or 1.0
    kept: list[float] = []
    for t in [lo, hi, *inner]:
        if lo <= t <= hi and all(abs(f(t) - f(k)) >= 0.07 * span for k in kept):
            kept.append(float(t))
    return kept, log


def _parallel_coordinates(ax, data, cols: list[str], metric: str, stopped: np.ndarray) -> None:
    plt = _plt()
    scaled = np.zeros((len(data), len(cols)))
    for j, c in enumerate(cols):
        v = data[c].to_numpy(dtype=float)
        integer = np.issubdtype(data[c].dtype, np.integer)
        ticks, log = _ticks(c, v, integer)
        f = np.log10 if log else (lambda a: np.asarray(a, dtype=float))
        lo, hi = f(v.min()), f(v.max())
        span = hi - lo

        def unit(a, f=f, lo=lo, span=span):
            return (f(a) - lo) / span if span else np.full(np.shape(a), 0.5)

        scaled[:, j] = unit(v)
        ax.axvline(j, color="0.3", lw=1)
        for t in ticks:
            y = float(unit(t))
            ax.plot([j - 0.03, j], [y, y], color="0.3", lw=1)
            label = f"{t:.4g}" if c == metric else str(int(t)) if integer else fmt(float(t))
            ax.text(j - 0.05, y, label, ha="right", va="center", fontsize=9,
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
        ax.text(j, 1.04, name(c) + (" (log)" if log else ""), ha="center", va="bottom", fontsize=10)
    norm = plt.Normalize(data[metric].min(), data[metric].max())
    colours = plt.cm.viridis(norm(data[metric].to_numpy(dtype=float)))
    for i in range(len(data)):
        ax.plot(range(len(cols)), scaled[i], color=colours[i], lw=1.6, alpha=0.9,
                ls="--" if stopped[i] else "-")
    fig = ax.get_figure()
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label=metric, pad=0.01)
    ax.set_xlim(-0.4, len(cols) - 0.7)
    ax.set_ylim(-0.05, 1.12)
    ax.set_axis_off()
    ax.set_title("parallel coordinates (dashed: stopped early)", fontsize=10, loc="left")


def traversal_panel(panels: list[tuple[dict, np.ndarray]], metric: str):
    """[(trial row, its final traversal image, values in 0..255)], best first -> one figure with the images side by side at
    their own size (one image pixel per figure pixel at the figure's dpi), each titled with its rank, swept
    values and metric. Wraps onto more rows beyond PANEL_BUDGET_PX of width."""
    plt = _plt()
    dpi, gap, title_px = 100, 16, 46
    h = max(im.shape[0] for _, im in panels)
    w = max(im.shape[1] for _, im in panels)
    rows = math.ceil(len(panels) / max(1, PANEL_BUDGET_PX // (w + gap)))
    cols = math.ceil(len(panels) / rows)  # balanced: 4 panels as 2 x 2 rather than 3 + 1
    width, height = cols * (w + gap) + gap, rows * (h + title_px) + gap
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    for k, (row, image) in enumerate(panels):
        r, c = divmod(k, cols)
        ih, iw = image.shape[:2]
        x, top = gap + c * (w + gap), r * (h + title_px) + title_px
        ax = fig.add_axes((x / width, 1 - (top + ih) / height, iw / width, ih / height))
        ax.imshow(np.clip(image, 0, 255).astype(np.uint8), cmap="gray", vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_axis_off()
        value = row.get(metric)
        score = f"{metric} {value:.4g}" if isinstance(value, (int, float)) else f"{metric} ?"
        ax.set_title(f"#{k + 1}  {row.get('run_name', '')}\n{score}", fontsize=12, pad=4)
    return fig
