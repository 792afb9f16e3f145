"""Tables of runs: the best runs of an experiment, for the console."""
from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient

from training.metrics import direction
from tracking.registry import SelectionError, check_selection_metric, default_metric
from tracking.secrets import safe_uri
from tracking.store import prepare

# Shown beside the deciding metric (display only: runs are ordered by a validation metric).
KEY_METRICS = ("val_log_likelihood", "val_cluster_acc", "val_recon_mse", "test_log_likelihood", "test_elbo",
               "cluster_acc_test", "nmi_test", "test_recon_mse")


def best_runs(uri: str, experiment: str | None, metric: str | None, top: int):
    """[(experiment name, metric, mode, runs dataframe)] for each experiment asked for."""
    prepare(uri)
    client = MlflowClient(uri)
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise LookupError(f"no experiment named {experiment!r} in {safe_uri(uri)}")
        exps = [found]
    else:
        exps = [e for e in client.search_experiments() if e.name.startswith("aesweep-")]
    out = []
    for exp in exps:
        if metric:
            check_selection_metric(metric, "--metric")
            choices = [(metric, direction(metric))]
        else:  # the registry's metric: labelled data's if these runs have it, else unlabelled data's
            kind = model_kind(client, exp.experiment_id)
            choices = [default_metric(kind, True), default_metric(kind, False)]
        for m, mode in choices:
            order = "ASC" if mode == "min" else "DESC"
            # Only runs that have the metric: a sweep's parent (and an `mlflow run` project run) has no model.
            runs = mlflow.search_runs([exp.experiment_id], order_by=[f"metrics.`{m}` {order}"], max_results=top,
                                      filter_string=f"attributes.status = 'FINISHED' and metrics.`{m}` > -1e300")
            if f"metrics.{m}" in runs and runs[f"metrics.{m}"].notna().any():
                break
        out.append((exp.name, m, order, runs))
    return out


def model_kind(client: MlflowClient, experiment_id: str) -> str:
    """The model of the experiment's latest run that names one (tag `model_kind`, set on every training and
    sweep run); 'vae' for an experiment without any."""
    runs = client.search_runs([experiment_id], filter_string="tags.model_kind != ''", max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0].data.tags["model_kind"] if runs else "vae"


def print_best(uri: str, experiment: str | None, metric: str | None, top: int) -> int:
    try:
        tables = best_runs(uri, experiment, metric, top)
    except (LookupError, SelectionError) as e:
        print(f"error: {e}")
        return 2
    if not tables:
        from tracking.commands import python_command

        print(f"no aesweep experiments in {safe_uri(uri)}; train one with {python_command('training')}")
        return 0
    for name, m, mode, runs in tables:
        print(f"\n{name}  (best by {m}, {'lower' if mode == 'ASC' else 'higher'} is better)")
        if runs.empty:
            print("  no finished runs")
            continue
        cols = [c for c in dict.fromkeys((m, *KEY_METRICS)) if f"metrics.{c}" in runs]
        header = f"  {'run id':<32}  " + "  ".join(f"{c:>18}" for c in cols) + "  model"
        print(header)
        for _, r in runs.iterrows():
            vals = "  ".join(f"{r[f'metrics.{c}']:>18.4f}" for c in cols)
            print(f"  {r['run_id']:<32}  {vals}  {r.get('tags.pyfunc_model_uri') or '-'}")
    return 0
