"""Model quality against published anchors, with the named recipes (training/presets.py).

    python -m benchmarks.quality --data-dir ../shared/data            # the full run (< 60 min on 2 cores)
    python -m benchmarks.quality --data-dir ../shared/data --quick    # the pipeline in a few minutes

Trains each recipe with fixed seeds, prints a table of ours against the anchors, and writes it
into BENCHMARKS.md (between the `quality` markers) with the date, the machine and the command.
`--quick` shrinks every recipe (few epochs, one seed, K=100): it checks the pipeline, not the targets,
and only prints its table (unless `--output` is given).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from training.data import DataError, load_dataset
from training.presets import preset, quick as shrink

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"


@dataclass(frozen=True)
class Benchmark:
    title: str
    recipe: str
    dataset: str
    metric: str
    seeds: tuple[int, ...]
    anchors: tuple[tuple[str, str], ...]
    target: float | None = None
    extra: tuple[str, ...] = ()  # other metrics shown beside the headline


BENCHMARKS = (
    Benchmark("MNIST-test: sparse AE + k-means", "mnist-sae", "mnist-test", "cluster_acc_test", (0, 1, 2),
              (("k-means on pixels (ours, measured)", "pixels"), ("AE + k-means (IDEC paper)", "0.818"),
               ("DEC", "0.843"), ("IDEC", "0.881"), ("VaDE", "0.945"), ("N2D", "0.979")),
              target=0.88, extra=("nmi_test", "ari_test", "test_recon_mse")),
    Benchmark("Frey Face: VAE test log-likelihood (nats)", "frey-vae", "frey", "test_log_likelihood", (0,),
              (("VAE (Li & Turner 2016)", "1322.96"), ("IWAE-trained (Li & Turner 2016)", "1380.30")),
              target=1350.0, extra=("test_log_likelihood_amortized", "test_elbo", "test_recon_mse")),
    Benchmark("digits: sparse AE + k-means", "digits-sae", "digits", "cluster_acc_test", (0,),
              (("k-means on pixels (ours, measured)", "pixels"),), extra=("nmi_test",)),
    Benchmark("digits: VAE test log-likelihood (nats)", "digits-vae", "digits", "test_log_likelihood", (0,), (),
              extra=("test_log_likelihood_amortized",)),
)


def npz_benchmark(dataset: str) -> Benchmark:
    """The clustering recipe, unchanged, on the user's labelled images (`--npz PATH`)."""
    return Benchmark(f"{dataset}: sparse AE + k-means", "mnist-sae", dataset, "cluster_acc_test", (0,),
                     (("k-means on pixels (ours, measured)", "pixels"),), extra=("nmi_test", "ari_test"))


@dataclass
class Outcome:
    benchmark: Benchmark
    values: list[float] = field(default_factory=list)
    extras: dict[str, list[float]] = field(default_factory=dict)
    pixels: float | None = None
    seconds: float = 0.0
    skipped: str | None = None

    def mean(self) -> float:
        return statistics.fmean(self.values)

    def cell(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        m = self.mean()
        fmt = ".1f" if abs(m) > 10 else ".4f"
        spread = f" ± {statistics.stdev(self.values):{fmt}}" if len(self.values) > 1 else ""
        return f"**{m:{fmt}}**{spread}" + (f" (seeds {', '.join(f'{v:{fmt}}' for v in self.values)})"
                                          if len(self.values) > 1 else "")


def pixel_kmeans(data, seed: int) -> float:
    """The floor: k-means on raw pixels, with the same protocol as the code (fit on train, score test)."""
    from training.evaluate import clustering

    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    return clustering(flat(data.x_train), data.y_train, flat(data.x_test), data.y_test, seed)["cluster_acc_test"]


def run_one(b: Benchmark, data_dir: str | None, quick: bool, log=print) -> Outcome:
    from training.loop import train

    out = Outcome(b)
    try:
        data = load_dataset(b.dataset, data_dir)
    except DataError as e:
        out.skipped = str(e).split(";")[0]
        return out
    t0 = time.time()
    for seed in b.seeds[:1] if quick else b.seeds:
        cfg = preset(b.recipe).replace(dataset=b.dataset, data_dir=data_dir, seed=seed)
        if quick:
            cfg = shrink(cfg)
        result = train(cfg, dataset=data)
        if result.diverged:
            raise RuntimeError(f"{b.recipe} seed {seed}: {result.status}")
        out.values.append(result.metrics[b.metric])
        for k in b.extra:
            out.extras.setdefault(k, []).append(result.metrics[k])
        log(f"[quality] {b.recipe} on {b.dataset}, seed {seed}: {b.metric} {result.metrics[b.metric]:.4f} "
            f"({time.time() - t0:.0f}s so far)")
    if any(a[1] == "pixels" for a in b.anchors):
        out.pixels = pixel_kmeans(data, 0)
    out.seconds = time.time() - t0
    return out


def table(outcomes: list[Outcome], quick: bool) -> str:
    lines = ["| benchmark | recipe | ours | target | anchors | other metrics (mean) | time |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for o in outcomes:
        b = o.benchmark
        anchors = "; ".join(f"{name} {o.pixels:.3f}" if v == "pixels" and o.pixels is not None else f"{name} {v}"
                            for name, v in b.anchors if v != "pixels" or o.pixels is not None) or "—"
        target = "—" if b.target is None or quick else (
            f"{b.target:g} {'met' if not o.skipped and o.mean() >= b.target else 'not met'}")
        extras = ", ".join(f"{k} {statistics.fmean(v):.4f}" for k, v in o.extras.items()) or "—"
        lines.append(f"| {b.title} | `{b.recipe}` | {o.cell()} | {target} | {anchors} | {extras} | "
                     f"{o.seconds / 60:.1f} min |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpus} GPU(s), Python {platform.python_version()}, TF {tf.__version__}"


def write_section(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder with frey_rawface.mat and the MNIST t10k files "
                                                    "(default: $AESWEEP_DATA_DIR)")
    p.add_argument("--quick", action="store_true", help="a few epochs, one seed: checks the pipeline only")
    p.add_argument("--only", nargs="*", default=None, metavar="RECIPE", help="run only these recipes")
    p.add_argument("--npz", default=None, metavar="PATH", help="also run the clustering recipe, unchanged, on "
                                                              "these labelled images (x_train, y_train[, x_test, y_test])")
    p.add_argument("--output", default=None, help="file to write the table into (default: BENCHMARKS.md; "
                                                  "with --quick the table is only printed unless this is given)")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    args = p.parse_args(argv)
    t0 = time.time()
    chosen = [b for b in BENCHMARKS if args.only is None or b.recipe in args.only]
    if args.npz:
        chosen.append(npz_benchmark(f"npz:{args.npz}"))
    outcomes = [run_one(b, args.data_dir, args.quick) for b in chosen]
    command = "python -m benchmarks.quality " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (f"### Quality{' (quick mode: pipeline check, not the targets)' if args.quick else ''}\n\n"
            f"{time.strftime('%Y-%m-%d')}, {machine()}; `{command.strip()}`; "
            f"{(time.time() - t0) / 60:.1f} min in all.\n\n{table(outcomes, args.quick)}\n")
    print(text)
    # A quick run checks the pipeline: it never replaces the measured figures in BENCHMARKS.md unasked.
    output = args.output or (None if args.quick else str(ROOT / "BENCHMARKS.md"))
    if output and not args.no_write:
        write_section(Path(output), text)
        print(f"[quality] wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
