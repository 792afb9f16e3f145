"""Model Registry: register a version, and move the `champion` alias only on improvement.

A version is compared with the current champion only on the same metric and the same
dataset digest; otherwise (or when it is not better) it is tagged `challenger`.
"""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION = "champion"
# Which final metric decides, and which direction is better.
DEFAULT_METRIC = {"vae": ("test_log_likelihood", "max"), "sae": ("cluster_acc_test", "max")}


def default_metric(model: str, labelled: bool) -> tuple[str, str]:
    if model == "sae" and not labelled:
        return "test_recon_mse", "min"
    return DEFAULT_METRIC[model]


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
    client = client or MlflowClient()
    mv = mlflow.register_model(model_uri, name, tags={"source_run": run_id, "metric": metric,
                                                      "metric_value": repr(float(value)), "mode": mode,
                                                      "dataset_digest": digest})
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
