"""Selection reads validation metrics only: the registry's, the sweeps' and the recipes' decisions never
compare a test metric (those are computed once, at the end, for the report)."""
from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import ROOT
from training.config import MODELS, TrainConfig
from training.metrics import is_test_metric

# Where selection is decided: the registry's gate, the sweep's metric and its summary, the runs table, the recipes.
DECIDING = ("tracking/registry.py", "tuning/sweep.py", "tuning/summary.py", "tracking/report.py",
            "training/presets.py")
DISPLAY_ONLY = {("tracking/report.py", "KEY_METRICS")}  # columns shown beside the deciding metric
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def test_metric_names():
    assert is_test_metric("test_log_likelihood") and is_test_metric("cluster_acc_test")
    assert is_test_metric("nmi_test") and is_test_metric("test_log_likelihood_refined")
    assert not is_test_metric("val_log_likelihood") and not is_test_metric("val_cluster_acc")
    assert not is_test_metric("pytest_cache") and not is_test_metric("latest")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("labelled", [True, False])
def test_default_deciding_metrics_are_validation_metrics(model, labelled):
    from tracking.registry import default_metric
    from tuning.sweep import metric_for

    name, mode = default_metric(model, labelled)
    assert name.startswith("val_") and mode in ("min", "max")
    for cluster_epochs in ((0, 2) if model == "sae" else (0,)):
        metric, _ = metric_for(TrainConfig(model=model, cluster_epochs=cluster_epochs), None, None)
        assert metric.startswith("val_")
    assert default_metric("vae", labelled)[0] == "val_log_likelihood"
    assert default_metric("sae", True)[0] == "val_cluster_acc" and default_metric("sae", False)[0] == "val_recon_mse"


def test_metric_names_in_deciding_code():
    def test_names(path, text):
        found = []
        tree = ast.parse(text)
        allowed = set()
        for node in ast.walk(tree):  # string constants inside a display-only assignment
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and (path, t.id) in DISPLAY_ONLY
                                                    for t in node.targets):
                allowed |= {id(c) for c in ast.walk(node.value)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in allowed:
                found += [(path, node.lineno, n) for n in NAME.findall(node.value) if is_test_metric(n)]
        return found

    # The scan finds what it looks for: the registry's former table, and a sweep ranking by test accuracy.
    assert test_names("tracking/registry.py", 'DEFAULT_METRIC = {"vae": ("test_log_likelihood", "max")}')
    assert test_names("tuning/summary.py", 'metric = run.data.metrics["cluster_acc_test"]')
    assert test_names("tracking/report.py", 'order_by=[f"metrics.`test_elbo` DESC"]')
    assert not test_names("tracking/report.py", 'KEY_METRICS = ("test_elbo",)')
    found = []
    for path in DECIDING:
        found += test_names(path, (ROOT / path).read_text())
    assert not found, f"test metrics named where selection is decided: {found}"


def test_test_metrics_are_refused_as_deciders():
    from tracking.registry import SelectionError, check_selection_metric, register
    from tuning.sweep import metric_for

    with pytest.raises(SelectionError, match="test metric") as e:
        metric_for(TrainConfig(model="sae", cluster_epochs=2), "cluster_acc_test", None)
    assert "--metric cluster_acc_test" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SelectionError, match="--registry-metric test_log_likelihood"):
        check_selection_metric("test_log_likelihood")
    with pytest.raises(SelectionError):  # refused before the registry is touched (no client, no store needed)
        register("runs:/x/pyfunc", "m", "x", "test_log_likelihood", "max", 1.0, "digest", client=object())
    assert check_selection_metric("val_log_likelihood") == "val_log_likelihood"
