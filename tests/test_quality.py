"""The quality benchmark's --quick path runs and writes a well-formed table (not the targets)."""
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.quality import HEADER
from tests.conftest import ROOT, SHARED_DATA


@pytest.mark.slow  # make test-slow (CI runs it): one of the slowest in make test
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
           "--only", "digits-vae", "frey-vae", "--unseen", "digits", "--output", str(out_file),
           "--npz", str(tmp_path / "mine.npz")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out_file.read_text()
    assert text.startswith("# Benchmarks\n\nkept text\n")  # the rest of the file is kept
    block = text[text.index("<!-- quality:begin -->"):text.index("<!-- quality:end -->")]
    rows = [ln for ln in block.splitlines() if ln.startswith("| ")]
    assert rows[0] == "| " + " | ".join(HEADER) + " |"
    assert set(rows[1].replace(" ", "")) <= set("|-")
    cells = {r.split(" | ")[0][2:]: dict(zip(HEADER, r[2:-2].split(" | "))) for r in rows[2:]}
    assert all(r.count(" | ") == len(HEADER) - 1 for r in rows)
    npz_title, digits_title = f"npz:{tmp_path}/mine.npz: sparse AE + k-means (unseen)", \
        "digits (scikit-learn, 8x8): sparse AE + k-means (unseen)"
    assert set(cells) == {"digits: VAE test log-likelihood (nats)", "Frey Face: VAE test log-likelihood (nats)",
                          npz_title, digits_title}
    cells["`digits-vae`"], cells["`frey-vae`"] = cells.pop("digits: VAE test log-likelihood (nats)"), \
        cells.pop("Frey Face: VAE test log-likelihood (nats)")
    for title in (npz_title, digits_title):  # the one clustering recipe, unchanged, judged against its pixels
        row = cells[title]
        assert row["recipe"] == "`mnist-sae`"
        pixels = float(row["anchors [their dataset; estimator]"].split("k-means on pixels (ours, measured) ")[1])
        assert row["target"].startswith("k-means on pixels + 0.1 = ") and row["target"].endswith(
            " (not judged in quick mode)")
        assert abs(float(row["target"].split(" = ")[1].split(" ")[0]) - (pixels + 0.1)) <= 0.0006
    vae = cells["`digits-vae`"]
    assert vae["estimator"].startswith("importance-weighted log p(x), encoder proposal, K=100")
    assert "test_log_likelihood_refined" in vae["other metrics (mean)"] and "_amortized" not in block
    for c in cells.values():  # 2 seeds each in quick mode: mean, sd and a t-interval that contains the mean
        if c["recipe"] == "`frey-vae`" and not (SHARED_DATA / "frey_rawface.mat").exists():
            assert c["ours: mean ± sd"].startswith("skipped") and c["seeds"] == "—"
            continue
        values = [float(v) for v in c["seeds"].split(": ")[1].split(", ")]
        assert len(values) == 2 and c["seeds"].startswith("2: ")
        low, high = (float(v) for v in c["95% t-interval"].strip("[]").split(", "))
        shown = c["ours: mean ± sd"].split("**")[1]
        mean, last_digit = float(shown), 10.0 ** -len(shown.split(".")[1])
        assert low <= mean <= high and " sd" in c["ours: mean ± sd"]
        assert abs((low + high) / 2 - mean) <= last_digit  # centred on the mean, up to the printed rounding
    assert "not judged in quick mode" in cells["`frey-vae`"]["target"]
    if (SHARED_DATA / "frey_rawface.mat").exists():
        frey = cells["`frey-vae`"]
        assert "last 197 of 1965 faces" in frey["split"] and "K=100" in frey["estimator"]
        assert "1380.30 ± 4.60 [Frey Face, 10-fold CV mean ± s.e.; encoder proposal, K=5000]" in \
            frey["anchors [their dataset; estimator]"]
    assert "quick mode" in block and "python -m benchmarks.quality --quick" in block


def test_verdict_needs_the_interval_to_clear_the_target():
    from benchmarks.quality import BENCHMARKS, Outcome

    mnist = next(b for b in BENCHMARKS if b.recipe == "mnist-sae")  # target 0.88
    assert Outcome(mnist, [0.905, 0.888, 0.866]).verdict(False).startswith("0.88: not met")  # mean 0.886
    assert Outcome(mnist, [0.90, 0.91, 0.905, 0.895, 0.90]).verdict(False).startswith("0.88: met")
    assert "one seed" in Outcome(mnist, [0.95]).verdict(False)
    low, high = Outcome(mnist, [0.905, 0.888, 0.866]).interval()
    assert (round(low, 3), round(high, 3)) == (0.838, 0.935)  # mean 0.886, t(0.975, 2) = 4.303, sd 0.0196


def test_unseen_target_is_k_means_on_pixels_plus_the_margin():
    from benchmarks.quality import Outcome, unseen_benchmark

    b = unseen_benchmark("letters", "npz:letters.npz")
    seeds = [0.91, 0.92, 0.90, 0.915, 0.905]  # mean 0.91, 95% interval [0.9002, 0.9198]
    assert Outcome(b, seeds, pixels=0.79).verdict(False).startswith("k-means on pixels + 0.1 = 0.89: met")
    assert Outcome(b, seeds, pixels=0.81).verdict(False).startswith("k-means on pixels + 0.1 = 0.91: not met")
    assert Outcome(b, seeds).verdict(False) == "—"  # no pixel figure (unlabelled): nothing to judge


def test_a_run_replaces_its_rows_and_keeps_the_others(tmp_path):
    """`--only` runs refresh their own rows; the block's other rows and where they were measured stay."""
    from benchmarks.quality import BENCHMARKS, Outcome, read_block, row, write_rows

    mnist, frey = (next(b for b in BENCHMARKS if b.recipe == r) for r in ("mnist-sae", "frey-vae"))
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nbefore\n\n<!-- quality:begin -->\nan older layout\n<!-- quality:end -->\n\nafter\n")
    write_rows(path, {mnist.title: row(Outcome(mnist, [0.80, 0.82]), False)}, {mnist.title: f"- **{mnist.title}**: run 1."})
    write_rows(path, {frey.title: row(Outcome(frey, [1360.0, 1362.0]), False)}, {frey.title: f"- **{frey.title}**: run 2."})
    write_rows(path, {mnist.title: row(Outcome(mnist, [0.90, 0.92]), False)}, {mnist.title: f"- **{mnist.title}**: run 3."})
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "older layout" not in text
    rows, provenance = read_block(text)
    assert list(rows) == [mnist.title, frey.title]  # the first row keeps its place
    assert "**0.9100**" in rows[mnist.title] and "**1361.0**" in rows[frey.title]
    assert provenance == {mnist.title: f"- **{mnist.title}**: run 3.", frey.title: f"- **{frey.title}**: run 2."}
    assert text.count("| benchmark |") == 1 and text.count("<!-- quality:begin -->") == 1


def test_readme_quotes_the_benchmark_table_as_written():
    """The README's quality figures are the BENCHMARKS.md block's, word for word, and it quotes every row."""
    import re

    from benchmarks.quality import read_block

    rows, provenance = read_block((ROOT / "BENCHMARKS.md").read_text())
    readme = " ".join((ROOT / "README.md").read_text().split())  # wrapped lines read as one
    assert rows and set(provenance) == set(rows)  # every row says where it was measured
    quoted = set(re.findall(r"\*\*-?[0-9.]+\*\* ± [0-9.]+ sd", readme))
    shown = {}
    for title, line in rows.items():
        cells = line[2:-2].split(" | ")
        assert "quick mode" not in line, f"{title}: a quick run's row is not a figure"
        shown[cells[4]] = title
        assert cells[4] in readme and cells[5] in readme, f"README does not quote {title}: {cells[4]}, {cells[5]}"
    assert quoted <= set(shown), f"README quotes figures the table does not hold: {quoted - set(shown)}"


def test_a_title_with_a_bar_keeps_one_row(tmp_path):
    """A user's npz path may hold "|" (a cell's end): the row is still found and replaced, not duplicated."""
    from benchmarks.quality import Outcome, read_block, row, unseen_benchmark, write_rows

    b = unseen_benchmark("npz:a|b.npz", "npz:a|b.npz")
    path = tmp_path / "BENCHMARKS.md"
    for values in ([0.5, 0.6], [0.7, 0.8]):
        write_rows(path, {b.title: row(Outcome(b, values), False)}, {b.title: f"- **{b.title}**: measured."})
    rows, provenance = read_block(path.read_text())
    assert list(rows) == ["npz:a/b.npz: sparse AE + k-means (unseen)"] and "**0.7500**" in next(iter(rows.values()))
    assert list(provenance) == list(rows) and not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob(".*tmp"))
