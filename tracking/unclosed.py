"""Runs left RUNNING because the tracking server stopped answering: remembered on this machine, closed
the next time anything here opens the same store (tracking.store.prepare).

The ledger is a small JSON list under $XDG_STATE_HOME/aesweep (default ~/.local/state/aesweep), readable
by its user only; each entry names the store by its URI without credentials (tracking.secrets.safe_uri).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from filelock import FileLock

from tracking.secrets import safe_uri


def ledger() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "aesweep" / "unclosed-runs.json"


def _read(path: Path) -> list[dict]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return entries if isinstance(entries, list) else []


def _write(path: Path, entries: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)


def remember(uri: str, run_id: str, status: str, reason: str) -> None:
    """Note that run_id in the store at uri should end `status` (with tag failure_reason = reason)."""
    path = ledger()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with FileLock(f"{path}.lock", timeout=30):
            entries = [e for e in _read(path) if e.get("run_id") != run_id]
            _write(path, entries + [{"store": safe_uri(uri), "run_id": run_id, "status": status, "reason": reason}])
    except OSError:  # no writable home: the run stays RUNNING, as the error line already says
        pass


def close_remembered(uri: str, client) -> list[str]:
    """Close the runs remembered for this store that are still RUNNING there; returns their ids."""
    path = ledger()
    if not path.is_file():
        return []
    store, closed = safe_uri(uri), []
    with FileLock(f"{path}.lock", timeout=30):
        entries = _read(path)
        keep = []
        for entry in entries:
            if entry.get("store") != store:
                keep.append(entry)
                continue
            try:
                run = client.get_run(entry["run_id"])
            except Exception:  # deleted, or another store under the same name: nothing to close
                continue
            if run.info.status == "RUNNING":
                client.set_tag(run.info.run_id, "failure_reason", entry["reason"])
                client.set_terminated(run.info.run_id, entry["status"])
                closed.append(run.info.run_id)
        if keep != entries:
            _write(path, keep)
    for run_id in closed:
        print(f"[aesweep] closed run {run_id}, left RUNNING when the tracking server stopped answering")
    return closed
