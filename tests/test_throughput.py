"""The throughput benchmark's --quick path prints a well-formed table (figures are not judged: not a timed test)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_flops_count_the_dense_layers_of_the_dec_autoencoder():
    from benchmarks.throughput import train_flops_per_sample
    from training.config import TrainConfig

    cfg = TrainConfig(model="sae", latent_dim=10, hidden=(500, 500, 2000))
    multiply_adds = 784 * 500 + 500 * 500 + 500 * 2000 + 2000 * 10  # the encoder; the decoder mirrors it
    assert train_flops_per_sample(784, cfg) == 6 * 2 * multiply_adds
    vae = TrainConfig(model="vae", latent_dim=8, hidden=(256, 128), iw_train_samples=3)
    # The VAE's encoder head gives mean and log-variance; its decoder runs once per importance sample.
    assert train_flops_per_sample(64, vae) == 6 * (64 * 256 + 256 * 128 + 128 * 16 + 3 * (8 * 128 + 128 * 256 + 256 * 64))


@pytest.mark.slow
def test_quick_benchmark_prints_a_table():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--quick"], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    from benchmarks.throughput import HEADER, PARTS_HEADER, VARIANTS, WORKLOADS

    lines = out.stdout.splitlines()

    def table(header):
        head = lines.index("| " + " | ".join(header) + " |")
        body = []
        for line in lines[head + 2:]:
            if not line.startswith("|"):
                break
            body.append([c.strip() for c in line.strip("|").split("|")])
        return body

    rows = table(HEADER)
    assert [(r[0], r[1]) for r in rows] == [(w.name, v) for w in WORKLOADS for v in VARIANTS]
    # Our loop's epoch split: every part a time ("—": no such epoch in a quick run), the epochs with the costlier
    # figures a share.
    parts = table(PARTS_HEADER)
    assert [(r[0], r[1]) for r in parts] == [(w.name, v) for w in WORKLOADS for v in VARIANTS if v != "fit"]
    for r in parts:
        assert len(r) == len(PARTS_HEADER) and all(c == "—" or float(c) >= 0 for c in r[2:10]) and 0 <= float(r[7]) <= 1
    for r in rows:
        assert len(r) == len(HEADER)
        samples, gflops, epoch, steps, rss = (float(r[i]) for i in (2, 4, 6, 7, 10))
        assert samples > 0 and gflops > 0 and epoch > 0 and 0 < steps <= epoch * 1.001 and rss > 0
        assert r[3] == "1.00 (reference)" if r[1] == "fit" else float(r[3]) > 0
    assert "matmul peak" in out.stdout and "quick mode" in out.stdout
