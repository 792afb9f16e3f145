"""MLproject parameters and CLI flags stay in lockstep (names, types, defaults, and the command)."""
import re

import pytest
import yaml

from tests.conftest import ROOT

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
    """Every parameter is a flag of its CLI, with the flag's default and type, passed as --flag {name}; the
    command passes nothing else. Which flags a project run exposes is MLproject's own choice (see below)."""
    parser = parsers()[entry]
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    spec = project["entry_points"][entry]
    params = spec["parameters"]
    assert set(params) <= set(actions), f"not flags of the CLI: {sorted(set(params) - set(actions))}"
    assert set(re.findall(r"\{(\w+)\}", spec["command"])) == set(params), "the command passes other names"
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


def test_train_takes_every_training_flag(project):
    """`-e train` is `python -m training` with every flag that takes a value, but for the tracking group's:
    under `mlflow run` MLflow decides where and how the run is tracked (its --experiment-name, --run-name,
    MLFLOW_TRACKING_URI), except what is registered (register_as, registry_metric). Derived from the parser
    and TrainConfig, so a new field or flag cannot be forgotten."""
    from training.config import config_fields

    parser = parsers()["train"]
    tracking = {a.dest for g in parser._action_groups if g.title == "tracking (MLflow)" for a in g._group_actions}
    takes_value = {a.dest for a in parser._actions if a.nargs != 0 and a.dest != "help"}
    params = set(project["entry_points"]["train"]["parameters"])
    assert takes_value - tracking <= params
    assert {f.name for f in config_fields()} <= params
