"""SIGTERM as an interrupt, acted on between epochs: a run stopped by a scheduler or `kill` ends KILLED
with its last epoch logged.

    with sigterm_as_interrupt(deferred=True):   # around a tracked training (tracking.session)
        ...                                     # MlflowCallback calls check_terminated() at each epoch's end
"""
from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so the run is closed as KILLED."""


_TERMINATE = threading.Event()


def check_terminated() -> None:
    """Raise Terminated if SIGTERM arrived: called at safe points (an epoch's end), where no import or
    MLflow call is half-done; an exception raised mid-import can deadlock the process's other threads."""
    if _TERMINATE.is_set():
        raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt(deferred: bool):
    """SIGTERM becomes Terminated (a KeyboardInterrupt): at the next check_terminated() when
    `deferred`, at once otherwise; a second SIGTERM always acts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if not deferred or _TERMINATE.is_set():
            raise Terminated()
        _TERMINATE.set()

    _TERMINATE.clear()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
