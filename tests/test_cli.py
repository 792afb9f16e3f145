"""`python -m training` end to end, as a user runs it."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def run(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "training", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


def test_help_documents_every_flag():
    out = run("--help")
    assert out.returncode == 0
    for flag in ("--model", "--dataset", "--data-dir", "--latent-dim", "--kl-weight", "--sparsity-weight",
                 "--sparsity-target", "--learning-rate", "--epochs", "--out", "--checkpoint-dir"):
        assert flag in out.stdout


def test_trains_and_writes_outputs(tmp_path):
    out = run("--model", "vae", "--dataset", "digits", "--epochs", "2", "--latent-dim", "2", "--iw-samples", "10",
              "--out", str(tmp_path), *NO_TRACKING)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "epoch   2/2" in out.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "finished" and "test_log_likelihood" in metrics and "cluster_acc_test" in metrics
    for name in ("model.keras", "latent_traversal.png", "reconstructions.png", "samples.png", "latent_manifold.png",
                 "loss_curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "I0000" not in out.stderr and "cuda" not in out.stderr.lower()  # TF start-up noise stays hidden


def test_bad_input_is_one_line(tmp_path):
    out = run("--dataset", f"npz:{tmp_path}/missing.npz", "--out", str(tmp_path), *NO_TRACKING)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "file not found" in out.stderr
    out = run("--latent-dim", "0", *NO_TRACKING)
    assert out.returncode == 2 and "latent_dim=0" in out.stderr and "Traceback" not in out.stderr


NO_TRACKING = ("--no-tracking",)
