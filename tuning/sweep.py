"""The sweep driver: parent MLflow run, Ray Tune over the training function, best model registered.

Stages:
  1. one-way config: the base TrainConfig and the search space, validated before Ray starts;
  2. the tracking store and the sweep's parent run, created here (under `mlflow run`, the
     project's run is the parent); its id is saved beside Tune's state so --resume reuses it;
  3. Ray: local, or a cluster via --address / RAY_ADDRESS (code shipped as runtime_env working_dir);
  4. Tuner(...).fit(), or Tuner.restore(...).fit() with --resume;
  5. the summary (tuning.summary): best trial registered, comparison table and figures on the parent.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from training.config import ConfigError, TrainConfig
from training.errors import UserError
from tuning import ROOT

STATE_FILE = "aesweep-sweep.json"
WORKING_DIR_EXCLUDES = ["mlflow.db", "mlruns/", "mlartifacts/", "ray_results/", "runs/", "reports/",
                        "**/__pycache__/", ".pytest_cache/", "*.egg-info/", "tests/", ".venv/"]
COORDINATOR_CPU = 0.01
# A reused trial process first waits for the previous trial's thread to end (its MLflow run closed; Tune
# stopping a trial ends it at its next report): Ray's default of 2 s fails the next trial on a busy machine.
REUSE_TIMEOUT = "TUNE_FUNCTION_THREAD_TIMEOUT_S"


@dataclass(frozen=True)
class SweepConfig:
    """Everything about the sweep itself (the per-trial training config is `base`)."""

    base: TrainConfig
    space: dict
    num_samples: int = 8
    search: str = "random"  # random | optuna
    scheduler: str = "asha"  # asha | fifo | pbt
    metric: str = ""
    mode: str = ""
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    workers_per_trial: int = 1
    max_concurrent: int | None = None
    max_failures: int = 2
    address: str | None = None
    storage_path: str = ""
    name: str = ""
    resume: bool = False
    tracking_uri: str | None = None
    experiment: str | None = None
    register_as: str | None = None
    image_every: int | None = None
    system_metrics: bool = True
    top_k: int = 4
    verbose: bool = False
    # Points of the space tried first (e.g. a preset's): with FIFO the best trial is then at least as good.
    start_points: tuple[dict, ...] = ()
    repeats: int = 1  # seeds per configuration (tuning/repeats.py)
    warm_start: str = ""  # an earlier sweep or experiment to start from (tuning/warm_start.py)
    warm_start_top: int = 4
    told: tuple[tuple[dict, float], ...] = ()  # earlier (point, result) pairs told to Optuna
    warm_start_from: str = ""
    perturbation_interval: int | None = None  # PBT's, in epochs (tuning/pbt.py)

    @property
    def swept(self) -> tuple[str, ...]:
        """The searched fields, in the space's order (fixed values in the space are constants)."""
        return tuple(k for k, v in self.space.items() if isinstance(v, dict))

    def constants(self) -> dict:
        """The training config every trial shares: what applies to the model, less the swept fields."""
        from training.config import applicable_params

        fixed = {k: v for k, v in self.space.items() if k not in self.swept}
        return {k: v for k, v in applicable_params(self.base.to_dict() | fixed).items() if k not in self.swept}

    def validate(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"invalid num_samples={self.num_samples}: must be >= 1")
        if self.search not in ("random", "optuna"):
            raise ConfigError(f"invalid search={self.search!r}: choose random or optuna")
        if self.scheduler not in ("asha", "fifo", "pbt"):
            raise ConfigError(f"invalid scheduler={self.scheduler!r}: choose asha, fifo or pbt")
        if self.repeats < 1:
            raise ConfigError(f"invalid --repeats {self.repeats}: give at least 1")
        if self.warm_start_top < 1:
            raise ConfigError(f"invalid --warm-start-top {self.warm_start_top}: give at least 1")
        from tuning.pbt import check

        check(self)
        if self.mode not in ("min", "max"):
            raise ConfigError(f"invalid mode={self.mode!r}: choose min or max")
        if self.workers_per_trial < 1:
            raise ConfigError(f"invalid workers_per_trial={self.workers_per_trial}: must be >= 1")
        if self.cpus_per_trial < 0 or self.gpus_per_trial < 0:
            raise ConfigError("cpus_per_trial and gpus_per_trial must be >= 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"invalid max_concurrent={self.max_concurrent}: must be >= 1")


def choose_seed(given: int | None) -> int:
    """The sweep's seed (search, and every trial's training): `given`, else a fresh one, so a new sweep
    samples new points; it is logged on the parent (param and tag `seed`) to repeat the sweep with --seed."""
    if given is not None:
        return int(given)
    import secrets

    return secrets.randbelow(2**31)


def metric_for(base: TrainConfig, metric: str | None, mode: str | None) -> tuple[str, str]:
    """The sweep's (metric, mode): as given, else the default for its model and recipe (training.metrics)."""
    from tracking.registry import check_selection_metric
    from training.metrics import direction, sweep_metric

    metric = check_selection_metric(metric or sweep_metric(base.model, bool(base.cluster_epochs))[0], "--metric")
    return metric, direction(metric) if mode is None else mode


def quiet_ray_env(verbose: bool) -> None:
    if verbose:
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard/CSV/JSON loggers needed
    # The classic reporter prints one compact table (chosen metric, epoch, sampled values) every few seconds.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


# Ray listens where its node's address is: on Linux the machine's outward address, with its GCS, raylet
# and workers' gRPC servers reachable from the network. A sweep of our own needs nobody else: Ray's
# single-machine setting (meant for macOS and Windows) makes the node's address loopback, so every port
# of the local Ray binds 127.0.0.1 (tests/test_reliability.py lists them). Read when Ray is imported.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_loopback_set = False  # whether this process set it (a user's own setting is never undone)


def loopback_only(on: bool) -> None:
    """Make the Ray that this process starts listen on loopback only (on=True), or as Ray decides."""
    global _loopback_set
    if on and LOOPBACK_ONLY not in os.environ:
        os.environ[LOOPBACK_ONLY], _loopback_set = "0", True
    elif not on and _loopback_set:  # joining a cluster after a local sweep in this process: undo ours only
        os.environ.pop(LOOPBACK_ONLY, None)  # (a user's setting stays: `make cluster-up`'s loopback cluster)
        _loopback_set = False
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:  # Ray imported before (a sweep run from Python): its constant, read at import
        constants.ENABLE_RAY_CLUSTER = os.environ.get(LOOPBACK_ONLY, "1").lower() not in ("0", "false")


def init_ray(sweep: SweepConfig, cluster: bool) -> None:
    import logging

    loopback_only(not cluster)
    import ray

    if ray.is_initialized():
        return
    # Workers must import this checkout's packages. On a cluster they arrive as working_dir; locally
    # the same keeps a sweep independent of how (or whether) the project is installed.
    runtime_env = {"working_dir": str(ROOT), "excludes": WORKING_DIR_EXCLUDES,
                   "env_vars": {"PYTHONPATH": ".", REUSE_TIMEOUT: "300"}
                   | ({"AESWEEP_VERBOSE": "1"} if sweep.verbose else {})}
    # Locally "local": a new Ray of our own; an address of None would join whatever cluster `ray start` last
    # left on this machine (/tmp/ray/ray_current_cluster).
    kwargs = dict(address=sweep.address if cluster else "local", runtime_env=runtime_env,
                  log_to_driver=sweep.verbose, logging_level=logging.INFO if sweep.verbose else logging.ERROR)
    if not cluster:
        # The dashboard stays on loopback. Ray Train needs it: its state API is what releases the
        # placement group of a trial that ASHA stopped (without it the next trial waits forever). Single-worker
        # trials do not, and its processes would take CPU from the trials.
        kwargs |= dict(dashboard_host="127.0.0.1", include_dashboard=sweep.workers_per_trial > 1,
                       # Ray starts a Python worker per CPU as the driver connects; Tune's trial actors never
                       # took them (each trial got a new process; Ray 2.60), so they only took CPU from the start.
                       _system_config={"prestart_worker_first_driver": False})
        if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
            print("[aesweep] warning: RAY_AUTH_MODE=disabled: every user of this machine can run "
                  "code on it while the sweep runs; unset it (token authentication is Ray's default)",
                  file=sys.stderr)
        from tuning import reaper

        reaper.start()  # the local Ray's processes end with this driver, even if it is killed
    try:
        ray.init(**kwargs)
    except ConnectionError as e:
        if not cluster or not auth_refused(e):
            raise
        raise UserError(f"the Ray cluster at {sweep.address or os.environ.get('RAY_ADDRESS')} refused this driver: "
                        f"set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or the head's "
                        f"~/.ray/auth_token copied to this machine), as for `ray start --address` "
                        f"(README, On a Ray cluster)") from None
    if not cluster:
        private_token()


def private_token() -> None:
    """Ray writes its cluster token to ~/.ray/auth_token readable by every local user: only ours now."""
    token = Path.home() / ".ray" / "auth_token"
    try:
        if token.is_file() and token.stat().st_uid == os.getuid():
            token.chmod(0o600)
            token.parent.chmod(0o700)
    except OSError:  # a token we may not change (shared home, read-only): Ray's own setting stands
        pass


def auth_refused(error: BaseException | None) -> bool:
    """Whether Ray's connection error comes from token authentication (its cause chain holds the reason)."""
    from ray.exceptions import AuthenticationError

    while error is not None:
        if isinstance(error, AuthenticationError) or "Authentication token is missing" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def run(sweep: SweepConfig) -> dict:
    """Run (or resume) a sweep; returns the summary dict (best trial, registration, parent run id)."""
    from tuning import timing

    timing.mark("driver:start")
    sweep.validate()
    quiet_ray_env(sweep.verbose)
    from tracking.secrets import safe_uri
    from tracking.store import default_experiment, resolve_uri

    cluster = bool(sweep.address or os.environ.get("RAY_ADDRESS"))
    storage = Path(sweep.storage_path or ROOT / "ray_results").expanduser().resolve()
    state_path = storage / sweep.name / STATE_FILE
    state = read_state(state_path) if sweep.resume else None
    sweep = continued(sweep, state)
    uri = state["tracking_uri"] if state else resolve_uri(sweep.tracking_uri)

    from tuning.space import to_tune

    from tuning import repeats, warm_start

    param_space = repeats.tune_space(to_tune(sweep.space), sweep.repeats, sweep.search)  # validates the space
    sweep = warm_start.apply(sweep, uri)  # before anything is created: an unknown sweep is one line
    # 1b. Ray first: on a cluster of several nodes, a local store cannot be reached by the others.
    init_ray(sweep, cluster)
    timing.mark("driver:ray")
    check_store_reachable(uri)
    # 2. store, experiment and the parent run (a resumed sweep's own; under `mlflow run`, the project's)
    from tracking.sweep_runs import fail_parent, open_parent

    parent = open_parent(uri, sweep.name, sweep.experiment or default_experiment(sweep.base.model, sweep.base.dataset),
                         resume_run_id=state["parent_run_id"] if state else None)
    storage.joinpath(sweep.name).mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps({"parent_run_id": parent.run_id, "experiment_id": parent.experiment_id,
                                      "tracking_uri": parent.uri, "base": sweep.base.to_dict(),
                                      "metric": sweep.metric, "mode": sweep.mode, "repeats": sweep.repeats,
                                      "scheduler": sweep.scheduler,
                                      "perturbation_interval": sweep.perturbation_interval}, indent=1))
    print(f"[aesweep] sweep {sweep.name}: parent MLflow run {parent.run_id} (experiment {parent.experiment_id}) "
          f"at {safe_uri(parent.uri)}")
    from tracking.session import ending_run
    from tuning.summary import summarize

    with ending_run(defer_sigterm=False) as outcome:
        if not sweep.resume:
            log_sweep_params(sweep)
        results = fit(sweep, param_space, parent.uri, parent.experiment_id, parent.run_id, storage)
        timing.mark("driver:tuned")
        summary = summarize(results, sweep, parent.uri, parent.experiment_id, parent.run_id)
        timing.mark("driver:summary")
        from tracking.sweep_report import write_at_end

        write_at_end(parent.uri, parent.run_id, storage / sweep.name / "report")  # also logged: report/index.html
        timing.mark("driver:report")
        if summary.get("best") is None:
            # No trial trained to the end: the sweep failed, with the trials' own reasons in one line.
            reason = no_trial_finished(summary.get("trials", []))
            fail_parent(reason)
            outcome["status"] = "FAILED"
            print(f"error: {reason}", file=sys.stderr)
        return summary


def read_state(state_path: Path) -> dict:
    """The state a sweep saved beside Tune's (parent run, store, training config, metric), read once on --resume."""
    if not state_path.is_file():
        raise ConfigError(f"nothing to resume: {state_path} not found; check --name and --storage-path")
    return json.loads(state_path.read_text())


def continued(sweep: SweepConfig, state: dict | None) -> SweepConfig:
    """The sweep to run: a resumed one continues as it started, whatever model, data or recipe flags are
    given now; a new one gets the driver's data paths made absolute (trials run in other directories)."""
    if state and "base" in state:
        sweep = replace(sweep, base=TrainConfig.from_dict(state["base"]), metric=state["metric"], mode=state["mode"],
                        # how its trials were made and are ranked (seed repeats, PBT) continues too
                        **{k: state[k] for k in ("repeats", "scheduler", "perturbation_interval") if k in state})
        print(f"[aesweep] resuming {sweep.name} with its saved training config and metric "
              f"({sweep.metric}, {sweep.mode})")
        return sweep
    from training.data import absolute_paths

    dataset, data_dir = absolute_paths(sweep.base.dataset, sweep.base.data_dir)
    return replace(sweep, base=sweep.base.replace(dataset=dataset, data_dir=data_dir))


def check_store_reachable(uri: str) -> None:
    """On a Ray cluster of several nodes, the tracking store must be a server every node can reach."""
    import ray

    from tracking.store import is_local

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and is_local(uri):
        from tracking.commands import python_command

        raise ConfigError(f"this Ray cluster has {len(nodes)} nodes, which cannot all reach {uri}; start a "
                          f"tracking server ({python_command('tracking server --host 0.0.0.0')}) and pass "
                          f"--tracking-uri http://HOST:5000")


def no_trial_finished(rows: list[dict]) -> str:
    reasons = sorted({str(r.get("failure_reason")) for r in rows if r.get("failure_reason")})
    detail = f": {reasons[0]}" + (f" (and {len(reasons) - 1} other reasons)" if len(reasons) > 1 else "") \
        if reasons else ""
    return (f"no trial of {len(rows)} trained to the end{detail}; see each child run's failure_reason, "
            f"fix the cause (e.g. a lower learning rate, a valid --space) and run again")


@contextlib.contextmanager
def secrets_kept_from_ray():
    """Ray Tune copies cloud credentials from the driver's environment into each trial's runtime_env, which
    Ray's runtime-env agent writes to its (world-readable) log in plain text. Locally the trials inherit the
    environment from the Ray processes anyway; on a cluster each node's `ray start` environment provides them.
    So they are kept out of the driver's environment while Tune starts trials, and put back after."""
    from tracking.secrets import SECRET_NAME

    try:
        from ray.tune.execution.class_cache import ENV_VARS_TO_PROPAGATE as propagated
    except ImportError:  # moved in another Ray release: every secret-looking variable, to be safe
        propagated = list(os.environ)
    hidden = {k: os.environ.pop(k) for k in list(propagated) if k in os.environ and SECRET_NAME.search(k)}
    try:
        yield
    finally:
        os.environ.update(hidden)


def log_sweep_params(sweep: SweepConfig) -> None:
    """On the parent, once: how the sweep searched, and the training config its trials share (each
    child holds only its swept values). Under `mlflow run` the entry point's params are already here:
    tracking.params skips equal values and puts resolved ones beside ('' -> `seed.resolved`)."""
    from tracking.sweep_runs import log_parent

    log_parent(params={"metric": sweep.metric, "mode": sweep.mode, "search": sweep.search,
                       "scheduler": sweep.scheduler, "num_samples": sweep.num_samples,
                       "workers_per_trial": sweep.workers_per_trial,
                       "space": json.dumps(sweep.space, sort_keys=True)[:6000]}
               | ({"repeats": sweep.repeats} if sweep.repeats > 1 else {})
               | ({"perturbation_interval": pbt_interval(sweep)} if sweep.scheduler == "pbt" else {})
               | sweep.constants(),
               tags={"sweep": "true", "model_kind": sweep.base.model, "dataset": sweep.base.dataset,
                     "seed": str(sweep.base.seed)})
    if sweep.warm_start:
        from tracking.sweep_history import log_warm_start

        log_warm_start(sweep.warm_start, sweep.warm_start_from, [dict(p) for p in sweep.start_points], len(sweep.told))


def fit(sweep: SweepConfig, param_space: dict, uri: str, experiment_id: str, parent_id: str, storage: Path):
    from ray import tune

    from tuning.repeats import tune_num_samples
    from tuning.status import ChildRunStatus
    from tuning.tracked_trial import TrialSetup
    from tuning.trial import run_trial

    setup = TrialSetup(base=sweep.base, tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent_id,
                       # with --repeats each trial's seed is its own: a swept value on its child run
                       swept=sweep.swept + (("seed",) if sweep.repeats > 1 else ()),
                       storage_path=str(storage / sweep.name),
                       workers_per_trial=sweep.workers_per_trial,
                       cpus_per_worker=sweep.cpus_per_trial, gpus_per_worker=sweep.gpus_per_trial,
                       image_every=image_cadence(sweep), system_metrics=sweep.system_metrics, verbose=sweep.verbose,
                       metric=sweep.metric, mode=sweep.mode, pbt_keys=pbt_keys(sweep), pbt_interval=pbt_interval(sweep),
                       decision_epochs=rungs(sweep))
    if sweep.workers_per_trial > 1:
        # The trial only coordinates (Ray needs a non-empty request); its Train workers hold the CPUs/GPUs.
        resources = {"cpu": COORDINATOR_CPU}
    else:
        resources = {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), resources)
    max_concurrent = sweep.max_concurrent
    if max_concurrent is None and sweep.workers_per_trial > 1 and sweep.cpus_per_trial > 0:
        # Start no more multi-worker trials than whole worker groups fit: a trial whose workers
        # cannot start holds its slot and retries forever (ray-project/ray#54305).
        import ray

        cpus = ray.cluster_resources().get("CPU", 1)
        max_concurrent = max(1, int(cpus // (sweep.workers_per_trial * sweep.cpus_per_trial)))
    path = str(storage / sweep.name)
    if sweep.resume:
        if not tune.Tuner.can_restore(path):
            raise ConfigError(f"nothing to resume in {path}: the sweep never started; run it without --resume")
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode,
                                        num_samples=tune_num_samples(sweep.num_samples, sweep.repeats, sweep.search),
                                        scheduler=scheduler(sweep), search_alg=searcher(sweep, max_concurrent),
                                        # (a generator of ours carries the limit itself)
                                        max_concurrent_trials=None if own_generator(sweep) else max_concurrent,
                                        reuse_actors=reuse_processes(sweep)),
            run_config=tune.RunConfig(
                name=sweep.name, storage_path=str(storage),
                failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                # PBT clones a donor's checkpoint while the donor trains on: keep them (one per interval)
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None if sweep.scheduler == "pbt" else 1),
                callbacks=[ChildRunStatus(uri, experiment_id, parent_id)],
                progress_reporter=progress_reporter(sweep), verbose=3 if sweep.verbose else 1))
    t0 = time.time()
    from tuning import timing

    timing.mark("driver:fit")
    with secrets_kept_from_ray():
        results = tuner.fit()
    print(f"[aesweep] {len(results)} trials in {time.time() - t0:.0f}s")
    return results


def reuse_processes(sweep: SweepConfig) -> bool:
    """Whether a trial's process (Tune's actor) runs the next trial: single-worker trials reuse their warm
    process (imports, TensorFlow, MLflow's client done once; tuning.trial resets the state between trials),
    which saved most of a short trial's overhead (BENCHMARKS.md, Sweep overhead). A multi-worker trial only
    coordinates its Ray Train workers, which each trial starts anew. Under PBT a trial is restarted at each
    exploit (and pause) in a fresh process: not yet tried with reused ones."""
    return sweep.workers_per_trial == 1 and sweep.scheduler != "pbt"


def progress_reporter(sweep: SweepConfig):
    from ray import tune

    return tune.CLIReporter(metric_columns={sweep.metric: sweep.metric, "epoch": "epoch"},
                            parameter_columns=list(sweep.swept),
                            max_report_frequency=15, sort_by_metric=True, max_progress_rows=12)


def pbt_keys(sweep: SweepConfig) -> tuple[str, ...]:
    from tuning.pbt import mutable_keys

    return mutable_keys(sweep.space, sweep.base.model) if sweep.scheduler == "pbt" else ()


def pbt_interval(sweep: SweepConfig) -> int:
    from tuning.pbt import interval

    return interval(sweep.base.epochs, sweep.perturbation_interval)


REDUCTION_FACTOR = 3


def grace_period(sweep: SweepConfig) -> int:
    return max(1, sweep.base.epochs // 4)


def rungs(sweep: SweepConfig) -> tuple[int, ...]:
    """The epochs at which ASHA (below) may stop a trial: the grace period times powers of its reduction factor."""
    if sweep.scheduler != "asha":
        return ()
    epochs, at = [], grace_period(sweep)
    while at < sweep.base.epochs:
        epochs.append(at)
        at *= REDUCTION_FACTOR
    return tuple(epochs)


def scheduler(sweep: SweepConfig):
    if sweep.scheduler == "fifo":
        return None
    if sweep.scheduler == "pbt":
        from tuning.pbt import scheduler as pbt_scheduler

        return pbt_scheduler(sweep)
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", max_t=sweep.base.epochs, grace_period=grace_period(sweep),
                         reduction_factor=REDUCTION_FACTOR)


def image_cadence(sweep: SweepConfig) -> int:
    """A trial's images every this many epochs (--image-every, else the grace period: a quarter of the epochs):
    about 4 image steps a trial, in proportion to a short trial (with 10, drawing and logging them was one of
    the larger costs of a `make sweep` trial: BENCHMARKS.md, Sweep overhead). ASHA stops trials only at its
    rungs, multiples of the grace period, so a stopped trial still ends with its images."""
    return sweep.image_every if sweep.image_every is not None else grace_period(sweep)


def own_generator(sweep: SweepConfig) -> bool:
    return sweep.search == "random"


def searcher(sweep: SweepConfig, max_concurrent: int | None = None):
    points = [dict(p) for p in sweep.start_points] or None
    if sweep.search == "random":
        from ray.tune.search import BasicVariantGenerator

        # Seeded (see choose_seed): the same --seed samples the same points. A generator passed in is not limited by
        # TuneConfig.max_concurrent_trials: it carries the limit itself.
        # With --repeats, the sampled values stay the same over the repeat index's grid (tuning/repeats.py).
        return BasicVariantGenerator(points_to_evaluate=points, max_concurrent=max_concurrent or 0,
                                     random_state=sweep.base.seed, constant_grid_search=sweep.repeats > 1)
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise ConfigError("--search optuna needs the optuna package: pip install optuna") from None
    from tuning.repeats import wrap_searcher

    if sweep.told:  # a warm start: earlier results told to the study, not run again (tuning/warm_start.py)
        points, rewards = [dict(p) for p, _ in sweep.told], [float(v) for _, v in sweep.told]
        return wrap_searcher(OptunaSearch(seed=sweep.base.seed, points_to_evaluate=points, evaluated_rewards=rewards),
                             sweep.repeats, sweep.search)
    return wrap_searcher(OptunaSearch(seed=sweep.base.seed, points_to_evaluate=points), sweep.repeats, sweep.search)
