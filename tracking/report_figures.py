"""Figures of a sweep report: pure matplotlib, plain lists in, a figure out (no MLflow, no Ray).

    history_figure(trials, metric, mode)          each trial's final metric in trial order, and the best so far
    importance_figure(importances, caption)       hyperparameter importances as horizontal bars
    intermediate_figure(trials, metric)           the metric by epoch per trial, the scheduler's stops marked
    slice_figure(trials, params, metric)          the metric against each hyperparameter (log axis where asked)
    lineage_figure(trials, exploits, keys)        PBT: one line per trial over epochs, an arrow per exploit

`trials` are `tracking.report_data.Trial`s (number, run_name, value, history, complete, stopped_at, params), or
for a sweep with seed repeats its `Configuration`s (value: the mean over seeds, drawn with its sd as error bar).
Sizes are for reading at 1x: figures about 1100 px wide at 100 dpi, text 12 pt or larger.
"""
from __future__ import annotations

import numpy as np

DPI = 100
STYLE = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 11,
         "xtick.labelsize": 11, "ytick.labelsize": 11}
COMPLETE = dict(marker="o", color="tab:blue", s=48, label="trained to the end", zorder=3)
STOPPED = dict(marker="x", color="tab:orange", s=64, label="stopped early", zorder=3)
UNFINISHED = dict(marker="s", color="tab:gray", s=40, label="interrupted or failed (last value)", zorder=3)


def state(t) -> str:
    """'complete', 'stopped' (by the scheduler) or 'unfinished' (interrupted, running or failed)."""
    return "complete" if t.complete else "stopped" if t.stopped_at else "unfinished"


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def fmt(value) -> str:
    """A hyperparameter value, short: 16, 3.0, 0.25, 7.9e-4."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if v != 0 and (abs(v) < 0.01 or abs(v) >= 1e4):
        mantissa, exponent = f"{v:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    s = f"{v:.2g}"
    return s if any(ch in s for ch in ".e") else s + ".0"


def log_x(ax) -> None:
    """A log x axis ticked at 1 and 3 of each decade, labelled as `fmt` writes values."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: fmt(float(t))))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _scored(trials):
    return [t for t in trials if t.value is not None and np.isfinite(t.value)]


def error_bars(ax, items, x) -> None:
    """Configurations' sd over seeds as vertical error bars at positions x (nothing for trials)."""
    sd = [getattr(t, "sd", None) for t in items]
    if items and all(v is not None for v in sd):
        ax.errorbar(x, [t.value for t in items], yerr=sd, fmt="none", ecolor="black", elinewidth=1.2, capsize=4,
                    zorder=2)


def history_figure(trials, metric: str, mode: str):
    """Each trial's final `metric` by trial number (dots: trained to the end; crosses: stopped early, their
    value at the stop) and the best so far among trials that trained to the end, as a step line."""
    pyplot = plt()
    scored = _scored(trials)
    if not scored:
        return None
    with pyplot.rc_context(STYLE):
        fig, ax = pyplot.subplots(figsize=(11, 4.6), dpi=DPI, layout="constrained")
        repeats = hasattr(scored[0], "sd")
        error_bars(ax, scored, [t.number for t in scored])
        for style, keep in ((COMPLETE, "complete"), (STOPPED, "stopped"), (UNFINISHED, "unfinished")):
            group = [t for t in scored if state(t) == keep]
            if group:
                label = {"complete": "mean ± sd over seeds", "unfinished": "not every seed trained to the end"}
                ax.scatter([t.number for t in group], [t.value for t in group],
                           **style | ({"label": label[keep]} if repeats and keep in label else {}))
        best, xs, ys = None, [], []
        better = max if mode == "max" else min
        for t in sorted(scored, key=lambda t: t.number):
            if t.complete:
                best = t.value if best is None else better(best, t.value)
            if best is not None:
                xs.append(t.number)
                ys.append(best)
        if xs:
            ax.step(xs, ys, where="post", color="tab:red", lw=2, label="best so far")
        ax.set_xlabel("configuration (at the trial its first seed started)" if repeats else
                      "trial (in the order it started)")
        ax.set_ylabel(f"mean {metric} over seeds" if repeats else metric)
        ax.set_xticks(sorted({t.number for t in scored}))
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        ax.set_title(f"optimisation history: {metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    return fig


def importance_figure(importances: dict[str, float], caption: str):
    """Horizontal bars, most important on top, each labelled with its share."""
    pyplot = plt()
    if not importances:
        return None
    names = list(importances)[::-1]
    with pyplot.rc_context(STYLE):
        fig, ax = pyplot.subplots(figsize=(11, 1.2 + 0.6 * len(names)), dpi=DPI, layout="constrained")
        values = [importances[n] for n in names]
        ax.barh(names, values, color="tab:blue")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}", va="center")
        ax.set_xlim(0, max(1.0, max(values) * 1.12))
        ax.set_xlabel("importance (share of the metric's variance)")
        ax.set_title(caption, loc="left", fontsize=12)
        ax.grid(axis="x", alpha=0.3)
    return fig


def intermediate_figure(trials, metric: str):
    """The metric by epoch, one line per trial (labelled with its number), a trial the scheduler stopped ending
    in a cross at its last epoch, annotated "stopped"."""
    pyplot = plt()
    drawn = [t for t in trials if t.history]
    if not drawn:
        return None
    with pyplot.rc_context(STYLE):
        fig, ax = pyplot.subplots(figsize=(11, 5.2), dpi=DPI, layout="constrained")
        colours = pyplot.cm.tab10(np.arange(len(drawn)) % 10)
        for t, colour in zip(drawn, colours):
            epochs, values = zip(*t.history)
            ax.plot(epochs, values, color=colour, lw=1.8, marker=".", ms=7,
                    ls={"complete": "-", "stopped": "--"}.get(state(t), ":"),
                    label=f"#{t.number} {t.run_name}" + ("" if state(t) != "unfinished" else f" ({t.status})"))
            if t.stopped_at:
                ax.scatter([epochs[-1]], [values[-1]], marker="x", s=110, lw=2.5, color=colour, zorder=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        epochs = sorted({e for t in drawn for e, _ in t.history})
        if len(epochs) <= 25:
            ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=10, frameon=False)
        ax.set_title(f"{metric} by epoch (dashed, ending in x: stopped early by the scheduler; dotted: "
                     f"interrupted or failed)", loc="left", fontsize=12)
    return fig


def slice_figure(trials, params: list[tuple[str, bool, list | None, tuple | None]], metric: str):
    """One panel per hyperparameter: (name, log axis, categories or None, the space's (low, high) or None). The
    metric against its value, dots coloured by trial number (crosses: stopped early), over the whole range
    searched; a categorical one at evenly spaced positions."""
    pyplot = plt()
    scored = [t for t in _scored(trials) if all(p[0] in t.params for p in params)]
    if not scored or not params:
        return None
    n = len(params)
    cols = min(n, 3)
    rows = -(-n // cols)
    with pyplot.rc_context(STYLE):
        fig, axes = pyplot.subplots(rows, cols, figsize=(11, 3.9 * rows), dpi=DPI, layout="constrained",
                                    squeeze=False, sharey=True)
        numbers = np.array([t.number for t in scored])
        norm = pyplot.Normalize(1, max(2, numbers.max()))
        for k, (name, log, categories, bounds) in enumerate(params):
            ax = axes.flat[k]
            if categories is not None:
                labels = [fmt(c) for c in categories]
                x = np.array([labels.index(fmt(t.params[name])) if fmt(t.params[name]) in labels else -1
                              for t in scored], dtype=float)
                ax.set_xticks(range(len(labels)), labels)
                ax.set_xlim(-0.5, len(labels) - 0.5)
            else:
                x = np.array([float(t.params[name]) for t in scored])
                if log and (x > 0).all():
                    log_x(ax)
                if bounds:  # the whole range searched, a little margin either side
                    lo, hi = min(bounds[0], x.min()), max(bounds[1], x.max())
                    pad = (hi / lo) ** 0.04 if log and lo > 0 else None
                    ax.set_xlim(*((lo / pad, hi * pad) if pad else (lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo))))
            y = np.array([t.value for t in scored])
            error_bars(ax, scored, x)
            states = np.array([state(t) for t in scored])
            art = None
            for mask, marker in ((states == "complete", "o"), (states == "stopped", "X"), (states == "unfinished", "s")):
                if mask.any():
                    art = ax.scatter(x[mask], y[mask], c=numbers[mask], cmap="viridis", norm=norm, s=70,
                                     marker=marker, edgecolors="black", linewidths=0.6, zorder=3)
            ax.set_xlabel(name + (" (log)" if log and categories is None else ""))
            ax.grid(alpha=0.3)
            if k % cols == 0:
                ax.set_ylabel(f"mean {metric} ± sd" if hasattr(scored[0], "sd") else metric)
        for ax in list(axes.flat)[n:]:
            ax.set_axis_off()
        repeats = hasattr(scored[0], "sd")
        if art is not None:
            from matplotlib.ticker import MaxNLocator

            bar = fig.colorbar(art, ax=axes, label="its first seed's trial" if repeats else "trial", pad=0.01)
            bar.locator = MaxNLocator(integer=True)
            bar.update_ticks()
        fig.suptitle(f"slice plots: mean {metric} ± sd over seeds (o: every seed trained to the end, "
                     f"square: not every seed)" if repeats else
                     f"slice plots: {metric} against each hyperparameter (o: trained to the end, X: stopped early, "
                     f"square: interrupted or failed)", fontsize=13)
    return fig


def lineage_figure(trials, exploits: list[dict], keys: list[str]):
    """PBT's lineage: one horizontal line per trial (y: its number) over the epochs it reported, and at each
    exploit an arrow from the donor's line to the recipient's at that epoch, labelled with the recipient's new
    values of `keys` (all new values when `keys` is empty). `exploits` as `Sweep.exploits()` gives them."""
    pyplot = plt()
    if not exploits:
        return None
    drawn = [t for t in trials if t.history] or list(trials)
    with pyplot.rc_context(STYLE):
        fig, ax = pyplot.subplots(figsize=(11, 1.6 + 0.55 * max(4, len(drawn))), dpi=DPI, layout="constrained")
        colours = pyplot.cm.tab10(np.arange(len(trials)) % 10)
        colour = {t.number: c for t, c in zip(trials, colours)}
        last = max([e for t in drawn for e, _ in t.history] + [e["epoch"] for e in exploits] + [1])
        for t in drawn:
            epochs = [e for e, _ in t.history] or [0, last]
            ax.plot([min(epochs), max(epochs)], [t.number, t.number], color=colour[t.number], lw=3, alpha=0.8,
                    solid_capstyle="round")
        for k, e in enumerate(exploits):
            y = e["recipient"].number
            new = {key: v for key, v in e["new"].items() if not keys or key in keys}
            label = ", ".join(f"{key}={fmt(v)}" for key, v in new.items())
            if e["donor"] is not None:
                y0 = e["donor"].number
                ax.annotate("", xy=(e["epoch"], y), xytext=(e["epoch"], y0), zorder=4,
                            arrowprops=dict(arrowstyle="-|>", color=colour[y0], lw=2, mutation_scale=18,
                                            shrinkA=4, shrinkB=4, connectionstyle="arc3,rad=0.25"))
            ax.scatter([e["epoch"]], [y], marker="o", s=60, color="white", edgecolors="black", zorder=5)
            end = e["epoch"] >= last  # at the last epoch: the label to the left of the point
            ax.annotate(label, (e["epoch"], y), xytext=(-8 if end else 8, 9 if k % 2 == 0 else -17),
                        textcoords="offset points", fontsize=11, zorder=6, ha="right" if end else "left",
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
        ax.set_yticks([t.number for t in drawn], [f"#{t.number} {t.run_name}"[:40] for t in drawn])
        ax.set_ylim(min(t.number for t in drawn) - 0.7, max(t.number for t in drawn) + 0.7)
        ax.invert_yaxis()
        ax.set_xlim(-0.2, last + 0.6 + 0.08 * last)
        ax.set_xlabel("epoch")
        if last <= 25:
            ax.set_xticks(range(0, last + 1))
        ax.grid(axis="x", alpha=0.3)
        ax.set_title("arrow: from the donor to the trial that continued from its checkpoint at that epoch\n"
                     "label: the trial's new values", loc="left", fontsize=12)
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes at its own dpi; the figure is closed."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    plt().close(fig)
    return buffer.getvalue()
