"""Metrics that decide: which one by default, which direction is better, and whether a name is a test figure.

    direction("val_loss")                 'min'   (losses and squared errors)
    direction("val_log_likelihood")       'max'
    is_test_metric("cluster_acc_test")    True    (computed once, at the end; never compared to choose)
    sweep_metric("vae", clustering=False) ('val_elbo', 'max')
    registry_metric("sae", labelled=False) ('val_recon_mse', 'min')

No heavy imports: the registry, the sweep and the console tables read it.
"""
from __future__ import annotations

LOWER_IS_BETTER = ("loss", "mse")

# What ranks a sweep's trials by default: a validation figure every epoch reports (so ASHA can compare trials
# early), by model; a clustering recipe (IDEC fine-tuning, labelled data) by how well it clusters held-out images.
SWEEP_METRIC = {"vae": "val_elbo", "sae": "val_loss"}
CLUSTERING_SWEEP_METRIC = "val_cluster_acc"
# What the registry judges a finished training by, by (model, labelled data): the VAE by its importance-weighted
# log-likelihood of the validation images (the test headline's estimator), the SAE by k-means accuracy on the
# validation codes when labels exist, else by reconstruction of the validation images.
REGISTRY_METRIC = {("vae", True): "val_log_likelihood", ("vae", False): "val_log_likelihood",
                   ("sae", True): "val_cluster_acc", ("sae", False): "val_recon_mse"}


def sweep_metric(model: str, clustering: bool) -> tuple[str, str]:
    """The default (metric, direction) a sweep of `model` ranks its trials by."""
    name = CLUSTERING_SWEEP_METRIC if clustering else SWEEP_METRIC[model]
    return name, direction(name)


def registry_metric(model: str, labelled: bool) -> tuple[str, str]:
    """The default (metric, direction) that decides the registry's champion for `model`."""
    name = REGISTRY_METRIC[(model, bool(labelled))]
    return name, direction(name)


def direction(metric: str) -> str:
    """'min' for a loss or a squared error, else 'max'."""
    return "min" if metric.endswith(LOWER_IS_BETTER) else "max"


def is_test_metric(name: str) -> bool:
    """A figure on the test images (`test_*`, `*_test`): computed once, at the end, for the report;
    never compared to choose anything (selection uses `val_*`)."""
    return name.startswith("test_") or name.endswith("_test")
