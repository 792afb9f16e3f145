"""--repeats R: each configuration trained with R seeds, ranked by the mean; a real local Ray and SQLite store."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.test_tuning import children, sweep_cli, the_parent


def sweep_of(*flags):
    from tuning.__main__ import build_parser, sweep_from_args

    return sweep_from_args(build_parser().parse_args(list(flags)))


def test_index_is_rays_and_becomes_the_seed():
    from ray.tune.search.repeater import TRIAL_INDEX

    from tuning.repeats import INDEX, seeded

    assert INDEX == TRIAL_INDEX
    assert seeded({"latent_dim": 4, INDEX: 2}, 10) == {"latent_dim": 4, "seed": 12}
    assert seeded({"latent_dim": 4}, 10) == {"latent_dim": 4}


def test_configurations_rank_by_mean_and_only_complete_ones_win():
    from tuning.repeats import configurations

    def row(lr, value, seed, stopped=False):
        return {"learning_rate": lr, "val_elbo": value, "seed": seed, "status": "FINISHED", "stopped_early": stopped,
                "run_id": f"{lr}-{seed}"}

    rows = [row(1e-3, -30.0, 0), row(1e-3, -34.0, 1),  # mean -32: the best complete configuration
            row(2e-3, -31.0, 0), row(2e-3, -35.0, 1), row(2e-3, -36.0, 2),  # mean -34
            row(3e-3, -20.0, 0, stopped=True), row(3e-3, -21.0, 1)]  # best mean, but a seed was stopped early
    groups = configurations(rows, ("learning_rate",), "val_elbo", "max")
    assert [g["config"]["learning_rate"] for g in groups] == [1e-3, 2e-3, 3e-3]
    best = groups[0]
    assert best["mean"] == -32.0 and best["sd"] == pytest.approx(statistics.stdev([-30.0, -34.0]))
    assert best["seeds"] == 2 and best["best"]["run_id"] == "0.001-0"  # best on validation among its seeds
    assert not groups[2]["complete"] and groups[2]["mean"] == -20.5
    low = configurations(rows, ("learning_rate",), "val_elbo", "min")  # minimising: the lowest complete mean
    assert low[0]["config"]["learning_rate"] == 2e-3 and low[0]["best"]["run_id"] == "0.002-2"


def test_searchers_make_repeats_for_random_and_optuna():
    from ray import tune
    from ray.tune.search import Repeater

    from tuning.repeats import INDEX, tune_num_samples, tune_space
    from tuning.space import to_tune
    from tuning.sweep import searcher

    random = sweep_of("--repeats", "3", "--seed", "1", "--num-samples", "2")
    generator = searcher(random)
    tune.register_trainable("aesweep_noop", lambda config: None)
    generator.add_configurations({"x": {"run": "aesweep_noop", "num_samples": tune_num_samples(2, 3, "random"),
                                        "config": tune_space(to_tune(random.space), 3, "random")}})
    configs = [generator.next_trial().config for _ in range(6)]
    assert [c[INDEX] for c in configs] == [0, 1, 2, 0, 1, 2]
    first, second = ({k: v for k, v in c.items() if k != INDEX} for c in (configs[0], configs[3]))
    assert all({k: v for k, v in c.items() if k != INDEX} == first for c in configs[:3]) and first != second

    optuna = sweep_of("--repeats", "3", "--search", "optuna", "--seed", "1")
    wrapped = searcher(optuna)
    assert isinstance(wrapped, Repeater) and wrapped.repeat == 3
    assert tune_num_samples(2, 3, "optuna") == 6  # Repeater counts every trial
    wrapped.set_search_properties("val_elbo", "max", to_tune(optuna.space))
    suggested = [wrapped.suggest(f"t{i}") for i in range(6)]
    assert [s[INDEX] for s in suggested] == [0, 1, 2, 0, 1, 2]
    assert suggested[0] | {INDEX: 0} == suggested[1] | {INDEX: 0} != suggested[3] | {INDEX: 0}


def test_repeats_below_one_is_one_line(tmp_path):
    out = sweep_cli(tmp_path, "--repeats", "0")
    assert out.returncode == 2 and out.stderr.strip() == "error: invalid --repeats 0: give at least 1"


@pytest.mark.slow  # make test-slow (CI runs it): one of the slowest in make test
def test_sweep_with_repeats_ranks_configurations_and_registers_the_best_seed(tmp_path):
    out = sweep_cli(tmp_path, "--num-samples", "2", "--repeats", "2", "--max-epochs", "1", "--scheduler", "fifo",
                    "--hidden", "16", "--seed", "5", "--name", "rep", "--register-as", "rep-vae",
                    "--no-system-metrics")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = the_parent(client)
    assert parent.data.params["repeats"] == "2" and parent.data.params["num_samples"] == "2"
    kids = children(client, parent.info.run_id)
    assert len(kids) == 4 and all(k.info.status == "FINISHED" for k in kids)
    swept = ("latent_dim", "learning_rate", "kl_weight")
    by_config: dict[tuple, list] = {}
    for kid in kids:
        by_config.setdefault(tuple(kid.data.params[k] for k in swept), []).append(kid)
    assert len(by_config) == 2  # two configurations ...
    for group in by_config.values():  # ... each trained with the sweep's seed and the next one
        assert sorted(k.data.params["seed"] for k in group) == ["5", "6"]
        assert all(k.info.run_name.endswith(f"seed={k.data.params['seed']}") for k in group)
    # The ranking on the parent: each configuration's mean and sd over its two seeds, best first.
    table = json.loads(Path(client.download_artifacts(parent.info.run_id, "configurations.json",
                                                      str(tmp_path))).read_text())
    rows = [dict(zip(table["columns"], r)) for r in table["data"]]
    assert [r["rank"] for r in rows] == [1, 2] and all(r["seeds"] == 2 for r in rows)
    stats = {}
    for key, group in by_config.items():
        values = [k.data.metrics["val_elbo"] for k in group]
        stats[key] = (statistics.fmean(values), statistics.stdev(values), max(group, key=lambda k: k.data.metrics[
            "val_elbo"]))
    best_key = max(stats, key=lambda k: stats[k][0])
    mean, sd, best_seed = stats[best_key]
    assert rows[0]["val_elbo_mean"] == pytest.approx(mean) and rows[0]["val_elbo_sd"] == pytest.approx(sd)
    assert rows[0]["val_elbo_mean"] >= rows[1]["val_elbo_mean"]
    assert parent.data.metrics["best_config_val_elbo_mean"] == pytest.approx(mean)
    assert parent.data.metrics["best_config_val_elbo_sd"] == pytest.approx(sd)
    # The champion: the best configuration's best seed on validation, tagged with its configuration's mean ± sd.
    assert parent.data.tags["best_run_id"] == best_seed.info.run_id
    version = client.get_model_version_by_alias("rep-vae", "champion")
    assert version.tags["source_run"] == best_seed.info.run_id
    assert float(version.tags["config_val_elbo_mean"]) == pytest.approx(mean, rel=1e-5)
    assert float(version.tags["config_val_elbo_sd"]) == pytest.approx(sd, rel=1e-5)
    assert version.tags["config_seeds"] == "2" and "±" in version.tags["config_val_elbo"]
    assert "configurations by mean val_elbo over seeds" in out.stdout and "± " in out.stdout


def test_sweep_extensions_leave_mlflow_to_tracking():
    """Repeats, warm starts and PBT talk to MLflow only through tracking/ (tracking/sweep_history.py)."""
    import ast

    from tests.conftest import ROOT

    for name in ("repeats", "warm_start", "pbt"):
        tree = ast.parse((ROOT / "tuning" / f"{name}.py").read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
            {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in imported if m.split(".")[0] == "mlflow"}, name


def test_a_resumed_sweep_keeps_its_repeats_and_scheduler(capsys):
    from training.config import TrainConfig
    from tuning.sweep import continued

    sweep = sweep_of("--name", "s", "--resume")  # resumed without the flags it started with
    state = {"base": TrainConfig(epochs=3).to_dict(), "metric": "val_elbo", "mode": "max", "repeats": 3,
             "scheduler": "fifo", "perturbation_interval": None}
    again = continued(sweep, state)
    assert (again.repeats, again.scheduler, again.base.epochs) == (3, "fifo", 3)
