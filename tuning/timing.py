"""Optional phase timestamps of a trial, for `python -m benchmarks.sweep` (BENCHMARKS.md, issue 13).

With AESWEEP_TIMING=FILE in the environment, `mark(event)` appends one JSON line to FILE:
{"event", "t" (epoch seconds), "pid", "trial", "rss_mb", "peak_rss_mb", ...}; without it, nothing
happens (a dict lookup). `start(trial)` begins a trial: later marks carry its id, and the process's
peak resident memory is reset (Linux /proc/self/clear_refs) so each trial's peak is its own, also in
a reused process. `around(callbacks)` puts marking callbacks between the trial's callbacks, so each
one's time per epoch can be told apart from the loop's (training steps, validation, checkpoints).
"""
from __future__ import annotations

import json
import os
import time

from training.callbacks import Callback

ENV = "AESWEEP_TIMING"
_trial = {"id": ""}


def _memory_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc (0 where unavailable)."""
    values = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line[:5]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def mark(event: str, **fields) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    rss, peak = _memory_mb()
    line = {"event": event, "t": time.time(), "pid": os.getpid(), "trial": _trial["id"],
            "rss_mb": round(rss, 1), "peak_rss_mb": round(peak, 1)} | fields
    with open(path, "a") as f:  # one short write per line: lines of concurrent trials do not interleave
        f.write(json.dumps(line, default=str) + "\n")


def start(trial: str, **fields) -> None:
    """A trial begins in this process: later marks carry `trial`; the peak-memory counter starts again."""
    if not os.environ.get(ENV):
        return
    _trial["id"] = trial
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size
    except OSError:
        pass
    mark("start", **fields)


class Mark(Callback):
    """Marks each training event at its position in the callback list (`where`: pre, mid, post)."""

    def __init__(self, where: str):
        self.where = where

    def on_train_begin(self, context):
        mark(f"{self.where}:train_begin")

    def on_epoch_end(self, epoch, logs, context):
        steps = context.timings[-1].get("steps") if context.timings else None  # the training steps alone
        mark(f"{self.where}:epoch", epoch=epoch, seconds=logs.get("seconds"), steps=steps)

    def on_train_end(self, result, context):
        mark(f"{self.where}:train_end", epochs=result.epochs_completed)


def around(callbacks: list) -> list:
    """[pre, first, mid, rest..., post] when timing is on (pre..mid times the first callback, mid..post
    the others); the callbacks unchanged when it is off."""
    if not os.environ.get(ENV):
        return list(callbacks)
    first, rest = (callbacks[:1], callbacks[1:])
    return [Mark("pre"), *first, Mark("mid"), *rest, Mark("post")]
