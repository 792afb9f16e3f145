"""--warm-start: a sweep begins with an earlier sweep's best configurations (random search) or tells Optuna
all of its results; a real local Ray and a real SQLite store."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.test_tuning import children, sweep_cli

SWEPT = ("latent_dim", "learning_rate", "kl_weight")


def parent_named(client, name):
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(exp_ids, filter_string=f"attributes.run_name = '{name}' and tags.sweep = 'true'")
    return run


def test_points_are_typed_and_kept_only_inside_the_space():
    from tuning.warm_start import points_of

    space = {"latent_dim": {"choice": [4, 8]}, "learning_rate": {"loguniform": [1e-4, 1e-2]}}
    trials = [{"params": {"latent_dim": "8", "learning_rate": "0.001"}, "value": -30.0},
              {"params": {"latent_dim": "16", "learning_rate": "0.001"}, "value": -20.0},  # 16 not a choice
              {"params": {"latent_dim": "4", "learning_rate": "0.5"}, "value": -25.0},  # outside the range
              {"params": {"latent_dim": "4"}, "value": -25.0}]  # a swept key missing
    points = points_of(trials, space, ("latent_dim", "learning_rate"))
    assert [(p["latent_dim"], p["learning_rate"], p["value"]) for p in points] == [(8, 0.001, -30.0)]
    assert isinstance(points[0]["latent_dim"], int)


def test_optuna_is_told_the_earlier_results():
    from dataclasses import replace

    from tuning.__main__ import build_parser, sweep_from_args
    from tuning.space import to_tune
    from tuning.sweep import searcher

    sweep = sweep_from_args(build_parser().parse_args(["--search", "optuna", "--seed", "3"]))
    told = (({"latent_dim": 8, "learning_rate": 1e-3, "kl_weight": 1.0}, -30.0),
            ({"latent_dim": 4, "learning_rate": 2e-3, "kl_weight": 2.0}, -40.0))
    optuna = searcher(replace(sweep, told=told))
    optuna.set_search_properties("val_elbo", "max", to_tune(sweep.space))
    done = optuna._ot_study.get_trials()  # Optuna's own study: the told trials are finished ones
    assert [(t.state.name, t.params, t.value) for t in done] == [("COMPLETE", p, v) for p, v in told]
    assert optuna._ot_study.best_value == -30.0
    assert optuna.suggest("t0") is not None  # and its first suggestion is a new one, not one of those


def test_unknown_earlier_sweep_is_one_line(tmp_path):
    out = sweep_cli(tmp_path, "--warm-start", "nothing-like-this")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "--warm-start nothing-like-this: no sweep or experiment of that name" in out.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_second_sweep_starts_from_the_first_ones_best(tmp_path):
    common = ["--max-epochs", "2", "--scheduler", "fifo", "--hidden", "16", "--no-system-metrics"]
    first = sweep_cli(tmp_path, *common, "--num-samples", "2", "--seed", "1", "--name", "first")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    earlier = children(client, parent_named(client, "first").info.run_id)
    best = max(earlier, key=lambda k: k.data.metrics["val_elbo"])

    # Random search: the first trial is the earlier sweep's best configuration (from another seed).
    second = sweep_cli(tmp_path, *common, "--num-samples", "1", "--seed", "2", "--name", "second",
                       "--warm-start", "first", "--warm-start-top", "1")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    parent = parent_named(client, "second")
    (kid,) = children(client, parent.info.run_id)
    assert {k: kid.data.params[k] for k in SWEPT} == {k: best.data.params[k] for k in SWEPT}
    assert parent.data.tags["warm_start"] == "first" and parent.data.tags["warm_start_points"] == "1"
    record = json.loads(Path(client.download_artifacts(parent.info.run_id, "warm_start.json", str(tmp_path)))
                        .read_text())
    assert record["points"][0]["latent_dim"] == int(best.data.params["latent_dim"])

    # Optuna, warm-started from the experiment (both sweeps): told every earlier result, it runs a new point.
    third = sweep_cli(tmp_path, *common, "--num-samples", "1", "--seed", "3", "--name", "third", "--search", "optuna",
                      "--warm-start", "aesweep-vae-digits")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    parent = parent_named(client, "third")
    assert parent.data.tags["warm_start_told"] == "2"  # 3 earlier trials, two of them the same configuration
    assert "Optuna told 2 earlier configurations" in third.stdout
    (kid,) = children(client, parent.info.run_id)
    assert kid.info.status == "FINISHED"
    assert all({k: kid.data.params[k] for k in SWEPT} != {k: e.data.params[k] for k in SWEPT} for e in earlier)
