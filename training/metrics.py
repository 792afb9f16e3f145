"""What a metric's name says about it: which direction is better, and whether it is a test figure.

    direction("val_loss")                 'min'   (losses and squared errors)
    direction("val_log_likelihood")       'max'
    is_test_metric("cluster_acc_test")    True    (computed once, at the end; never compared to choose)

No heavy imports: the registry, the sweep and the console tables read it.
"""
from __future__ import annotations

LOWER_IS_BETTER = ("loss", "mse")


def direction(metric: str) -> str:
    """'min' for a loss or a squared error, else 'max'."""
    return "min" if metric.endswith(LOWER_IS_BETTER) else "max"


def is_test_metric(name: str) -> bool:
    """A figure on the test images (`test_*`, `*_test`): computed once, at the end, for the report;
    never compared to choose anything (selection uses `val_*`)."""
    return name.startswith("test_") or name.endswith("_test")
