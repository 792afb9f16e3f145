"""What a benchmark ran on: the machine, how busy it was, and the code's commit (every figure names them)."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """Cores, CPU model, OS, Python; and TensorFlow's version and GPUs when TensorFlow is already imported."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), cpu)
    except OSError:
        pass
    text = (f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")
    import sys

    if "tensorflow" in sys.modules:  # a benchmark that trains has it; the sweep's driver does not need it
        tf = sys.modules["tensorflow"]
        text += f", TF {tf.__version__}, {len(tf.config.list_physical_devices('GPU'))} GPU(s)"
    return text


def code_version() -> str:
    """The commit the figures come from, marked when the checkout has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + (" with uncommitted changes" if dirty else "")


def load_average() -> float:
    """The 1-minute load average (nan where the OS has none): how busy the machine was."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class LoadSampler:
    """The 1-minute load average every few seconds while a run goes on (the machine may be shared)."""

    def __init__(self, every: float = 5.0):
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            self.samples.append(load_average())
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        return {"mean": statistics.fmean(self.samples), "max": max(self.samples)} if self.samples else {}

    def text(self) -> str:
        s = self.summary()
        return f"1-minute load {s['mean']:.1f} mean / {s['max']:.1f} max" if s else "load not sampled"
