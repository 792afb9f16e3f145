"""Sweep overhead: the same trainings back to back in one plain process, and as a Ray Tune sweep.

    python -m benchmarks.sweep                  # both settings: 11 min on the 2 cores at load 13-22, 27 at 41
    python -m benchmarks.sweep --only short     # the `make sweep` settings only
    python -m benchmarks.sweep --quick          # 2 trials of 2 epochs: checks the pipeline, not the speed

For each setting, (b) runs the sweep as `make sweep` does (`mlflow run . --env-manager local`, the
MLproject's `main`: Ray Tune, a trial per Ray slot, MLflow logging; 2 slots on 2 cores), its trials
writing phase timestamps (tuning/timing.py) to a file; then (a) runs the very trainings the sweep ran
(each trial's config and epochs as trained, with a final evaluation where the trial had one: not for
trials ASHA stopped) back to back in one plain Python process, no Ray, no MLflow.
Settings: `short` is `make sweep` itself (8 trials of up to 20 epochs in batches of 32, ASHA); `long`
runs 4 trials of about 30 s each (`--long-epochs`, FIFO: every trial to the end).

Reported (issue 13): sweep efficiency = sum of the trials' training-step time / (wall time x
concurrency), where a trial's training-step time is its epochs' `seconds` as the loop reports them
(the epoch's training steps and its validation; the first epoch includes tracing, hence also the
steady-state figure without each trial's first epoch); time to the first reported result; the per-trial
overhead (a trial's time that is not epochs, plus the wait for its process between trials), broken
down by phase; peak resident memory per trial (each trial's own peak, also in a reused process);
the load average during the run (the machine may be shared); the start-up before the first trial and the tail
after the last (Tune's end, the summary, the report, the exit), split by the driver's marks. The wall time is the
whole command's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.host import LoadSampler, code_version, machine

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 2  # the sweep's trials at once: 1 CPU per trial on the 2-core machine
SHORT = {"num_samples": 8}  # the MLproject's defaults: the `make sweep` settings
LONG_TRIALS, LONG_SECONDS = 4, 30.0
LONG_EPOCHS = 80  # the long trials' epochs when no short sweep ran before to time a steady epoch
QUICK = {"num_samples": 2, "max_epochs": 2}
EXPERIMENT = "aesweep-vae-digits"
EVALUATE = "_evaluate"  # a plain training's final evaluation: only where the sweep's trial had one
TARGETS = {"overhead_s": 3.0, "efficiency": {"short": 0.5, "long": 0.8}, "make_sweep_s": 60.0}

# The rows of the per-trial overhead breakdown (seconds per trial, mean over the trials).
PHASES = [
    ("process", "process start, between trials on a slot"),
    ("child_run", "MLflow child run creation (with importing mlflow)"),
    ("imports", "imports (TensorFlow, training, tracking)"),
    ("data", "data"),
    ("run_start", "MLflow run start (start_run, tags, params, dataset lineage)"),
    ("build", "model build (strategy, variables)"),
    ("checkpoint", "checkpointing (the loop's when due, Tune's report with checkpoint)"),
    ("metrics", "per-epoch MLflow metric logging"),
    ("images", "images (per epoch and at the end, loss figure)"),
    ("final_eval", "final evaluation"),
    ("model", "model logging"),
    ("run_end", "final report and run end"),
    ("other", "other (gaps between the marks)"),
]


# The rows of the start-up (seconds from the command's launch to the first trial's start), from the driver's marks.
STARTUP = [
    ("driver:start", "until the sweep driver runs (`mlflow run`, the driver's imports)"),
    ("driver:ray", "MLflow store and Ray start"),
    ("driver:fit", "parent run, Tune set-up"),
    ("first_trial", "the first trial's process start"),
]


# The rows of the tail (seconds from the last trial's end to the command's exit), from the driver's marks.
TAIL = [
    ("driver:tuned", "Tune's end after the last trial"),
    ("driver:summary", "the summary (best model registered, comparison figures, trials.json)"),
    ("driver:report", "the sweep report (importance, figures, HTML)"),
    ("driver:done", "the parent run's end"),
    ("exit", "the driver's exit (Ray's shutdown), `mlflow run`'s end"),
]


# --- running -----------------------------------------------------------------------------------------

def venv_env(extra: dict) -> dict:
    """This interpreter's bin first on PATH (`mlflow` and `python` by name, as `make sweep` sets it)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_RUN_ID", None)
    return env | extra


def sweep_command(params: dict) -> list[str]:
    cmd = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "--env-manager", "local",
           "--experiment-name", EXPERIMENT]
    for k, v in params.items():
        cmd += ["-P", f"{k}={v}"]
    return cmd


def run_timed(cmd: list[str], env: dict, log: Path) -> dict:
    """Run `cmd` from the project folder; its wall time, exit code and load average."""
    with LoadSampler() as load, open(log, "w") as out:
        t0 = time.time()
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        t1 = time.time()
    if code != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"error: {' '.join(cmd)} exited {code}; its output ends:\n{tail}")
    return {"launch": t0, "exit": t1, "wall_s": t1 - t0, "load": load.summary()}


def run_sweep(params: dict, work: Path, name: str) -> dict:
    timing, db = work / f"{name}-sweep.jsonl", work / f"{name}-mlflow.db"
    uri = f"sqlite:///{db}"
    from tracking.store import prepare
    from tracking.sweep_runs import model_log_starts

    # The experiment made beforehand, its artifacts beside the store (not in the project folder).
    prepare(uri, EXPERIMENT, artifact_location=(work / f"{name}-artifacts").as_uri())
    cmd = sweep_command(params)
    run = run_timed(cmd, venv_env({"AESWEEP_TIMING": str(timing), "MLFLOW_TRACKING_URI": uri}),
                    work / f"{name}-sweep.log")
    run |= {"command": "mlflow run . --env-manager local --experiment-name " + EXPERIMENT +
            "".join(f" -P {k}={v}" for k, v in params.items()),
            "model_starts": model_log_starts(uri, EXPERIMENT)}
    (work / f"{name}-sweep-run.json").write_text(json.dumps(run))  # for --reanalyze
    remove_sweep_state(work / f"{name}-sweep.log")
    return run | {"events": read_events(timing)}


def remove_sweep_state(log: Path) -> None:
    """Tune's state of the sweep just measured (under the project's ray_results/, where `mlflow run` puts it): gone."""
    import re

    found = re.search(r"\[aesweep\] sweep (\S+): parent MLflow run", log.read_text())
    if found and (state := ROOT / "ray_results" / found.group(1)).is_dir():
        shutil.rmtree(state, ignore_errors=True)


def run_plain(configs: list[dict], work: Path, name: str) -> dict:
    spec, timing = work / f"{name}-plain.json", work / f"{name}-plain.jsonl"
    spec.write_text(json.dumps(configs))
    cmd = [sys.executable, "-m", "benchmarks.sweep", "--plain", str(spec)]
    run = run_timed(cmd, venv_env({"AESWEEP_TIMING": str(timing), "PYTHONPATH": str(ROOT)}),
                    work / f"{name}-plain.log")
    run |= {"command": f"python -m benchmarks.sweep --plain CONFIGS ({len(configs)} trainings)", "model_starts": {}}
    (work / f"{name}-plain-run.json").write_text(json.dumps(run))
    return run | {"events": read_events(timing)}


def plain_worker(spec: Path) -> None:
    """(a): the trainings of `spec` back to back in this process, as a user's loop would: no Ray, no MLflow."""
    from tuning import timing

    timing.mark("process")
    import keras

    from training.config import TrainConfig
    from training.data import load_dataset
    from training.loop import train

    timing.mark("imports")
    for i, c in enumerate(json.loads(spec.read_text())):
        keras.backend.clear_session()
        timing.start(f"plain-{i}")
        evaluate = c.pop(EVALUATE, True)
        config = TrainConfig.from_dict(c)
        timing.mark("config", config=c)
        data = load_dataset(config.dataset, config.data_dir)
        timing.mark("data")
        train(config, callbacks=timing.around([]), dataset=data, evaluate_at_end=evaluate)
        timing.mark("end")


def read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trained_configs(events: list[dict]) -> list[dict]:
    """Each sweep trial's config with the epochs it trained (ASHA may stop a trial early), in start order, and
    whether it was evaluated at the end (a stopped trial is not)."""
    configs, epochs = {}, {}
    for e in events:
        if e["event"] == "config":
            configs[e["trial"]] = e["config"]
        elif e["event"] == "pre:epoch":
            epochs[e["trial"]] = max(epochs.get(e["trial"], 0), e["epoch"])
    return [configs[t] | {"epochs": epochs[t], EVALUATE: epochs[t] == configs[t]["epochs"]}
            for t in configs if epochs.get(t)]


# --- analysis ----------------------------------------------------------------------------------------

def by_trial(events: list[dict]) -> dict[str, list[dict]]:
    trials: dict[str, list[dict]] = {}
    for e in events:
        if e["trial"]:
            trials.setdefault(e["trial"], []).append(e)
    return {t: sorted(v, key=lambda e: e["t"]) for t, v in trials.items()}


def image_epochs(config: dict) -> set[int]:
    """The epochs a sweep trial logs images at: every quarter of its epochs (tuning.sweep.image_cadence: the grace
    period, as the sweeps measured here set no --image-every)."""
    from tracking.callback import image_schedule

    epochs = int(config.get("epochs", 1))
    return set(image_schedule(epochs, max(1, epochs // 4)))


def trial_phases(ev: list[dict], model_start: float | None, planned_epochs: int | None) -> dict:
    """One trial's phases (seconds) from its marks; a phase whose marks are missing (a trial ASHA stopped
    has no final evaluation) is 0 and its time falls to `other`."""
    first = {}
    for e in ev:
        first.setdefault(e["event"], e)
    t = {k: e["t"] for k, e in first.items()}
    pre = [e for e in ev if e["event"] == "pre:epoch"]
    mid = {e["epoch"]: e["t"] for e in ev if e["event"] == "mid:epoch"}
    post = {e["epoch"]: e["t"] for e in ev if e["event"] == "post:epoch"}
    seconds = [float(e["seconds"]) for e in pre]
    steps = [e.get("steps") for e in pre]  # the training steps alone (marks since the loop times them)
    p = dict.fromkeys([k for k, _ in PHASES], 0.0)
    start, end = t["start"], t.get("end", ev[-1]["t"])

    def span(a, b):
        return max(0.0, t[b] - t[a]) if a in t and b in t else 0.0

    if "imports" in t and "config" in t:  # a sweep trial: the child run, then imports; plain: imports came first
        p["child_run"] = span("start", "config")
        p["imports"] = span("config", "imports")
        p["data"] = span("imports", "data")
        p["run_start"] = span("data", "run_started") + span("pre:train_begin", "mid:train_begin")
        p["build"] = span("run_started", "pre:train_begin")
    else:
        p["data"] = span("config", "data")
        p["build"] = span("data", "pre:train_begin")
        p["child_run"] = span("start", "config")
    images = set(image_epochs({"epochs": planned_epochs})) if planned_epochs else set()
    previous = t.get("post:train_begin", t.get("mid:train_begin"))
    logging_plain, logging_images = [], []
    for e in pre:
        n = e["epoch"]
        if previous is not None:
            p["checkpoint"] += max(0.0, e["t"] - previous - float(e["seconds"]))
        if n in mid:
            (logging_images if n in images else logging_plain).append(mid[n] - e["t"])
        if n in mid and n in post:
            p["checkpoint"] += post[n] - mid[n]
        previous = post.get(n, mid.get(n))
    base = statistics.median(logging_plain) if logging_plain else 0.0
    p["metrics"] = sum(logging_plain) + base * len(logging_images)
    p["images"] = sum(max(0.0, x - base) for x in logging_images)
    if pre and "pre:train_end" in t and (last := post.get(pre[-1]["epoch"], mid.get(pre[-1]["epoch"]))):
        p["final_eval"] = max(0.0, t["pre:train_end"] - last)
    if "pre:train_end" in t and "mid:train_end" in t:
        stop = t["mid:train_end"]
        split = model_start if model_start and t["pre:train_end"] <= model_start <= stop else stop
        p["images"] += split - t["pre:train_end"]
        p["model"] = stop - split
    if "post:train_end" in t:
        p["run_end"] = max(0.0, end - t["post:train_end"])
    epochs = sum(seconds)
    p["other"] = max(0.0, end - start - epochs - sum(p.values()))
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else None
    return {"phases": p, "start": start, "end": end, "epochs": len(seconds), "step_s": epochs,
            "train_s": sum(float(x) for x in steps) if steps and None not in steps else None,
            "steady_step_s": sum(seconds[1:]), "steady_epochs": seconds[1:],
            "tracing_s": seconds[0] - steady if steady is not None else 0.0,
            "peak_rss_mb": max(e["peak_rss_mb"] for e in ev), "run_id": first.get("config", {}).get("run_id"),
            "first_result": t.get("post:epoch")}


def slot_gaps(trials: list[dict], concurrency: int) -> tuple[list[float], float | None]:
    """Each trial's wait for its process: from the end of the trial before it on its slot to its start.
    The first `concurrency` trials have no trial before them: returns the gaps and the first trial's start."""
    ordered = sorted(trials, key=lambda r: r["start"])
    free = sorted(r["end"] for r in ordered)
    gaps, used = [], set()
    for r in ordered[concurrency:]:
        candidates = [i for i, e in enumerate(free) if e <= r["start"] and i not in used]
        if candidates:
            i = max(candidates, key=lambda i: free[i])
            used.add(i)
            gaps.append(r["start"] - free[i])
    return gaps, ordered[0]["start"] if ordered else None


def analyze(run: dict, concurrency: int) -> dict:
    trials_ev = by_trial(run["events"])
    configs = {e["trial"]: e.get("config", {}) for e in run["events"] if e["event"] == "config"}
    rows = [trial_phases(ev, run["model_starts"].get(_run_id(ev)), int(configs.get(tid, {}).get("epochs", 0)) or None)
            for tid, ev in trials_ev.items() if any(e["event"] == "start" for e in ev)]
    if not rows:
        raise SystemExit("error: no trial wrote timing marks (is tuning/timing.py wired into the trial?)")
    n = len(rows)
    gaps, first_start = slot_gaps(rows, concurrency)
    driver = {e["event"]: e["t"] for e in run["events"] if e["event"].startswith("driver:")}
    startup, previous = {}, run["launch"]
    for key, _ in STARTUP:
        t = first_start if key == "first_trial" else driver.get(key)
        startup[key] = t - previous if t is not None else None
        previous = t if t is not None else previous
    last_end = max(r["end"] for r in rows)
    tail, previous = {}, last_end
    for key, _ in TAIL:
        t = run["launch"] + run["wall_s"] if key == "exit" else driver.get(key)
        tail[key] = t - previous if t is not None else None
        previous = t if t is not None else previous
    process = [e["t"] for e in run["events"] if e["event"] == "process"]
    imports = [e["t"] for e in run["events"] if e["event"] == "imports" and not e["trial"]]
    if process and imports:  # the plain process: its start and imports come once, before the first trial
        gaps = gaps + [imports[0] - run["launch"]]
    phases = {k: statistics.fmean(r["phases"][k] for r in rows) for k, _ in PHASES}
    phases["process"] = sum(gaps) / n
    step = sum(r["step_s"] for r in rows)
    steady = sum(r["steady_step_s"] for r in rows)
    train = sum(r["train_s"] for r in rows) if all(r["train_s"] is not None for r in rows) else None
    wall = run["wall_s"]
    results = [r["first_result"] for r in rows if r["first_result"]]
    return {"command": run["command"], "trials": n, "epochs": sum(r["epochs"] for r in rows),
            "wall_s": wall, "concurrency": concurrency, "step_s": step, "steady_step_s": steady,
            "efficiency": step / (wall * concurrency), "steady_efficiency": steady / (wall * concurrency),
            "train_s": train, "train_efficiency": train / (wall * concurrency) if train is not None else None,
            "first_result_s": min(results) - run["launch"] if results else None,
            "startup_s": first_start - run["launch"] if first_start else None, "startup": startup,
            "tail_s": run["launch"] + wall - last_end, "tail": tail,
            "overhead_s": sum(phases.values()), "amortised_overhead_s": (wall * concurrency - step) / n,
            "phases": phases, "tracing_s": statistics.fmean(r["tracing_s"] for r in rows),
            "trial_step_s": statistics.fmean(r["step_s"] for r in rows),
            "steady_epoch_s": statistics.median(x for r in rows for x in r["steady_epochs"]) if any(
                r["steady_epochs"] for r in rows) else None,
            "peak_rss_mb": {"median": statistics.median(r["peak_rss_mb"] for r in rows),
                            "max": max(r["peak_rss_mb"] for r in rows)},
            "load": run["load"]}


def _run_id(ev: list[dict]) -> str:
    return next((e.get("run_id", "") for e in ev if e["event"] == "config"), "")


# --- report ------------------------------------------------------------------------------------------

def fmt(v, digits=1) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(setting: str, plain: dict, sweep: dict) -> str:
    def row(label, key, digits=1):
        return f"| {label} | {fmt(plain.get(key), digits)} | {fmt(sweep.get(key), digits)} |"

    lines = [f"**{setting}**: `{sweep['command']}`", "",
             "| | (a) plain process | (b) Ray Tune sweep + MLflow |", "| --- | ---: | ---: |",
             f"| trials / epochs trained | {plain['trials']} / {plain['epochs']} | "
             f"{sweep['trials']} / {sweep['epochs']} |",
             row("concurrency", "concurrency", 0),
             row("wall time of the command (s)", "wall_s"),
             row("sum of epochs' time, training steps + validation (s)", "step_s"),
             row("mean epochs' time per trial (s)", "trial_step_s"),
             row("**efficiency** = sum of epochs / (wall x concurrency)", "efficiency", 2),
             row("efficiency, steady-state epochs only (first epoch of each trial left out)", "steady_efficiency", 2),
             row("sum of the training steps alone (s; the loop's own timing)", "train_s"),
             row("efficiency, training steps alone", "train_efficiency", 2),
             row("time to the first reported result (s)", "first_result_s"),
             row("start-up until the first trial starts (s)", "startup_s"),
             ]
    for key, label in STARTUP:
        lines.append(f"| &nbsp;&nbsp;{label} | {fmt(plain.get('startup', {}).get(key), 2)} | "
                     f"{fmt(sweep.get('startup', {}).get(key), 2)} |")
    lines.append(row("after the last trial's end until the command exits (s)", "tail_s"))
    for key, label in TAIL:
        lines.append(f"| &nbsp;&nbsp;{label} | {fmt(plain.get('tail', {}).get(key), 2)} | "
                     f"{fmt(sweep.get('tail', {}).get(key), 2)} |")
    lines.append(row("**per-trial overhead** (s, mean; the rows below)", "overhead_s"))
    for key, label in PHASES:
        lines.append(f"| &nbsp;&nbsp;{label} | {fmt(plain['phases'][key], 2)} | {fmt(sweep['phases'][key], 2)} |")
    lines += [row("(wall x concurrency - sum of epochs) / trials (s)", "amortised_overhead_s"),
              row("first epoch's extra time over a steady epoch, tracing (s, mean)", "tracing_s", 2),
              f"| peak resident memory per trial (MB, median / max) | {mem(plain)} | {mem(sweep)} |",
              f"| load average, 1 min (mean / max during the run) | {load(plain)} | {load(sweep)} |"]
    return "\n".join(lines)


def mem(r: dict) -> str:
    return f"{r['peak_rss_mb']['median']:.0f} / {r['peak_rss_mb']['max']:.0f}"


def load(r: dict) -> str:
    return f"{r['load']['mean']:.1f} / {r['load']['max']:.1f}" if r["load"] else "—"


def verdicts(name: str, sweep: dict, quick: bool) -> list[str]:
    if quick:
        return ["(quick mode: the targets are not judged)"]
    out = []
    o = sweep["overhead_s"]
    out.append(f"per-trial overhead {o:.1f} s: target < {TARGETS['overhead_s']:.0f} s "
               + ("met" if o < TARGETS["overhead_s"] else f"missed by {o - TARGETS['overhead_s']:.1f} s"))
    e, target = sweep["efficiency"], TARGETS["efficiency"][name]
    out.append(f"efficiency {e:.2f}: target >= {target} " + ("met" if e >= target else f"missed by {target - e:.2f}"))
    if name == "short":
        w = sweep["wall_s"]
        out.append(f"make sweep {w:.0f} s: target < {TARGETS['make_sweep_s']:.0f} s "
                   + ("met" if w < TARGETS["make_sweep_s"] else f"missed by {w - TARGETS['make_sweep_s']:.0f} s"))
    return out


def settings(args) -> dict[str, dict]:
    if args.quick:
        return {"short": dict(QUICK)}
    chosen = {"short": dict(SHORT) | ({"seed": args.seed} if args.seed is not None else {}),
              "long": {"num_samples": args.long_trials, "max_epochs": args.long_epochs, "scheduler": "fifo"}
              | ({"seed": args.seed} if args.seed is not None else {})}
    return {k: v for k, v in chosen.items() if not args.only or k in args.only}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 trials of 2 epochs: checks the output, not the speed")
    p.add_argument("--only", nargs="+", choices=("short", "long"), help="run only these settings")
    p.add_argument("--long-trials", type=int, default=LONG_TRIALS, help=f"trials of the long setting "
                                                                        f"(default {LONG_TRIALS})")
    p.add_argument("--long-epochs", type=int, default=None,
                   help=f"epochs per long trial (default: {LONG_SECONDS:.0f} s over the short sweep's steady epoch "
                        f"time, else {LONG_EPOCHS})")
    p.add_argument("--seed", type=int, default=None, help="the sweeps' seed (default: a fresh one, as make sweep)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    p.add_argument("--keep", type=Path, default=None, help="keep the runs' logs, timings and stores here")
    p.add_argument("--reanalyze", type=Path, default=None, metavar="DIR",
                   help="print the tables again from the runs kept in DIR (--keep), without running anything")
    p.add_argument("--plain", type=Path, default=None, help=argparse.SUPPRESS)  # (a)'s own process
    args = p.parse_args(argv)
    if args.plain:
        plain_worker(args.plain)
        return 0
    work = Path(tempfile.mkdtemp(prefix="aesweep-bench-", dir="/tmp")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    print(f"# Sweep overhead: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; code {code_version()}; "
          f"{machine()}")
    print(f"command: python -m benchmarks.sweep {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    figures = {}
    if args.reanalyze:
        for name in ("short", "long"):
            if (args.reanalyze / f"{name}-sweep-run.json").is_file():
                d = args.reanalyze
                runs = [json.loads((d / f"{name}-{side}-run.json").read_text())
                        | {"events": read_events(d / f"{name}-{side}.jsonl")} for side in ("sweep", "plain")]
                report(figures, name, runs[0], runs[1], args.quick)
        write_json(args.json, figures)
        return 0
    try:
        for name, params in settings(args).items():
            if name == "long" and args.long_epochs is None:
                # Trials of about LONG_SECONDS of epochs at this moment's speed: epochs from the short sweep's
                # steady epoch (the machine may be shared, so a fixed count would not say "30 s").
                epoch = figures.get("short", {}).get("sweep", {}).get("steady_epoch_s")
                params["max_epochs"] = max(2, round(LONG_SECONDS / epoch)) if epoch else LONG_EPOCHS
            sweep_run = run_sweep(params, work, name)
            configs = trained_configs(sweep_run["events"])
            plain_run = run_plain(configs, work, name)
            report(figures, name, sweep_run, plain_run, args.quick)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    write_json(args.json, figures)
    return 0


def report(figures: dict, name: str, sweep_run: dict, plain_run: dict, quick: bool) -> None:
    sweep, plain = analyze(sweep_run, CONCURRENCY), analyze(plain_run, 1)
    figures[name] = {"plain": plain, "sweep": sweep, "verdicts": verdicts(name, sweep, quick)}
    print()
    print(table(name, plain, sweep))
    print()
    for v in figures[name]["verdicts"]:
        print(f"- {v}")


def write_json(path: Path | None, figures: dict) -> None:
    if path:
        path.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "machine": machine(), "settings": figures}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
