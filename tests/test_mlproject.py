"""MLproject parameters and CLI flags stay in lockstep (names, types, defaults, and the command)."""
import re

import pytest
import yaml

from tests.conftest import ROOT

# CLI flags that are deliberately not MLproject parameters, with the reason.
NOT_PARAMETERS = {
    "train": {
        "tracking_uri": "mlflow run sets MLFLOW_TRACKING_URI", "experiment": "mlflow run --experiment-name",
        "run_name": "mlflow run --run-name", "no_tracking": "an MLflow project run is always tracked",
        "register": "set register_as instead", "image_every": "an optional int: the default schedule applies",
        "no_system_metrics": "boolean switch; system metrics stay on",
    },
    "main": {
        "tracking_uri": "mlflow run sets MLFLOW_TRACKING_URI", "experiment": "mlflow run --experiment-name",
        "mode": "follows the metric", "max_concurrent": "an optional int: Ray's resources limit concurrency",
        "address": "RAY_ADDRESS selects a cluster", "storage_path": "default ./ray_results",
        "name": "generated", "resume": "resume with python -m tuning --resume",
        "image_every": "an optional int: the default schedule applies", "no_system_metrics": "boolean switch",
        "verbose": "boolean switch", "latent_dim": "searched", "learning_rate": "searched",
        "kl_weight": "searched (VAE)", "sparsity_weight": "searched (SAE)", "sparsity_target": "searched (SAE)",
        "recon_loss": "auto per model and dataset", "traversal_steps": "default",
        **{k: "a recipe option: set it through -P preset=..." for k in (
            "lr_schedule", "warmup_epochs", "weight_decay", "input_dropout", "iw_train_samples", "cluster_epochs",
            "cluster_weight", "augment_shift", "augment_rotate", "iw_refine_steps", "consistency_weight",
            "contrast_weight", "contrast_temperature")},
    },
}
# Parameters whose MLproject default differs from the flag's, with the reason.
# (value, reason)
OTHER_DEFAULTS = {("main", "max_epochs"): (20, "the flag's default is the preset's epochs, else 20")}


def parsers():
    from training.__main__ import build_parser as training_parser, load_plugins
    from tuning.__main__ import build_parser as tuning_parser

    return {"train": training_parser(load_plugins()), "main": tuning_parser()}


@pytest.fixture(scope="module")
def project():
    return yaml.safe_load((ROOT / "MLproject").read_text())


@pytest.mark.parametrize("entry", ["train", "main"])
def test_parameters_match_flags(project, entry):
    parser = parsers()[entry]
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    spec = project["entry_points"][entry]
    params = spec["parameters"]
    assert set(params) | set(NOT_PARAMETERS[entry]) == set(actions), "a flag is neither a parameter nor excluded"
    assert not set(params) & set(NOT_PARAMETERS[entry])
    for name, p in params.items():
        action = actions[name]
        cli_default = action.default
        if (entry, name) in OTHER_DEFAULTS:
            assert p["default"] == OTHER_DEFAULTS[(entry, name)][0], name
        elif cli_default is None:
            assert p["default"] == "", f"{name}: an optional flag defaults to '' (not given)"
        else:
            assert str(p["default"]) == str(cli_default) or float(p["default"]) == float(cli_default), name
        want = "string" if action.type in (None, str) or p["default"] == "" else "float"
        assert p["type"] == want, name
        flag = "--" + name.replace("_", "-")
        assert re.search(rf"{flag} \{{{name}\}}", spec["command"]), f"{name} is not passed as {flag} {{{name}}}"
