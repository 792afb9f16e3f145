"""Model Registry: register a version, and move the `champion` alias only on improvement.

A version is compared with the current champion only on the same validation metric, the same
dataset digest and the same likelihood (decoder); otherwise (or when it is not better) it is tagged `challenger`. Test metrics
never decide: they are computed once, at the end, for the report.
"""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.errors import UserError
from training.metrics import REGISTRY_METRIC, is_test_metric, registry_metric

CHAMPION = "champion"
LIKELIHOOD_TAG = "recon_likelihood"  # set on every training run by tracking.callback
# Which final validation metric decides, and which direction is better, by (model, labelled data):
# training.metrics.REGISTRY_METRIC's, with their directions.
DEFAULT_METRIC = {key: registry_metric(*key) for key in REGISTRY_METRIC}


class SelectionError(UserError, ValueError):
    """A test metric was asked to decide."""


def default_metric(model: str, labelled: bool) -> tuple[str, str]:
    return registry_metric(model, labelled)


def check_selection_metric(metric: str, flag: str = "--registry-metric") -> str:
    """`metric`, if it may decide; a test metric stops with one line saying what to use instead."""
    if is_test_metric(metric):
        raise SelectionError(f"{flag} {metric} is a test metric; choose on validation metrics (val_*, e.g. "
                             f"val_log_likelihood, val_cluster_acc, val_recon_mse): test figures are reported, "
                             f"never compared to choose")
    return metric


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    promoted: bool
    reason: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{CHAMPION}" if self.promoted else f"models:/{self.name}/{self.version}"

    def message(self) -> str:
        role = f"is now {self.name}@{CHAMPION}" if self.promoted else "is tagged challenger"
        return f"[aesweep] registered {self.name} version {self.version}: {role} ({self.reason})"


def register(model_uri: str, name: str, run_id: str, metric: str, mode: str, value: float,
             digest: str, client: MlflowClient | None = None) -> Registration:
    check_selection_metric(metric, "registry metric")  # before anything is written
    client = client or MlflowClient()
    # Log-likelihoods under different decoders (Bernoulli, continuous Bernoulli, Gaussian) are not comparable.
    likelihood = client.get_run(run_id).data.tags.get(LIKELIHOOD_TAG, "")
    mv = mlflow.register_model(model_uri, name, tags={"source_run": run_id, "metric": metric,
                                                      "metric_value": repr(float(value)), "mode": mode,
                                                      "dataset_digest": digest, "likelihood": likelihood})
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is None:
        promoted, reason = True, f"first version with {metric} = {value:.4f}"
    elif current.tags.get("metric") != metric:
        promoted, reason = False, (f"champion v{current.version} was judged on {current.tags.get('metric')}, "
                                   f"not {metric}; compare them by hand")
    elif current.tags.get("dataset_digest") != digest:
        promoted, reason = False, (f"champion v{current.version} was evaluated on other data (digest "
                                   f"{current.tags.get('dataset_digest', '?')[:12]} vs {digest[:12]})")
    elif current.tags.get("likelihood", "") != likelihood:
        promoted, reason = False, (f"champion v{current.version}'s {metric} is under the "
                                   f"{current.tags.get('likelihood') or 'unrecorded'} likelihood, this one's under "
                                   f"{likelihood or 'unrecorded'}: not comparable; compare them by hand")
    else:
        best = float(current.tags["metric_value"])
        better = value > best if mode == "max" else value < best
        word = "beats" if better else "does not beat"
        promoted, reason = better, f"{metric} {value:.4f} {word} champion v{current.version}'s {best:.4f}"
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, mv.version)
        client.delete_model_version_tag(name, mv.version, "challenger") if "challenger" in mv.tags else None
    else:
        client.set_model_version_tag(name, mv.version, "challenger", "true")
    return Registration(name, str(mv.version), promoted, reason)
