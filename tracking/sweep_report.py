"""A sweep's report: one self-contained HTML page (figures inside as PNG data URIs, no network needed to view it)
plus its PNGs, written locally and logged to the sweep's parent run as `report/index.html`.

    python -m tracking report [--sweep NAME | --run-id PARENT] [--out DIR] [--tracking-uri URI]

Sections: the settings (what varies, then the constants), the optimisation history, parameter importance
(fANOVA, tracking.report_data.importance), the metric by epoch with the scheduler's stops, slice plots, the top
trials' traversals and prior samples side by side, and every trial with links into the MLflow UI. A sweep with
seed repeats (`--repeats`) also gets its configurations ranked by the mean over seeds (mean ± sd, each seed's value),
and its history, slices and importance on those means; a PBT sweep gets its lineage (who exploited whom, when, with
which new values). A sweep writes it at its end (`write_at_end`); the command regenerates it for any finished or
interrupted sweep.
"""
from __future__ import annotations

import base64
import datetime
import html
import sys
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from tracking import report_figures as figures
from tracking.report_data import (ReportError, SWEEP_SETTINGS, Sweep, categories, image_paths, importance, is_log,
                                 load_sweep, spread, ui_base)

TOP = 4  # trials whose images the page shows
IMAGES = (("latent_traversal", "latent traversal"), ("samples", "prior samples"))
CSS = """
body { font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1500px;
       padding: 0 24px 48px; color: #1b1b1b; }
h1 { font-size: 28px; margin: 24px 0 4px; } h2 { font-size: 22px; margin: 36px 0 8px; border-bottom: 1px solid #ddd; }
p.note { color: #444; margin: 4px 0 12px; }
table { border-collapse: collapse; font-size: 15px; } th, td { padding: 4px 12px; text-align: left;
       border-bottom: 1px solid #e4e4e4; vertical-align: top; } th { background: #f4f4f4; }
tr.group th { background: #e8eef6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.figure { display: block; max-width: 100%; height: auto; }
.trials { display: flex; flex-wrap: wrap; gap: 28px; } .trial { border: 1px solid #ddd; padding: 10px 14px; }
.trial h3 { font-size: 17px; margin: 0 0 6px; } .pair { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.pair figure { margin: 0; } .pair figcaption { font-size: 14px; color: #444; }
.pair img { image-rendering: pixelated; display: block; }
code { font-size: 14px; background: #f4f4f4; padding: 1px 4px; } a { color: #0b5cad; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def esc(value) -> str:
    return html.escape(str(value))


class Page:
    """The page's sections as HTML, and its PNGs by file name (written beside index.html)."""

    def __init__(self, sweep: Sweep, ui: str):
        self.sweep, self.ui = sweep, ui
        self.parts: list[str] = []
        self.pngs: dict[str, bytes] = {}

    def run_link(self, run_id: str, text: str | None = None) -> str:
        url = f"{self.ui}/#/experiments/{self.sweep.experiment_id}/runs/{run_id}"
        return f'<a href="{esc(url)}">{esc(text or run_id)}</a>'

    def model_link(self, model_uri: str | None) -> str:
        if not model_uri:
            return "-"
        model_id = model_uri.removeprefix("models:/")
        url = f"{self.ui}/#/experiments/{self.sweep.experiment_id}/models/{model_id}"
        return f'<a href="{esc(url)}"><code>{esc(model_uri)}</code></a>'

    def figure(self, file: str, fig, alt: str) -> str:
        if fig is None:
            return f'<p class="note">(nothing to draw: {esc(alt)})</p>'
        self.pngs[file] = figures.png_bytes(fig)
        return f'<img class="figure" alt="{esc(alt)}" src="{data_uri(self.pngs[file])}">'

    def section(self, ident: str, title: str, body: str) -> None:
        self.parts.append(f'<section id="{ident}"><h2>{esc(title)}</h2>\n{body}\n</section>')

    def html(self) -> str:
        s = self.sweep
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        status = "RUNNING: written at the sweep's end, before the run closed" if s.status == "RUNNING" else s.status
        return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>Sweep {esc(s.name)}</title><style>{CSS}</style></head><body>\n"
                f"<h1>Sweep {esc(s.name)}</h1>\n"
                f'<p class="note">parent run {self.run_link(s.run_id)} ({esc(status)}) in experiment '
                f"{esc(s.experiment_name)}; {len(s.trials)} trials; ranked by {esc(s.metric)} "
                f"({'higher' if s.mode == 'max' else 'lower'} is better). Written {when}; links open the MLflow "
                f"UI at {esc(self.ui)} (<code>python -m tracking ui</code>).</p>\n"
                + "\n".join(self.parts) + "\n</body></html>\n")


def settings_section(page: Page) -> None:
    s, best = page.sweep, page.sweep.best()
    if s.configurations:  # seed repeats: the best configuration by its mean
        best = s.configurations[0] if s.configurations[0].complete else None
    rows = ['<tr class="group"><th colspan="4">varies across trials</th></tr>',
            f"<tr><th>hyperparameter</th><th>search space</th><th>values tried</th>"
            f"<th>best {'configuration' if s.configurations else 'trial'}'s</th></tr>"]
    for k, spec in s.space.items():
        values = [t.params[k] for t in s.trials if k in t.params]
        space = ", ".join(f"{kind} {arg}" for kind, arg in spec.items()) or "?"
        numeric = values and all(isinstance(v, (int, float)) for v in values)
        tried = (f"{figures.fmt(min(values))} .. {figures.fmt(max(values))}" if numeric and len(set(values)) > 3
                 else ", ".join(figures.fmt(v) for v in sorted(set(values), key=None if numeric else str)))
        chosen = figures.fmt(best.params[k]) if best and k in best.params else "-"
        rows.append(f"<tr><td>{esc(k)}</td><td>{esc(space)}</td><td>{esc(tried)}</td><td>{esc(chosen)}</td></tr>")
    rows.append('<tr class="group"><th colspan="4">the same in every trial</th></tr>')
    ordered = [k for k in SWEEP_SETTINGS if k in s.settings] + sorted(k for k in s.settings if k not in SWEEP_SETTINGS)
    for i in range(0, len(ordered), 2):  # two settings a row: the table stays short
        cells = "".join(f"<td>{esc(k)}</td><td><code>{esc(s.settings[k])}</code></td>" for k in ordered[i:i + 2])
        rows.append(f"<tr>{cells}</tr>")
    page.section("settings", "Settings", "<table>" + "\n".join(rows) + "</table>")


def configurations_section(page: Page) -> None:
    """Seed repeats: the configurations ranked by the mean over seeds, mean ± sd and each seed's value."""
    s = page.sweep
    keys = [k for k in s.space if any(k in c.params for c in s.configurations)]
    head = "".join(f"<th>{esc(k)}</th>" for k in ["rank", *keys, f"{s.metric} mean ± sd", "seeds", "each seed"])
    rows = []
    for c in s.configurations:
        cells = "".join(f'<td class="num">{esc(figures.fmt(c.params[k]) if k in c.params else "-")}</td>' for k in keys)
        value = f"{c.value:.4f} ± {c.sd:.4f}" if c.value is not None else "-"
        if c.seeds:
            each = "<br>".join(f"{page.run_link(t.run_id, 'seed ' + str(t.params.get('seed', '?')))}: "
                               + (f"{t.value:.4f}" if t.value is not None else "-")
                               + ("" if t.complete else f" ({esc('stopped' if t.stopped_at else t.status)})")
                               for t in c.seeds)
        else:
            each = esc(", ".join(f"{v:.4f}" for v in c.values) or "-")
        note = "" if c.complete else ' <span class="note">(not every seed trained to the end: cannot win)</span>'
        rows.append(f'<tr><td class="num">{c.rank}</td>{cells}<td class="num">{value}{note}</td>'
                    f'<td class="num">{len(c.values)}</td><td>{each}</td></tr>')
    body = (f'<p class="note">Each configuration was trained with several seeds; configurations are ranked by the '
            f"mean {esc(s.metric)} over their seeds (sample sd), those whose every seed trained to the end first "
            f"(from the parent run's <code>configurations.json</code>).</p>"
            f"<table><tr>{head}</tr>\n" + "\n".join(rows) + "</table>")
    page.section("configurations", "Configurations (mean ± sd over seeds)", body)


def pbt_section(page: Page) -> None:
    """PBT: the lineage figure and a table of every exploit."""
    s = page.sweep
    exploits = s.exploits()
    rows = []
    for e in exploits:
        new = ", ".join(f"{k}={figures.fmt(v)}" for k, v in e["new"].items() if not s.pbt_keys or k in s.pbt_keys)
        donor = (f"#{e['donor'].number} " + page.run_link(e["donor"].run_id, e["donor"].run_name) if e["donor"]
                 else esc(e["donor_trial"] or "?"))
        r = e["recipient"]
        rows.append(f'<tr><td class="num">{e["epoch"]}</td><td>#{r.number} {page.run_link(r.run_id, r.run_name)}'
                    f' (exploit {e["index"]})</td><td>{donor}</td><td><code>{esc(new)}</code></td></tr>')
    keys = ", ".join(s.pbt_keys) or "the mutable hyperparameters"
    body = (f'<p class="note">Population Based Training: at an exploit, a trial stopped its own training, continued '
            f"from the donor's checkpoint of that epoch and went on with new values of {esc(keys)} (the child "
            f"runs' tags <code>pbt_exploit_&lt;n&gt;</code> and metrics <code>pbt/*</code>). Exploits: "
            f"{len(exploits)}.</p>"
            + page.figure("pbt-lineage.png", figures.lineage_figure(s.trials, exploits, s.pbt_keys), "PBT lineage")
            + "<table><tr><th>epoch</th><th>trial (recipient)</th><th>donor</th><th>new values</th></tr>\n"
            + "\n".join(rows) + "</table>")
    page.section("pbt", "PBT lineage", body)


def figure_sections(page: Page) -> None:
    s = page.sweep
    items = s.configurations or s.trials  # with seed repeats: one point per configuration, its mean ± sd
    means = (f'<p class="note">One point per configuration: the mean {esc(s.metric)} over its seeds, the bar its sd; '
             f"{{}}.</p>") if s.configurations else "{}"
    page.section("history", "Optimisation history", means.format(
        "best so far among configurations whose every seed trained to the end") + page.figure(
        "history.png", figures.history_figure(items, s.metric, s.mode), f"{s.metric} of each trial in order"))
    try:
        values, caption = importance(s)
    except Exception as e:  # an analysis of a view: the rest of the page stands
        values, caption = {}, f"fANOVA failed: {type(e).__name__}: {e}"
    few = f" Few {'configurations' if s.configurations else 'trials'} make it a rough guide." if len(items) < 20 else ""
    shown = esc(spread(s)) if s.configurations else ""
    page.section("importance", "Parameter importance",
                 f'<p class="note">{esc(caption)}.{few}</p>'
                 + (f'<p class="note" id="spread">Computed on the configurations\' means over seeds, not on single '
                    f"seeds.{' ' + shown + '.' if shown else ''}</p>" if s.configurations else "")
                 + page.figure("importance.png", figures.importance_figure(values, f"importance for {s.metric}"),
                               "parameter importance"))
    stopped = [t for t in s.trials if t.stopped_at]
    scheduler = s.settings.get("scheduler", "the scheduler").upper()
    note = (f"Stopped early by {scheduler}: " + "; ".join(f"#{t.number} {esc(t.run_name)} at epoch {t.stopped_at}"
                                                          for t in stopped)) if stopped else \
        f"No trial was stopped early (scheduler {esc(scheduler)})."
    page.section("intermediate", "Intermediate values by epoch",
                 f'<p class="note" id="stops">{note}</p>'
                 + page.figure("intermediate.png", figures.intermediate_figure(s.trials, s.metric),
                               f"{s.metric} by epoch"))
    params = []
    for k, spec in s.space.items():
        values = [t.params[k] for t in s.trials if k in t.params]
        if values:
            kind, arg = next(iter(spec.items())) if spec else (None, None)
            bounds = tuple(arg) if kind in ("uniform", "loguniform", "randint") else None
            params.append((k, is_log(spec), categories(spec, values), bounds))
    page.section("slices", "Slice plots", means.format("colour: the trial its first seed ran in")
                 + page.figure("slices.png", figures.slice_figure(items, params, s.metric),
                               "the metric against each hyperparameter"))


def top_section(page: Page, top: int, client: MlflowClient) -> None:
    s = page.sweep
    cards = []
    with tempfile.TemporaryDirectory() as tmp:
        for rank, t in enumerate(s.ranked()[:top], start=1):
            shown = []
            for key, label in IMAGES:
                path = image_paths(client, t.run_id, key)
                if path is None:
                    continue
                png = Path(client.download_artifacts(t.run_id, path, tmp)).read_bytes()
                file = f"top{rank}-{key}.png"
                page.pngs[file] = png
                shown.append(f'<figure><img alt="{esc(label)} of trial {t.number}" src="{data_uri(png)}">'
                             f"<figcaption>{esc(label)} (epoch {esc(path.split('+step+')[1].split('+')[0])})"
                             f"</figcaption></figure>")
            cards.append(f'<div class="trial"><h3>#{rank}: trial {t.number}, {page.run_link(t.run_id, t.run_name)}'
                         f" &mdash; {esc(s.metric)} {t.value:.4g}</h3>"
                         f'<div class="pair">{"".join(shown) or "(no images logged)"}</div></div>')
    body = ('<p class="note">The best trials that trained to the end, best first; traversals: rows are latent '
            "dimensions (most active first), columns -3 to +3 prior standard deviations.</p>"
            + (f'<div class="trials">{"".join(cards)}</div>' if cards else '<p class="note">(no trial trained to '
                                                                           "the end)</p>"))
    page.section("top-trials", "Top trials", body)


def trials_section(page: Page) -> None:
    s = page.sweep
    keys = list(s.space)
    head = "".join(f"<th>{esc(k)}</th>" for k in ["#", "run", "status", *keys, s.metric, "model"])
    rows = []
    for t in s.trials:
        status = f"stopped at epoch {t.stopped_at}" if t.stopped_at else t.status
        if t.failure_reason:
            status += f": {t.failure_reason[:200]}"
        value = f"{t.value:.4f}" if t.value is not None else "-"
        cells = "".join(f'<td class="num">{esc(figures.fmt(t.params[k]) if k in t.params else "-")}</td>' for k in keys)
        rows.append(f'<tr><td class="num">{t.number}</td><td>{page.run_link(t.run_id, t.run_name)}</td>'
                    f'<td>{esc(status)}</td>{cells}<td class="num">{value}</td><td>{page.model_link(t.model_uri)}</td></tr>')
    registered = s.tags.get("registered_as")
    extra = ""
    if registered and "/" in registered:
        name, version = registered.rsplit("/", 1)
        url = f"{page.ui}/#/models/{name}/versions/{version}"
        extra = (f'<p class="note">Registered from the best trial: <a href="{esc(url)}"><code>models:/{esc(name)}/'
                 f"{esc(version)}</code></a> (model {esc(name)} version {esc(version)}).</p>")
    page.section("trials", "Trials", extra + f"<table><tr>{head}</tr>\n" + "\n".join(rows) + "</table>")


def build(sweep: Sweep, out: Path, ui_url: str | None = None, top: int = TOP) -> Path:
    """Write out/index.html and its PNGs; returns the page's path."""
    page = Page(sweep, ui_base(sweep.uri, ui_url))
    settings_section(page)
    if sweep.configurations:
        configurations_section(page)
    figure_sections(page)
    if any(t.exploits for t in sweep.trials):
        pbt_section(page)
    top_section(page, top, MlflowClient(sweep.uri))
    trials_section(page)
    out.mkdir(parents=True, exist_ok=True)
    for file, png in page.pngs.items():
        (out / file).write_bytes(png)
    index = out / "index.html"
    index.write_text(page.html(), encoding="utf-8")
    return index


def write(uri: str, out: Path | None, name: str | None = None, run_id: str | None = None,
          ui_url: str | None = None, log: bool = True) -> tuple[Sweep, Path]:
    """Load the sweep, write its report in `out` (default ./reports/<sweep name>) and log it to the parent."""
    sweep = load_sweep(uri, name, run_id)
    index = build(sweep, out or Path("reports") / sweep.name.replace("/", "_").lstrip("."), ui_url)
    if log:
        MlflowClient(uri).log_artifacts(sweep.run_id, str(index.parent), "report")
    return sweep, index


def write_at_end(uri: str, parent_id: str, out: Path) -> None:
    """The sweep's end: its report beside its Tune state and on the parent run. A view, never a failure."""
    try:
        _, index = write(uri, out, run_id=parent_id)
        print(f"[aesweep] report: {index} (and report/index.html on the parent run)")
    except Exception as e:
        print(f"[aesweep] warning: could not write the sweep report: {type(e).__name__}: {e}", file=sys.stderr)


def main(args) -> int:
    """`python -m tracking report`: one line and exit code 2 for a sweep that cannot be found."""
    from tracking.store import TrackingError, prepare, resolve_uri

    uri = resolve_uri(args.tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        print(f"error: no tracking store at {uri[len('sqlite:///'):]}; pass --tracking-uri or run from the "
              f"project folder", file=sys.stderr)
        return 2
    try:
        prepare(uri)
        sweep, index = write(uri, Path(args.out) if args.out else None, args.sweep, args.run_id, args.ui_url,
                             log=not args.no_log)
    except (ReportError, TrackingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[aesweep] report of sweep {sweep.name} ({len(sweep.trials)} trials): {index.resolve()}"
          + ("" if args.no_log else f"; logged to run {sweep.run_id} as report/index.html"))
    return 0
