"""Training throughput: plain `keras.Model.fit` against our loop, alone and under MirroredStrategy.

    python -m benchmarks.throughput --data-dir ../shared/data     # 3 alternated rounds, ~10 min on 2 cores
    python -m benchmarks.throughput --quick                       # a pipeline check in under a minute

Two workloads: the DEC-size autoencoder (784-500-500-2000-10 and its mirror, batch 256, MNIST test
images when `--data-dir` holds them, else MNIST-shaped random images) and the default VAE on digits.
Each round runs, one after the other, (a) `keras.Model.fit` of the SAME model (our Keras model, its
loss as `compute_loss`, Adam, the same batch size and inputs), (b) our loop (training.loop.train,
with validation and a checkpoint every epoch, as a trial runs it) and (c) our loop under
MirroredStrategy over 2 logical CPU devices; rounds alternate so that a busy neighbour slows all
three alike. Our loop runs as a `make sweep` trial does: the costlier validation figures (K=50
importance samples, active units, k-means) every quarter of the epochs (ASHA's rungs) and at the end,
a checkpoint when due. Reported per workload and variant (medians over rounds of the means over
steady-state epochs, those after the first): samples/s in training steps, ours/fit, achieved GFLOP/s
(6 x the dense layers' multiply-adds per sample: forward 2, backward 4) against a float32 matmul peak
measured in the same run, the epoch split into training steps and everything else, and the process's
peak resident memory during the variant (VmHWM, reset before each one where Linux allows); then, for
our loop, everything else split into its parts.

    python -m benchmarks.throughput --only vae --variants fit,ours --rounds 3   # one workload, two variants
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.host import code_version, load_average, machine

VARIANTS = ("fit", "ours", "ours-mirrored")


@dataclass(frozen=True)
class Workload:
    name: str
    config: dict  # TrainConfig fields
    epochs: int
    quick_epochs: int


WORKLOADS = (
    Workload("DEC AE (784-500-500-2000-10), batch 256",
             dict(model="sae", latent_dim=10, hidden=(500, 500, 2000), batch_size=256, recon_loss="mse"), 4, 2),
    Workload("default VAE on digits (64-256-128-8), batch 128", dict(model="vae", dataset="digits"), 12, 3),
)


# ---- memory ---------------------------------------------------------------------------------------------
def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- arithmetic -----------------------------------------------------------------------------------------
def matmul_peak_gflops(tf, n: int = 1024, seconds: float = 2.0) -> float:
    """Best float32 GFLOP/s of n x n matmuls (10 per call, chained so none is skipped) over ~`seconds`."""
    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), seed=2) / n

    @tf.function
    def ten(x):
        for _ in range(10):
            x = tf.matmul(x, b)
        return x

    ten(a).numpy()  # trace and warm up
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        ten(a).numpy()
        best = max(best, 10 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def train_flops_per_sample(pixels: int, config) -> float:
    """6 x multiply-adds of the dense layers (encoder, decoder; the VAE's encoder outputs mean and log-variance;
    its decoder runs once per importance sample)."""
    widths = (pixels, *config.hidden)
    trunk = sum(a * b for a, b in zip(widths, widths[1:]))
    head = widths[-1] * config.latent_dim * (2 if config.model == "vae" else 1)
    samples = config.iw_train_samples if config.model == "vae" else 1
    dec_widths = (config.latent_dim, *reversed(config.hidden), pixels)
    decoder = sum(a * b for a, b in zip(dec_widths, dec_widths[1:])) * samples
    return 6.0 * (trunk + head + decoder)


# ---- the three variants ----------------------------------------------------------------------------------
def steady(values: list[float]) -> float:
    """Mean of the epochs after the first (which traces), or the only one: the loop's costlier figures come
    at a cadence, so the mean is what an epoch costs over a run."""
    return statistics.fmean(values[1:] if len(values) > 1 else values)


PARTS = ("batches", "validation", "validation with extras", "checkpoint", "callbacks")


def run_fit(tf, keras, config, data, epochs: int) -> dict:
    """keras.Model.fit of the same Keras model and loss (single device, default Keras settings)."""
    from training.loop import make_optimizer
    from training.models import build_model

    keras.utils.set_random_seed(config.seed)
    inner = build_model(config, data.image_shape)

    class Fit(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def call(self, inputs, training=False):
            return self.inner(inputs[0], training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            images, noise = x
            terms = self.inner.loss_terms(images, noise, training=training)
            return keras.ops.mean(terms["loss"]) + terms["penalty"]

    model = Fit()
    model.compile(optimizer=make_optimizer(config, len(data.x_train) // config.batch_size))
    n = len(data.x_train) // config.batch_size * config.batch_size
    rng = np.random.default_rng(config.seed)
    noise = rng.standard_normal((n, max(inner.noise_dim, 1))).astype(np.float32)[:, :inner.noise_dim]
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    model.fit((data.x_train[:n], noise), epochs=epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
              callbacks=[Clock()])
    return {"steps": times, "epochs": times}


_MIRRORED = []


def mirrored_strategy(tf):
    """One MirroredStrategy per process: a second one over the same devices reuses collective instance keys
    that the first one's programs already fixed to other shapes."""
    if not _MIRRORED:
        _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _MIRRORED[0]


def run_ours(tf, config, data, mirrored: bool) -> dict:
    from training.callbacks import Callback, sparse_epochs
    from training.loop import train

    class AsATrial(Callback):
        def on_train_begin(self, context):
            context.extras_every = max(1, config.epochs // 4)  # a sweep trial's: tuning.sweep.image_cadence

    strategy = mirrored_strategy(tf) if mirrored else None
    with tempfile.TemporaryDirectory(prefix="aesweep-throughput-") as tmp:
        result = train(config, callbacks=[AsATrial()], checkpoint_dir=tmp, distribution=strategy, dataset=data,
                       evaluate_at_end=False)
    if result.diverged:
        raise RuntimeError(f"{config.model}: {result.status}")
    extras = set(sparse_epochs(config.epochs, max(1, config.epochs // 4)))
    timings = [t | {"extras": i + 1 in extras} for i, t in enumerate(result.timings)]
    return {"steps": [t["steps"] for t in timings], "epochs": [t["epoch"] for t in timings], "timings": timings}


def parts(timings: list[dict]) -> dict:
    """Mean seconds per steady-state epoch of each part of our loop's epoch that is not training steps; validation
    apart on epochs without and with the costlier figures (the mean at those epochs, and their share of epochs)."""
    steady_epochs = timings[1:] if len(timings) > 1 else timings
    out = {p: statistics.fmean(t[p] for t in steady_epochs) for p in ("batches", "checkpoint", "callbacks")}
    plain = [t["validation"] for t in steady_epochs if not t["extras"]]
    full = [t["validation"] for t in steady_epochs if t["extras"]]
    out["validation"] = statistics.fmean(plain) if plain else float("nan")
    out["validation with extras"] = statistics.fmean(full) if full else float("nan")
    out["extras share"] = len(full) / len(steady_epochs)
    return out


def measure(tf, keras, workload: Workload, config, data, variant: str, epochs: int) -> dict:
    reset_peak_rss()
    cfg = config.replace(epochs=epochs)
    if variant == "fit":
        out = run_fit(tf, keras, cfg, data, epochs)
    else:
        out = run_ours(tf, cfg, data, mirrored=variant == "ours-mirrored")
    steps_per_epoch = len(data.x_train) // cfg.batch_size
    step_s, epoch_s = steady(out["steps"]), steady(out["epochs"])
    return {"samples_per_s": steps_per_epoch * cfg.batch_size / step_s, "step_s": step_s, "epoch_s": epoch_s,
            "rss_mb": peak_rss_mb(), **(parts(out["timings"]) if "timings" in out else {})}


# ---- data ------------------------------------------------------------------------------------------------
def load(workload: Workload, data_dir: str | None, quick: bool):
    from training.config import TrainConfig
    from training.data import DataError, load_dataset

    if workload.config.get("dataset") == "digits":
        return TrainConfig(**workload.config), load_dataset("digits"), "scikit-learn digits"
    try:
        if quick:
            raise DataError("quick")
        data = load_dataset("mnist-test", data_dir)
        return TrainConfig(**workload.config, dataset="mnist-test"), data, f"MNIST test images ({data.summary()})"
    except DataError:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (1280 if quick else 10_000, 28, 28), dtype=np.uint8)
        path = os.path.join(tempfile.mkdtemp(prefix="aesweep-throughput-"), "random-mnist.npz")
        np.savez(path, x_train=images)
        data = load_dataset(f"npz:{path}")
        return TrainConfig(**workload.config, dataset=f"npz:{path}"), data, f"random MNIST-shaped images ({data.summary()})"


# ---- report ----------------------------------------------------------------------------------------------
HEADER = ("workload", "variant", "samples/s", "ours/fit", "GFLOP/s", "% of matmul peak", "steady epoch (s)",
          "training steps (s)", "everything else (s)", "everything else (% of epoch)", "peak RSS (MB)")


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "| " + " | ".join("---" for _ in HEADER) + " |"]
    for r in rows:
        cells = (r["workload"], r["variant"], f"{r['samples_per_s']:.0f}", r["ratio"], f"{r['gflops']:.1f}",
                 f"{r['peak_pct']:.0f}%", f"{r['epoch_s']:.3f}", f"{r['step_s']:.3f}",
                 f"{r['epoch_s'] - r['step_s']:.3f}", f"{r['overhead_pct']:.0f}%", f"{r['rss_mb']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PARTS_HEADER = ("workload", "variant", "steady epoch (s)", "training steps (s)", "input pipeline (s)",
                "validation, plain epochs (s)", "validation with the costlier figures (s, at those epochs)",
                "share of epochs with them", "checkpoint (s)", "callbacks (s)",
                "everything else, epochs without the costlier figures (% of such an epoch)")


def parts_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(PARTS_HEADER) + " |", "| " + " | ".join("---" for _ in PARTS_HEADER) + " |"]
    for r in rows:
        if "batches" not in r:
            continue
        plain_else = r["batches"] + r["validation"] + r["checkpoint"] + r["callbacks"]
        share = 100 * plain_else / (plain_else + r["step_s"])
        cell = lambda v, f: "—" if math.isnan(v) else format(v, f)  # noqa: E731 (no epoch of that kind)
        cells = (r["workload"], r["variant"], f"{r['epoch_s']:.4f}", f"{r['step_s']:.4f}", f"{r['batches']:.4f}",
                 cell(r["validation"], ".4f"), cell(r["validation with extras"], ".4f"), f"{r['extras share']:.2f}",
                 f"{r['checkpoint']:.4f}", f"{r['callbacks']:.4f}", "—" if math.isnan(share) else f"{share:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder with the MNIST t10k files (default: random "
                                                    "MNIST-shaped images)")
    p.add_argument("--rounds", type=int, default=None, metavar="N", help="alternated rounds (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="1 round, few epochs, small data: checks the output only")
    p.add_argument("--only", choices=("dec", "vae"), default=None, help="one workload: the DEC AE or the default VAE")
    p.add_argument("--variants", default=",".join(VARIANTS), metavar="V,...",
                   help=f"comma-separated variants to run, of {', '.join(VARIANTS)} (default all; ours/fit needs fit)")
    args = p.parse_args(argv)
    variants = tuple(v for v in args.variants.split(",") if v)
    if not variants or any(v not in VARIANTS for v in variants):
        p.error(f"invalid --variants {args.variants!r}: a comma-separated list of {', '.join(VARIANTS)}")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if rounds < 1:
        p.error(f"invalid --rounds {rounds}: must be >= 1")

    from training.backend import keras, tf

    # Two logical CPU devices for the MirroredStrategy variant (must precede TensorFlow's device set-up).
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    t_start = time.time()
    peak = matmul_peak_gflops(tf, n=512 if args.quick else 1024, seconds=0.5 if args.quick else 3.0)
    print(f"[throughput] float32 matmul peak {peak:.1f} GFLOP/s", flush=True)
    rows, sources, loads = [], [], []
    for w in WORKLOADS:
        if args.only and not w.name.startswith({"dec": "DEC", "vae": "default VAE"}[args.only]):
            continue
        config, data, source = load(w, args.data_dir, args.quick)
        sources.append(f"{w.name}: {source}")
        flops = train_flops_per_sample(int(np.prod(data.image_shape)), config)
        epochs = w.quick_epochs if args.quick else w.epochs
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for r in range(rounds):
            for v in variants:
                loads.append(load_average())
                m = measure(tf, keras, w, config, data, v, epochs)
                runs[v].append(m)
                print(f"[throughput] {w.name} round {r + 1}/{rounds} {v}: {m['samples_per_s']:.0f} samples/s, "
                      f"epoch {m['epoch_s']:.3f}s (steps {m['step_s']:.3f}s), peak RSS {m['rss_mb']:.0f} MB",
                      flush=True)
        fit_rate = statistics.median(m["samples_per_s"] for m in runs["fit"]) if "fit" in runs else None
        for v in variants:
            med = {k: statistics.median(m[k] for m in runs[v]) for k in runs[v][0]}
            gflops = med["samples_per_s"] * flops / 1e9
            rows.append({"workload": w.name, "variant": v, **med,
                         "ratio": "1.00 (reference)" if v == "fit" else
                         f"{med['samples_per_s'] / fit_rate:.2f}" if fit_rate else "n/a (no fit)",
                         "gflops": gflops, "peak_pct": 100 * gflops / peak,
                         "overhead_pct": 100 * max(0.0, med["epoch_s"] - med["step_s"]) / med["epoch_s"]})
    print(f"\n### Throughput{' (quick mode: output check, not figures)' if args.quick else ''}\n\n"
          f"{time.strftime('%Y-%m-%d')}, code {code_version()}, {machine()}, Keras {keras.__version__}; `python -m benchmarks.throughput "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}`; {rounds} alternated round(s), medians; "
          f"float32 matmul peak {peak:.1f} GFLOP/s; {(time.time() - t_start) / 60:.1f} min in all; 1-minute load "
          f"average {min(loads):.1f}-{max(loads):.1f} (/proc/loadavg, before each variant).\n"
          + "".join(f"Data: {s}.\n" for s in sources) + "\n" + table(rows) + "\n\nOur loop's epoch, everything "
          "that is not training steps (means per steady-state epoch):\n\n" + parts_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
