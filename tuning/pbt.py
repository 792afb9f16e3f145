"""Population Based Training (`--scheduler pbt`): Ray Tune's PopulationBasedTraining over the learning rate
and the loss weights (`kl_weight` for the VAE, `sparsity_weight` for the SAE), through the trials' own
checkpoints.

Every `--perturbation-interval` epochs a trial in the bottom quarter of the population takes the
checkpoint of one in the top quarter (its weights, optimizer state and epoch: "exploit") with that
trial's values, the mutable ones perturbed or resampled ("explore"), and trains on from there. The
trial sees it when it starts again: its restored checkpoint carries another trial's origin
(`ORIGIN`, written beside each checkpoint). It then records the exploit on its child run
(tracking.sweep_history.record_exploit: tags `pbt_exploit_<n>` and steps of `pbt/*` at the epoch).

    python -m tuning --model vae --dataset digits --scheduler pbt --num-samples 4 --max-epochs 20
"""
from __future__ import annotations

import json
from pathlib import Path

from training.config import ConfigError

MUTABLE = ("learning_rate", "kl_weight", "sparsity_weight")
ORIGIN = "aesweep-origin.json"


def mutable_keys(space: dict, model: str) -> tuple[str, ...]:
    """The swept keys PBT may change as trials train (those of MUTABLE that apply to `model`)."""
    from training.config import TrainConfig, applicable_params

    applies = applicable_params(TrainConfig(model=model))
    return tuple(k for k in MUTABLE if isinstance(space.get(k), dict) and k in applies)


def interval(epochs: int, given: int | None = None) -> int:
    """Epochs between perturbations: `given`, else a quarter of the epochs (at least 1)."""
    return int(given) if given else max(1, epochs // 4)


def check(sweep) -> None:
    """One line for what PBT cannot do here."""
    if sweep.scheduler != "pbt":
        if sweep.perturbation_interval is not None:
            raise ConfigError("--perturbation-interval is for --scheduler pbt")
        return
    if not mutable_keys(sweep.space, sweep.base.model):
        raise ConfigError(f"--scheduler pbt changes {' or '.join(MUTABLE)} as trials train; "
                          f"the space sweeps none of those that apply to the {sweep.base.model}")
    if sweep.num_samples < 2:
        raise ConfigError("--scheduler pbt needs a population: give --num-samples 2 or more")
    if sweep.repeats > 1:
        raise ConfigError("--scheduler pbt copies trials into each other: it cannot be combined with --repeats")
    if sweep.search != "random":
        raise ConfigError("--scheduler pbt changes a trial's values as it trains, which a searcher cannot learn "
                          "from: use --search random")
    if sweep.workers_per_trial > 1:
        raise ConfigError("--scheduler pbt runs single-worker trials: use --workers-per-trial 1")
    if sweep.perturbation_interval is not None and sweep.perturbation_interval < 1:
        raise ConfigError(f"invalid --perturbation-interval {sweep.perturbation_interval}: give at least 1 epoch")


def scheduler(sweep):
    from ray.tune.schedulers import PopulationBasedTraining

    from tuning.space import to_tune

    class UntilTheLastEpoch(PopulationBasedTraining):
        """Never exploits on a trial's final report: its training is over (it would only take another's
        values and checkpoint and end there)."""

        def on_trial_result(self, tune_controller, trial, result):
            if result.get("final"):
                return self.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

    keys = mutable_keys(sweep.space, sweep.base.model)
    domains = to_tune({k: sweep.space[k] for k in keys})
    mutations = {k: (sweep.space[k]["choice"] if "choice" in sweep.space[k] else domains[k]) for k in keys}
    # Synchronous: the population meets at each perturbation epoch (a trial that arrives first waits, paused at
    # its checkpoint), so a recipient takes its donor's weights of the same epoch, and a trial that started
    # late (busy machine) is still compared with the others.
    return UntilTheLastEpoch(time_attr="epoch", synch=True,
                             perturbation_interval=interval(sweep.base.epochs, sweep.perturbation_interval),
                             hyperparam_mutations=mutations, quantile_fraction=0.25, resample_probability=0.25)


# ------------------------------------------------------------------ in the trial


def write_origin(checkpoint_dir: Path, trial_id: str, run_id: str) -> None:
    """Mark the trial's checkpoint directory as this trial's (every checkpoint it reports carries it)."""
    Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    (Path(checkpoint_dir) / ORIGIN).write_text(json.dumps({"trial_id": trial_id, "run_id": run_id}))


def adopt(checkpoint_dir: Path, sampled: dict, keys: tuple[str, ...], trial_id: str) -> dict | None:
    """A restored checkpoint of another trial (PBT's exploit): made this trial's, with this trial's values of
    the mutable `keys` in its config (so training resumes from it; the optimizer takes the config's learning
    rate). Returns {"donor_trial", "donor_run_id", "epoch", "donor_metrics"}, or None for the trial's own."""
    from training import checkpoint as ckpt

    path = Path(checkpoint_dir) / ORIGIN
    if not path.is_file() or not ckpt.exists(checkpoint_dir):
        return None
    origin = json.loads(path.read_text())
    if origin.get("trial_id") == trial_id:
        return None
    state = ckpt.read_state(checkpoint_dir)
    state["config"] |= {k: sampled[k] for k in keys if k in sampled}
    (Path(checkpoint_dir) / ckpt.STATE).write_text(json.dumps(state, indent=1))
    history = state["history"]
    return {"donor_trial": origin.get("trial_id"), "donor_run_id": origin.get("run_id"), "epoch": int(state["epoch"]),
            "donor_metrics": history[-1] if history else {}}


def on_start(setup, sampled: dict, trial_id: str, run_id: str, checkpoint_dir: Path, restored_epoch: int | None):
    """Called by the trial before it trains, under PBT: records an exploit (or, at a trial's first start,
    its initial values as step 0 of `pbt/*`), then marks the checkpoint directory as this trial's."""
    from tracking.sweep_history import log_hyperparameters, record_exploit

    keys = setup.pbt_keys
    exploit = adopt(checkpoint_dir, sampled, keys, trial_id) if restored_epoch is not None else None
    if exploit is not None:
        new = {k: sampled[k] for k in setup.swept if k in sampled}
        metric = setup.metric
        donor = {k: v for k, v in exploit["donor_metrics"].items() if k in (metric, "loss")}
        record_exploit(setup.tracking_uri, run_id, exploit["donor_trial"], exploit["donor_run_id"],
                       exploit["epoch"], new, donor)
    elif restored_epoch is None:
        log_hyperparameters(setup.tracking_uri, run_id, 0, {k: sampled[k] for k in keys if k in sampled})
    write_origin(checkpoint_dir, trial_id, run_id)


def reporter(report, checkpoint_cls, every: int, metric: str = ""):
    """A TuneReporter that checkpoints every `every` epochs (PBT's perturbation interval) instead of by time:
    a donor's checkpoint is then at most one interval old, and Tune keeps them all (few: epochs / interval)."""
    from tuning.tracked_trial import TuneReporter

    class EpochReporter(TuneReporter):
        def on_epoch_end(self, epoch, logs, context):
            logs = {**logs, "epoch": epoch, "replicas": context.num_replicas, "workers": context.num_workers}
            if epoch == context.config.epochs:
                self.pending = logs
                return
            due = epoch == 1 or epoch % every == 0
            # (A report PBT pauses the trial at does not return; that is no early stop: it resumes later.)
            self.report(logs, checkpoint=self.checkpoint(context) if due else None)

        def finish(self, result, checkpoint_dir) -> None:
            if self.pending is None and result.history and result.epochs_completed == result.config.epochs:
                # Exploited at its last epoch: nothing left to train, the donor's final epoch is this trial's.
                self.pending = {**result.history[-1], "epoch": result.epochs_completed}
            super().finish(result, checkpoint_dir)

    return EpochReporter(report, checkpoint_cls, checkpoint_seconds=0.0, metric=metric)
