"""Sweep hyperparameters with Ray Tune; every trial an MLflow child run; the best model registered.

    python -m tuning --model vae --dataset digits                  # the showcase (`make sweep`): 8 trials
    python -m tuning --model sae --dataset mnist-test --data-dir ../shared/data --search optuna
    python -m tuning ... --address auto --tracking-uri http://HEAD:5000 --storage-path /shared/ray_results
    python -m tuning ... --name my-sweep --resume          # continue an interrupted sweep
"""
from __future__ import annotations

import argparse
import sys
import time

from tracking.flags import add_tracking_arguments
from training.cli import OneLineErrors, add_config_arguments, add_preset_argument, config_from_args, optional
from training.errors import UserError
from training.metrics import CLUSTERING_SWEEP_METRIC, SWEEP_METRIC

# The sweep's own defaults, below any preset and flag: without a recipe, a sweep is the showcase (`make
# sweep`: the VAE on the bundled digits, about 1300 training images), which must train each trial long
# enough to learn in about a minute: batches of 32 and 20 epochs are about 800 optimizer steps (at the
# training default of 128 and 10 epochs, about 100 steps crowned a posterior-collapsed VAE). BENCHMARKS.md.
SWEEP_EPOCHS = 20
SWEEP_DEFAULTS = {"batch_size": 32}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrors(prog="python -m tuning", description=__doc__.split("\n\n")[0])
    s = p.add_argument_group("sweep")
    s.add_argument("--num-samples", type=int, default=8, help="number of trials (default: 8)")
    s.add_argument("--max-epochs", type=int, default=None, help="epochs per trial; ASHA may stop a trial earlier "
                                                                f"(default: the preset's epochs, else {SWEEP_EPOCHS})")
    s.add_argument("--search", choices=("random", "optuna"), default="random",
                   help="random sampling, or Optuna's TPE (Bayesian) through Ray's OptunaSearch")
    s.add_argument("--scheduler", choices=("asha", "fifo", "pbt"), default="asha",
                   help="ASHA early stopping, run every trial to the end (fifo), or Population Based Training "
                        "over the learning rate and the loss weight (pbt; see tuning/pbt.py)")
    s.add_argument("--perturbation-interval", type=optional(int), default=None, metavar="EPOCHS",
                   help="with --scheduler pbt: epochs between exploits (default: a quarter of the epochs)")
    s.add_argument("--repeats", type=int, default=1, metavar="R",
                   help="train each sampled configuration with R seeds (the sweep's seed + 0..R-1) and rank "
                        "configurations by the mean over seeds (default: 1)")
    s.add_argument("--warm-start", default=None, metavar="SWEEP_OR_EXPERIMENT",
                   help="begin with the results of an earlier sweep (its name) or of every sweep in an experiment: "
                        "random search runs its best configurations first, Optuna is told all of them")
    s.add_argument("--warm-start-top", type=int, default=4, metavar="K",
                   help="with --warm-start and random search: how many of the best earlier configurations "
                        "to run first (default: 4)")
    s.add_argument("--metric", default=None, help=f"validation metric to optimise (default: "
                                                  f"{SWEEP_METRIC['vae']} for the VAE, {SWEEP_METRIC['sae']} for the "
                                                  f"SAE, {CLUSTERING_SWEEP_METRIC} with --cluster-epochs)")
    s.add_argument("--mode", choices=("min", "max"), default=None, help="minimise or maximise --metric")
    s.add_argument("--space", default=None, metavar="YAML",
                   help="search-space overrides, e.g. 'latent_dim: {choice: [4, 8]}' (see tuning/space.py)")
    s.add_argument("--seed", type=optional(int), default=None,
                   help="seed of the search and of every trial's training (default: a fresh one, logged on the "
                        "parent run as `seed`: give it to repeat a sweep)")
    s.add_argument("--max-failures", type=int, default=2, help="retries of a failing trial (default: 2)")
    r = p.add_argument_group("resources and cluster")
    r.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (per worker with "
                                                                     "--workers-per-trial > 1)")
    r.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial or worker; fractions share "
                                                                     "a GPU (TF memory growth is on)")
    r.add_argument("--workers-per-trial", type=int, default=1,
                   help="K > 1: each trial is a Ray Train run of K workers under MultiWorkerMirroredStrategy")
    r.add_argument("--max-concurrent", type=int, default=None, help="at most this many trials at once")
    r.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    r.add_argument("--storage-path", default=None, help="where Tune keeps sweep state and checkpoints; shared "
                                                        "storage on a cluster (default: ./ray_results)")
    r.add_argument("--name", default=None, help="sweep name (default: <model>-<dataset>-<time>); needed for --resume")
    r.add_argument("--resume", action="store_true", help="continue the interrupted sweep --name (Tuner.restore)")
    add_tracking_arguments(p, register_as="registered model name for the best trial (default: <model>-<dataset>)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow and Ray worker logs")
    add_preset_argument(p)
    add_config_arguments(p, skip=("epochs", "seed"), defaults=SWEEP_DEFAULTS)
    return p


def sweep_from_args(args):
    from training.data import dataset_label
    from tuning.space import contain, load_space
    from tuning.sweep import SweepConfig, choose_seed, metric_for

    if args.max_epochs is not None and args.max_epochs < 1:
        raise UserError(f"invalid --max-epochs {args.max_epochs}: give at least 1 (or leave it out for the default)")
    if args.num_samples < 1:
        raise UserError(f"invalid --num-samples {args.num_samples}: give at least 1")
    if args.repeats < 1:
        raise UserError(f"invalid --repeats {args.repeats}: give at least 1")
    base = config_from_args(args, base=SWEEP_DEFAULTS)
    base = base.replace(epochs=args.max_epochs or (base.epochs if args.preset else SWEEP_EPOCHS),
                        seed=choose_seed(args.seed))
    metric, mode = metric_for(base, args.metric, args.mode)
    name = args.name or f"{base.model}-{dataset_label(base.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.resume and not args.name:
        raise UserError("--resume needs --name of the sweep to continue (see ./ray_results for names)")
    space = load_space(args.space, base.model, base.recon_scale)
    start_points = ()
    if args.preset:
        # The preset is one point of the space, and the first trial: the sweep can only improve on it.
        space = contain(space, base)
        start_points = ({k: getattr(base, k) for k, spec in space.items()
                         if isinstance(spec, dict) and "grid" not in spec},)
    return SweepConfig(base=base, space=space, num_samples=args.num_samples,
                       search=args.search, scheduler=args.scheduler, metric=metric, mode=mode,
                       cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                       workers_per_trial=args.workers_per_trial, max_concurrent=args.max_concurrent,
                       max_failures=args.max_failures, address=args.address, storage_path=args.storage_path or "",
                       name=name, resume=args.resume, tracking_uri=args.tracking_uri, experiment=args.experiment,
                       register_as=args.register_as, image_every=args.image_every,
                       system_metrics=not args.no_system_metrics, verbose=args.verbose,
                       start_points=start_points, repeats=args.repeats, warm_start=args.warm_start or "",
                       warm_start_top=args.warm_start_top, perturbation_interval=args.perturbation_interval)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from tuning.sweep import run

        summary = run(sweep_from_args(args))
        from tuning import timing

        timing.mark("driver:done")  # the parent run ended; what follows is the interpreter's exit (Ray's shutdown)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if summary.get("best") is not None else 1


if __name__ == "__main__":
    sys.exit(main())
