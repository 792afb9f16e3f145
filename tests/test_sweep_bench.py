"""benchmarks.sweep: its figures follow from the trials' marks, and --quick prints a well-formed table
(the speed is not tested: benchmarks are not timed tests)."""
import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks.sweep import PHASES, analyze, slot_gaps
from tests.conftest import ROOT
from tuning import timing


def trial_marks(trial: str, t0: float, epochs: list[float], run_id: str = "") -> list[dict]:
    """What tuning.trial marks for one trial that starts at t0: 1 s to its child run, 2 s of imports,
    0.5 s of data, 0.5 s to start its MLflow run, 0.25 s to build, its epochs each followed by 0.25 s
    of checkpoint, 0.1 s of MLflow logging and 0.05 s of reporting; 3 s of final evaluation, 1 s of
    images, 2 s of model logging, 0.5 s to end."""
    out, t = [], t0

    def add(event, dt=0.0, **f):
        nonlocal t
        t += dt
        out.append({"event": event, "t": t, "pid": 1, "trial": trial, "rss_mb": 10.0, "peak_rss_mb": 100.0 + t0}
                   | f)

    add("start")
    add("config", 1.0, run_id=run_id, config={"epochs": len(epochs)})
    add("imports", 2.0)
    add("data", 0.5)
    add("run_started", 0.5)
    add("pre:train_begin", 0.25)
    add("mid:train_begin", 0.0)
    add("post:train_begin", 0.0)
    for n, s in enumerate(epochs, 1):
        add("pre:epoch", s + 0.25, epoch=n, seconds=s)
        add("mid:epoch", 0.1, epoch=n, seconds=s)
        add("post:epoch", 0.05, epoch=n, seconds=s)
    add("pre:train_end", 3.0)
    model_start = t + 1.0
    add("mid:train_end", 3.0)
    add("post:train_end", 0.0)
    add("end", 0.5)
    return out, model_start


def test_analysis_adds_up(monkeypatch):
    # Two slots; trial c starts 1.5 s after a ends. Epochs: 12 (image epochs every one, so images
    # logging is measured against the others' median: here all epochs log alike).
    a, ma = trial_marks("a", 100.0, [2.0] * 12, "ra")
    b, mb = trial_marks("b", 100.5, [3.0] * 12, "rb")
    end_a = a[-1]["t"]
    c, mc = trial_marks("c", end_a + 1.5, [1.0] * 12, "rc")
    launch, exit_ = 90.0, c[-1]["t"] + 4.0
    driver = [{"event": e, "t": t, "pid": 2, "trial": ""} for e, t in
              (("driver:start", 92.0), ("driver:ray", 95.0), ("driver:fit", 97.0))]
    run = {"events": driver + a + b + c, "launch": launch, "exit": exit_, "wall_s": exit_ - launch, "command": "x",
           "load": {"mean": 1.0, "max": 2.0}, "model_starts": {"ra": ma, "rb": mb, "rc": mc}}
    r = analyze(run, 2)
    step = 12 * (2.0 + 3.0 + 1.0)
    assert r["trials"] == 3 and r["epochs"] == 36
    assert math.isclose(r["step_s"], step)
    assert math.isclose(r["efficiency"], step / (2 * (exit_ - launch)))
    assert r["startup"] == {"driver:start": 2.0, "driver:ray": 3.0, "driver:fit": 2.0, "first_trial": 3.0}
    assert math.isclose(r["startup_s"], 10.0) and math.isclose(r["first_result_s"], 10.0 + 4.25 + 2.4)
    p = r["phases"]
    assert math.isclose(p["process"], 1.5 / 3)  # one wait between trials on a slot, per trial
    for key, value in {"child_run": 1.0, "imports": 2.0, "data": 0.5, "run_start": 0.5, "build": 0.25,
                       "checkpoint": 12 * 0.3, "final_eval": 3.0, "model": 2.0, "run_end": 0.5}.items():
        assert math.isclose(p[key], value, abs_tol=1e-6), key
    assert math.isclose(p["metrics"] + p["images"], 12 * 0.1 + 1.0, abs_tol=1e-6)
    assert p["other"] < 1e-6
    # The breakdown accounts for each trial's time that is not epochs, plus its wait for a slot.
    in_trials = sum(t[-1]["t"] - t[0]["t"] for t in (a, b, c)) - step
    assert math.isclose(r["overhead_s"], (in_trials + 1.5) / 3, abs_tol=1e-6)
    assert set(p) == {k for k, _ in PHASES}
    assert r["peak_rss_mb"] == {"median": 200.5, "max": 100.0 + c[0]["t"]}


def test_slot_gaps_pair_each_trial_with_the_slot_it_waited_for():
    rows = [{"start": 0, "end": 10}, {"start": 1, "end": 5}, {"start": 6, "end": 20}, {"start": 12, "end": 30}]
    gaps, first = slot_gaps(rows, 2)
    assert first == 0 and gaps == [1, 2]  # the third waits for the second's slot (5 -> 6), the fourth for the first's


def test_timing_marks_only_when_asked(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    monkeypatch.delenv(timing.ENV, raising=False)
    timing.start("x")
    timing.mark("nothing")
    assert not path.exists() and timing.around(["cb"]) == ["cb"]
    monkeypatch.setenv(timing.ENV, str(path))
    timing.start("trial-1")
    timing.mark("data", n=3)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["start", "data"] and lines[1]["n"] == 3
    assert all(e["trial"] == "trial-1" and e["pid"] == os.getpid() and e["peak_rss_mb"] > 0 for e in lines)
    wrapped = timing.around(["a", "b"])
    assert [getattr(c, "where", c) for c in wrapped] == ["pre", "a", "mid", "b", "post"]


@pytest.mark.slow
def test_quick_benchmark_prints_a_table(tmp_path):
    out_json = tmp_path / "sweep.json"
    out = subprocess.run([sys.executable, "-m", "benchmarks.sweep", "--quick", "--json", str(out_json)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith("| ")]
    assert rows[0] == "| | (a) plain process | (b) Ray Tune sweep + MLflow |"
    assert all(r.count(" | ") == 2 for r in rows)
    assert any(label in rows[i] for i in range(len(rows)) for _, label in PHASES)
    figures = json.loads(out_json.read_text())["settings"]["short"]
    for side in ("plain", "sweep"):
        f = figures[side]
        # The plain process ran the sweep's trainings: as many epochs as the sweep trained (2 a trial, or 1 where
        # ASHA stopped the second trial to reach its rung at epoch 1 below the first: the order and the unseeded
        # sweep's values decide that).
        assert f["trials"] == 2 and 3 <= f["epochs"] == figures["sweep"]["epochs"] <= 4
        assert 0 < f["efficiency"] <= 1 and f["wall_s"] > f["step_s"] / f["concurrency"] > 0
        assert f["first_result_s"] > 0 and f["peak_rss_mb"]["max"] > 100
        assert math.isclose(f["overhead_s"], sum(f["phases"].values()))
    assert figures["sweep"]["phases"]["imports"] > 0 and figures["sweep"]["phases"]["child_run"] > 0
    assert "quick mode" in out.stdout
