"""Commands named in messages, spelled so that they work from where the user stands.

    python_command("tracking ui")  ->  ".venv/bin/python -m tracking ui" (from the project folder)
                                       "python -m tracking ui"           (this interpreter first on PATH)
                                       "/abs/path/bin/python -m tracking ui" (otherwise)
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def python_command(module_args: str) -> str:
    """`python -m MODULE_ARGS` with an interpreter the user can type: this one (which has the project's
    packages), relative to the current directory when under it, bare `python` when that already finds
    it (venv active, and not under the current directory), else by its absolute path."""
    exe = Path(sys.executable)
    try:
        python = str(exe.relative_to(Path.cwd()))
    except ValueError:
        found = shutil.which("python")
        python = "python" if found and os.path.abspath(found) == str(exe.absolute()) else str(exe)
    return f"{python} -m {module_args}"
