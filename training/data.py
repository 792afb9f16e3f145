"""Datasets: loading, validation, deterministic splits and a content digest.

Every loader returns a `Dataset` of float32 images in [0, 1] shaped (N, H, W),
with optional integer labels, split into train / validation / test.

    digits       scikit-learn's bundled 8x8 digits (offline default)
    mnist        28x28 MNIST (IDX .gz files or mnist.npz in the data folder, else downloaded)
    mnist-test   the 10k MNIST test images ("MNIST-test" protocol): trained on
                 unsupervised, clustered and scored in full; a validation part is held out
    frey         Frey Face, 1965 faces of 28x20 (frey_rawface.mat); test = the published 197
    npz:PATH     your own arrays: x_train (N,H,W) [, y_train, x_test, y_test]
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.errors import UserError

DATASETS = ("digits", "mnist", "mnist-test", "frey", "npz:PATH")


def dataset_label(name: str) -> str:
    """A dataset's name in folder, run, experiment and model names: 'npz:/data/faces.npz' -> 'faces';
    the other names as they are."""
    return Path(name[4:]).stem if name.startswith("npz:") else name

FREY_URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
FREY_SHA256 = "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64"
MNIST_NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_IDX = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
MNIST_TEST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


class DataError(UserError, ValueError):
    """Input data is missing or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None
    y_val: np.ndarray | None
    y_test: np.ndarray | None
    digest: str

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def labelled(self) -> bool:
        return self.y_train is not None and self.y_test is not None

    @property
    def num_classes(self) -> int:
        return int(len(np.unique(self.y_test))) if self.y_test is not None else 0

    def summary(self) -> str:
        return (f"{self.name}: train {len(self.x_train)}, val {len(self.x_val)}, test {len(self.x_test)}, "
                f"images {self.image_shape[0]}x{self.image_shape[1]}, digest {self.digest[:12]}")


def default_data_dir() -> str | None:
    return os.environ.get("AESWEEP_DATA_DIR") or None


def absolute_paths(dataset: str, data_dir: str | None) -> tuple[str, str | None]:
    """`dataset` and `data_dir` (else $AESWEEP_DATA_DIR) with relative paths made absolute from the
    current directory: for processes that run elsewhere (Ray trials change directory)."""
    data_dir = data_dir or default_data_dir()
    if data_dir:
        data_dir = str(Path(data_dir).expanduser().resolve())
    if dataset.startswith("npz:") and dataset[4:]:
        dataset = "npz:" + str(Path(dataset[4:]).expanduser().resolve())
    return dataset, data_dir


def load_dataset(name: str, data_dir: str | None = None, split_seed: int = 0, val_fraction: float = 0.1) -> Dataset:
    """Load dataset `name`, searching `data_dir` (or $AESWEEP_DATA_DIR) before any download."""
    data_dir = data_dir or default_data_dir()
    if name == "digits":
        x, y = _digits()
        return _split(name, x, y, None, None, split_seed, val_fraction, test_fraction=0.2)
    if name == "mnist":
        arrays = _mnist(data_dir)
        return _split(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      split_seed, val_fraction)
    if name == "mnist-test":
        x, y = _mnist_test(data_dir)
        # MNIST-test protocol: the full 10k set is what gets clustered and scored;
        # training uses all but a held-out validation part (for early stopping).
        rng = np.random.default_rng(split_seed)
        perm = rng.permutation(len(x))
        n_val = max(1, int(round(len(x) * val_fraction)))
        val, train = perm[:n_val], perm[n_val:]
        return _make(name, x[train], x[val], x, y[train], y[val], y)
    if name == "frey":
        x = _frey(data_dir)
        test, rest = frey_split(len(x))
        rng = np.random.default_rng(split_seed)
        perm = rng.permutation(len(rest))
        n_val = max(1, int(round(len(rest) * val_fraction)))
        return _make(name, x[rest[perm[n_val:]]], x[rest[perm[:n_val]]], x[test], None, None, None)
    if name.startswith("npz:"):
        return _npz(name, name[4:], split_seed, val_fraction)
    raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def frey_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(test, train) face indices of the published Frey Face split (Li & Turner 2016, code
    YingzhenLi/VRbound: `np.random.seed(0); np.random.shuffle(data); test = data[int(0.9 * N):]`):
    the last N - int(0.9 N) faces (197 of 1965) of the seed-0 shuffle, which is
    RandomState(0).permutation(N). Validation is carved from the train indices, never from test."""
    order = np.random.RandomState(0).permutation(n)
    n_train = int(0.9 * n)
    return order[n_train:], order[:n_train]


# --------------------------------------------------------------------------- loaders

def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def _find(data_dir: str | None, filename: str) -> Path | None:
    for folder in [data_dir, default_data_dir()]:
        if folder and (Path(folder) / filename).is_file():
            return Path(folder) / filename
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified(path: Path, sha256: str | None) -> Path:
    if sha256 and _sha256(path) != sha256:
        raise DataError(f"{path}: checksum mismatch (expected sha256 {sha256[:16]}...); "
                        f"delete the file and fetch it again")
    return path


def _fetch(filename: str, url: str, sha256: str, data_dir: str | None) -> Path:
    """A verified local copy: data folder first, then the Keras cache / a download."""
    local = _find(data_dir, filename)
    if local is not None:
        return _verified(local, sha256)
    from training.backend import keras  # lazily: loading digits must not need TensorFlow start-up

    try:
        return Path(keras.utils.get_file(filename, origin=url, file_hash=sha256, hash_algorithm="sha256",
                                         cache_subdir="aesweep"))
    except Exception as e:  # network down, bad checksum, ...
        where = data_dir or "a folder given with --data-dir (or $AESWEEP_DATA_DIR)"
        raise DataError(f"{filename}: not found locally and download from {url} failed ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'}); put the file in {where}") from None


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: not a readable gzip IDX file ({e})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: truncated IDX file")
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise DataError(f"{path}: bad IDX magic number {magic}; expected 2049 (labels) or 2051 (images)")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: IDX header says {dims} but holds {data.size} values; the file is truncated")
    return data.reshape(dims)


def _mnist(data_dir: str | None) -> dict[str, np.ndarray]:
    if all(_find(data_dir, f) for f in MNIST_IDX.values()):
        arrays = {k: _read_idx(_verified(_find(data_dir, f), MNIST_TEST_SHA256.get(f)))  # type: ignore[arg-type]
                  for k, f in MNIST_IDX.items()}
    else:
        path = _fetch("mnist.npz", MNIST_NPZ_URL, MNIST_NPZ_SHA256, data_dir)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in MNIST_IDX}
    for k in ("x_train", "x_test"):
        arrays[k] = arrays[k].astype(np.float32) / 255.0
    for k in ("y_train", "y_test"):
        arrays[k] = arrays[k].astype(np.int64)
    return arrays


def _mnist_test(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels = MNIST_IDX["x_test"], MNIST_IDX["y_test"]
    if _find(data_dir, images) and _find(data_dir, labels):
        x = _read_idx(_verified(_find(data_dir, images), MNIST_TEST_SHA256[images]))  # type: ignore[arg-type]
        y = _read_idx(_verified(_find(data_dir, labels), MNIST_TEST_SHA256[labels]))  # type: ignore[arg-type]
    else:
        arrays = _mnist(data_dir)
        return arrays["x_test"], arrays["y_test"]
    if len(x) != len(y):
        raise DataError(f"{images}: {len(x)} images but {labels} has {len(y)} labels")
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


def _frey(data_dir: str | None) -> np.ndarray:
    path = _fetch("frey_rawface.mat", FREY_URL, FREY_SHA256, data_dir)
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as e:
        raise DataError(f"{path}: not a readable MATLAB file ({e})") from None
    if "ff" not in mat:
        raise DataError(f"{path}: no variable 'ff' in the file; is this frey_rawface.mat?")
    ff = mat["ff"]
    if ff.shape[0] != 560:
        raise DataError(f"{path}: variable 'ff' has shape {ff.shape}; expected (560, N) faces of 28x20")
    return (ff.T.reshape(-1, 28, 20).astype(np.float32) / 255.0)


def _npz(name: str, path_text: str, split_seed: int, val_fraction: float) -> Dataset:
    path = Path(path_text).expanduser()
    if not path_text:
        raise DataError("dataset 'npz:' needs a path, e.g. npz:/data/my_images.npz")
    if not path.is_file():
        raise DataError(f"{path}: file not found; give an existing .npz with x_train (N,H,W) images")
    if not zipfile.is_zipfile(path):  # np.load would take other bytes for a pickle and talk about pickles
        raise DataError(f"{path}: not an .npz file (a zip of .npy arrays); save your arrays with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        raise DataError(f"{path}: cannot load without pickle ({str(e).splitlines()[0]}); "
                        f"save plain numeric arrays with numpy.savez") from None
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__})") from None
    if "x_train" not in arrays:
        raise DataError(f"{path}: no 'x_train' array (found: {', '.join(arrays) or 'nothing'}); "
                        f"save images as x_train with shape (N, H, W)")
    x = {k: _check_images(path, k, arrays[k]) for k in ("x_train", "x_test") if k in arrays}
    y = {k: _check_labels(path, k, arrays[k], len(x["x" + k[1:]])) for k in ("y_train", "y_test")
         if k in arrays and "x" + k[1:] in x}
    if "x_test" in x and x["x_test"].shape[1:] != x["x_train"].shape[1:]:
        raise DataError(f"{path}: x_test images are {x['x_test'].shape[1:]} but x_train images are "
                        f"{x['x_train'].shape[1:]}; they must match")
    if ("y_train" in y) != ("y_test" in y) and "x_test" in x:
        raise DataError(f"{path}: give labels for both x_train and x_test, or for neither")
    return _split(name, x["x_train"], y.get("y_train"), x.get("x_test"), y.get("y_test"), split_seed,
                  val_fraction)


def _check_images(path: Path, key: str, a: np.ndarray) -> np.ndarray:
    if a.size == 0:
        raise DataError(f"{path}: {key} is empty; it needs at least one image")
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise DataError(f"{path}: {key} has shape {a.shape}; expected (N, H, W) grayscale images")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"{path}: {key} has dtype {a.dtype}; use uint8 (0..255) or float in [0, 1]")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{path}: {key} contains NaN or Inf values; clean or drop those images")
    if a.min() < 0.0 or a.max() > 1.0:
        raise DataError(f"{path}: {key} values span [{a.min():.3g}, {a.max():.3g}]; scale floats to [0, 1]")
    return a.astype(np.float32)


def _check_labels(path: Path, key: str, a: np.ndarray, n: int) -> np.ndarray:
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"{path}: {key} has shape {a.shape} and dtype {a.dtype}; expected 1-D integer labels")
    if len(a) != n:
        raise DataError(f"{path}: {key} has {len(a)} labels for {n} images; counts must match")
    return a.astype(np.int64)


# --------------------------------------------------------------------------- splits

def _split(name, x, y, x_test, y_test, split_seed, val_fraction, test_fraction=0.1) -> Dataset:
    """Carve test (if none given) and validation parts deterministically from `split_seed`."""
    rng = np.random.default_rng(split_seed)
    if x_test is None:
        perm = rng.permutation(len(x))
        n_test = int(round(len(x) * test_fraction))
        if len(x) - n_test < 2 or n_test < 1:
            raise DataError(f"{name}: {len(x)} images are too few to split; give at least 10")
        x_test, y_test = x[perm[:n_test]], (y[perm[:n_test]] if y is not None else None)
        x, y = x[perm[n_test:]], (y[perm[n_test:]] if y is not None else None)
    perm = rng.permutation(len(x))
    n_val = max(1, int(round(len(x) * val_fraction)))
    if len(x) - n_val < 1:
        raise DataError(f"{name}: {len(x)} training images are too few to hold out validation; give more")
    val, train = perm[:n_val], perm[n_val:]
    return _make(name, x[train], x[val], x_test, *(None if y is None else y[i] for i in (train, val)), y_test)


def _make(name, x_train, x_val, x_test, y_train, y_val, y_test) -> Dataset:
    h = hashlib.sha256()
    for a in (x_train, x_val, x_test, y_train, y_val, y_test):
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return Dataset(name, x_train, x_val, x_test, y_train, y_val, y_test, h.hexdigest())
