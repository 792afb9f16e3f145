"""--scheduler pbt: Population Based Training over the learning rate and the loss weight, through the trials'
checkpoints; each exploit recorded on the child run. A real local Ray and a real SQLite store."""
from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.test_tuning import children, sweep_cli, the_parent


def sweep_of(*flags):
    from tuning.__main__ import build_parser, sweep_from_args

    return sweep_from_args(build_parser().parse_args(list(flags)))


def test_pbt_mutates_the_learning_rate_and_the_models_loss_weight():
    from ray.tune.schedulers import PopulationBasedTraining

    from tuning.sweep import scheduler

    vae = sweep_of("--scheduler", "pbt", "--max-epochs", "20")
    pbt = scheduler(vae)
    assert isinstance(pbt, PopulationBasedTraining)
    assert set(pbt._hyperparam_mutations) == {"learning_rate", "kl_weight"} and pbt._perturbation_interval == 5
    sae = sweep_of("--scheduler", "pbt", "--model", "sae", "--perturbation-interval", "2")
    assert set(scheduler(sae)._hyperparam_mutations) == {"learning_rate", "sparsity_weight"}
    assert scheduler(sae)._perturbation_interval == 2


@pytest.mark.parametrize("flags, message", [
    (["--repeats", "2"], "cannot be combined with --repeats"),
    (["--search", "optuna"], "use --search random"),
    (["--num-samples", "1"], "needs a population"),
    (["--perturbation-interval", "0"], "invalid --perturbation-interval 0"),
])
def test_what_pbt_cannot_do_is_one_line(tmp_path, capsys, flags, message):
    from tuning.__main__ import main

    assert main(["--scheduler", "pbt", "--storage-path", str(tmp_path), *flags]) == 2  # before Ray or any run
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_exploited_checkpoint_takes_the_new_values(tmp_path):
    """The trial side of an exploit, on a real checkpoint: another trial's origin is recognised, the config
    takes the trial's new values, and training resumes from it at the new learning rate."""
    from training.callbacks import Callback
    from training.config import TrainConfig
    from training.loop import train
    from tuning.pbt import ORIGIN, adopt, write_origin

    donor = TrainConfig(dataset="digits", hidden=(16,), latent_dim=2, epochs=1, batch_size=256, iw_samples=5,
                        learning_rate=1e-3, kl_weight=1.0)
    ckpt = tmp_path / "ckpt"
    write_origin(ckpt, "donor_00000", "run-d")
    train(donor, checkpoint_dir=str(ckpt), evaluate_at_end=False)
    assert adopt(ckpt, {"learning_rate": 3e-3}, ("learning_rate",), "donor_00000") is None  # its own
    new = {"learning_rate": 3e-3, "kl_weight": 2.0}
    exploit = adopt(ckpt, new, ("learning_rate", "kl_weight"), "other_00001")
    assert exploit["donor_trial"] == "donor_00000" and exploit["donor_run_id"] == "run-d" and exploit["epoch"] == 1
    assert json.loads((ckpt / ORIGIN).read_text())["trial_id"] == "donor_00000"  # the trial writes its own next
    seen = {}

    class Spy(Callback):
        def on_train_begin(self, context):
            seen["start"] = context.start_epoch

    result = train(donor.replace(epochs=2, **new), callbacks=[Spy()], checkpoint_dir=str(ckpt),
                   evaluate_at_end=False)
    assert seen["start"] == 1 and result.epochs_completed == 2  # continued from the donor's epoch
    with np.load(ckpt / "weights.npz") as saved:  # the optimizer's variables: iteration, learning_rate, ...
        assert float(saved["o1"]) == pytest.approx(3e-3)  # the new rate, not the donor's
    assert json.loads((ckpt / "state.json").read_text())["config"]["kl_weight"] == 2.0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pbt_sweep_records_exploits_that_continue_from_the_donors_checkpoint(tmp_path):
    out = sweep_cli(tmp_path, "--scheduler", "pbt", "--num-samples", "2", "--max-epochs", "4",
                    "--perturbation-interval", "2", "--hidden", "16", "--seed", "0", "--name", "pbt",
                    "--no-system-metrics", "--max-failures", "0")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = the_parent(client)
    assert parent.info.status == "FINISHED" and parent.data.params["scheduler"] == "pbt"
    kids = {k.data.tags["ray_trial_id"]: k for k in children(client, parent.info.run_id)}
    assert len(kids) == 2 and all(k.info.status == "FINISHED" for k in kids.values())
    exploits = []
    for trial_id, kid in kids.items():
        # Every trial's schedule of values starts at step 0 with its sampled ones.
        assert [m.step for m in client.get_metric_history(kid.info.run_id, "pbt/learning_rate")][0] == 0
        for n in range(1, int(kid.data.tags.get("pbt_exploits", "0")) + 1):
            record = json.loads(kid.data.tags[f"pbt_exploit_{n}"])
            (mark,) = [m for m in client.get_metric_history(kid.info.run_id, "pbt/exploit") if m.value == n]
            exploits.append((mark.timestamp, trial_id, record))
    assert exploits, "no trial was exploited: " + out.stdout[-2000:]
    # The first exploit of the sweep (its donor had trained on its own until then):
    _, recipient, record = min(exploits, key=lambda e: e[0])
    donor_id, epoch = record["donor_trial"], record["epoch"]
    assert donor_id in kids and donor_id != recipient and record["donor_run_id"] == kids[donor_id].info.run_id
    run = kids[recipient].info.run_id
    # The checkpoint it continued from is the donor's at that epoch: the metrics it carries are the donor's.
    donor_history = {m.step: m.value for m in client.get_metric_history(kids[donor_id].info.run_id, "val_elbo")}
    carried = {m.step: m.value for m in client.get_metric_history(run, "pbt/donor_val_elbo")}
    assert carried[epoch] == pytest.approx(donor_history[epoch], rel=1e-9)
    # With the donor's values (its latent size: its weights), the mutable ones recorded as a step.
    assert record["new"]["latent_dim"] == int(kids[donor_id].data.params["latent_dim"])
    lr = {m.step: m.value for m in client.get_metric_history(run, "pbt/learning_rate")}
    assert lr[epoch] == pytest.approx(record["new"]["learning_rate"])
    # Synchronous PBT: donor and recipient met at the same epoch, the recipient then trained to the end.
    assert epoch == 2 and "test_elbo" in client.get_run(run).data.metrics
    assert max(m.step for m in client.get_metric_history(run, "loss")) == 4
