"""The quality benchmark's --quick path runs and writes a well-formed table (not the targets)."""
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT, SHARED_DATA


def test_quick_benchmark_writes_a_table(tmp_path):
    out_file = tmp_path / "BENCHMARKS.md"
    out_file.write_text("# Benchmarks\n\nkept text\n")
    rng = np.random.default_rng(0)  # the user's own labelled images: 3 classes of bright squares
    y = rng.integers(0, 3, 400)
    x = rng.uniform(0, 0.1, (400, 8, 8))
    for i, label in enumerate(y):
        x[i, 4 * (label % 2):4 * (label % 2) + 4, 4 * (label // 2):4 * (label // 2) + 4] += 0.8
    np.savez(tmp_path / "mine.npz", x_train=x.astype(np.float32), y_train=y)
    cmd = [sys.executable, "-m", "benchmarks.quality", "--quick", "--data-dir", str(SHARED_DATA),
           "--only", "digits-sae", "digits-vae", "frey-vae", "--output", str(out_file),
           "--npz", str(tmp_path / "mine.npz")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out_file.read_text()
    assert text.startswith("# Benchmarks\n\nkept text\n")  # the rest of the file is kept
    block = text[text.index("<!-- quality:begin -->"):text.index("<!-- quality:end -->")]
    rows = [ln for ln in block.splitlines() if ln.startswith("| ")]
    assert rows[0].startswith("| benchmark | recipe | ours | target | anchors")
    assert set(rows[1].replace(" ", "")) <= set("|-")
    body = {r.split(" | ")[1]: r for r in rows[2:]}
    assert set(body) == {"`digits-sae`", "`digits-vae`", "`frey-vae`", "`mnist-sae`"}
    assert body["`mnist-sae`"].startswith(f"| npz:{tmp_path}/mine.npz: sparse AE + k-means")
    assert "k-means on pixels (ours, measured) " in body["`mnist-sae`"]
    assert "test_log_likelihood_amortized" in body["`digits-vae`"]
    assert all(r.count(" | ") == 6 for r in rows)
    assert "k-means on pixels (ours, measured) 0." in body["`digits-sae`"]
    if (SHARED_DATA / "frey_rawface.mat").exists():
        assert "Li & Turner" in body["`frey-vae`"] and "**" in body["`frey-vae`"]
    else:
        assert "skipped" in body["`frey-vae`"]
    assert "quick mode" in block and "python -m benchmarks.quality --quick" in block
