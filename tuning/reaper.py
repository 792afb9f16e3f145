"""Ray's local processes end with the sweep's driver, even a killed one (SIGKILL leaves it no time to clean up).

Ray's GCS and raylet die with the driver that started them, but its dashboard and runtime-env agents first try,
for minutes, to report to the dead GCS, and a busy worker can outlive them too. This watcher, started by the
driver, remembers the driver's descendants every second and, once the driver is gone, kills those still alive.
It imports nothing of the project (run as a script, from any directory):

    python tuning/reaper.py DRIVER_PID
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import psutil


def alive(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False


def watch(driver_pid: int, interval: float = 1.0) -> None:
    driver = psutil.Process(driver_pid)
    known: dict[int, psutil.Process] = {}
    while alive(driver):
        with contextlib.suppress(psutil.Error):
            known |= {p.pid: p for p in driver.children(recursive=True) if p.pid != os.getpid()}
        time.sleep(interval)
    left = [p for p in known.values() if alive(p)]  # is_running also checks the pid was not reused
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(left, timeout=5)


def start() -> None:
    """Watch this process (the driver) from a separate session, so a Ctrl-C to the driver spares the watcher."""
    subprocess.Popen([sys.executable, os.path.abspath(__file__), str(os.getpid())], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


if __name__ == "__main__":
    with contextlib.suppress(psutil.NoSuchProcess, KeyboardInterrupt):
        watch(int(sys.argv[1]))
