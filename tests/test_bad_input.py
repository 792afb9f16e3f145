"""Every row of README's bad-input table, run through the CLI's own main() with the row's arguments, in a folder
holding the files the rows name: one line on stderr naming the problem, exit code 2, nothing left behind."""
from __future__ import annotations

import re
import shlex

import numpy as np
import pytest

from tests.conftest import ROOT

ROWS = re.compile(r"^\| `(?P<cmd>python -m [^`]+)` \| `(?P<message>[^`]+)` \|$")


def readme_rows() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- bad-inputs:", 1)[1].split("<!-- /bad-inputs -->", 1)[0]
    return [(m["cmd"], m["message"]) for line in table.splitlines() if (m := ROWS.match(line.strip()))]


def test_the_table_has_enough_rows():
    assert len(readme_rows()) >= 25


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The files the table's commands name."""
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.txt").write_text("not a database\n" * 50)
    (d / "random-bytes.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    np.savez(d / "labels-only.npz", y_train=np.arange(10))
    np.savez(d / "objects.npz", x_train=np.array([{"a": 1}, None], dtype=object))
    rng = np.random.default_rng(0)
    np.savez(d / "unlabelled.npz", x_train=rng.uniform(0, 1, (300, 6, 6)).astype(np.float32))
    (d / "broken.yaml").write_text("latent_dim: {choice: [4, 8\n")
    (d / "unknown-key.yaml").write_text("epochs: 5\n")
    (d / "bad-range.yaml").write_text("learning_rate: {loguniform: [0, 1e-3]}\n")
    from training.__main__ import main

    # A checkpoint made with hidden=16, and a copy whose weights file is cut short.
    assert main(["--hidden", "16", "--epochs", "1", "--checkpoint-dir", str(d / "ck"), "--no-tracking",
                 "--out", str(d / "made")]) == 0
    import shutil

    shutil.copytree(d / "ck", d / "ck-truncated")
    weights = d / "ck-truncated" / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:300])
    return d


@pytest.mark.parametrize("cmd, message", readme_rows())
def test_bad_input_row(folder, cmd, message, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    from tracking.store import RETRY_DEFAULTS

    for key in RETRY_DEFAULTS:  # set by the CLI in this process: restored after each row
        monkeypatch.setenv(key, RETRY_DEFAULTS[key])
    import mlflow

    monkeypatch.setattr(mlflow, "set_tracking_uri", lambda uri: None)  # in-process: the session's URI stays
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", "-m"]
    if argv[2] == "training":
        from training.__main__ import main
    elif argv[2] == "tracking":
        from tracking.__main__ import main
    else:
        from tuning.__main__ import main
    try:
        code = main(argv[3:])
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "pw@" not in err
    assert not (folder / "runs").exists()  # bad input leaves no output folder behind
