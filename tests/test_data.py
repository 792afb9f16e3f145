import gzip
import hashlib
import shutil
import struct

import numpy as np
import pytest

from training import data as data_mod
from training.data import DataError, load_dataset
from tests.conftest import needs_shared


def test_digits_offline_splits_and_digest():
    d = load_dataset("digits")
    assert d.x_train.dtype == np.float32 and d.x_train.shape[1:] == (8, 8)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert d.labelled and d.num_classes == 10
    again = load_dataset("digits")
    assert again.digest == d.digest and np.array_equal(again.x_val, d.x_val)
    assert load_dataset("digits", split_seed=1).digest != d.digest


@needs_shared("frey_rawface.mat")
def test_frey_faces_upright_with_the_published_test_split(shared_data):
    """The test faces are exactly those of Li & Turner's code (YingzhenLi/VRbound, train_freyface.py),
    recomputed here from the raw file by their procedure and pinned by first/last index and content."""
    import hashlib

    from scipy.io import loadmat

    d = load_dataset("frey", shared_data)
    assert d.image_shape == (28, 20)
    assert len(d.x_test) == 197 and len(d.x_train) == 1591 and len(d.x_val) == 177
    assert d.y_train is None and not d.labelled
    raw = loadmat(f"{shared_data}/frey_rawface.mat")["ff"].T.copy()  # (1965, 560) uint8, file order
    state = np.random.get_state()
    try:  # the published procedure, with the legacy global RNG
        data = raw.copy()
        np.random.seed(0)
        np.random.shuffle(data)
    finally:
        np.random.set_state(state)
    published_test = data[int(0.9 * len(data)):]
    where = {row.tobytes(): i for i, row in enumerate(raw)}  # the 1965 faces are distinct
    assert len(where) == len(raw)
    index = [where[row.tobytes()] for row in published_test]
    assert len(index) == 197 and (index[0], index[-1]) == (139, 684)
    assert hashlib.sha256(published_test.tobytes()).hexdigest() == FREY_TEST_SHA256
    ours = np.round(d.x_test.reshape(len(d.x_test), -1) * 255).astype(np.uint8)
    assert np.array_equal(ours, published_test)  # same faces, same order
    # Train and validation come from the other 1768 faces only; validation seed never moves test.
    test_rows = {row.tobytes() for row in published_test}
    for part in (d.x_train, d.x_val):
        rows = np.round(part.reshape(len(part), -1) * 255).astype(np.uint8)
        assert not test_rows & {row.tobytes() for row in rows}
    again = load_dataset("frey", shared_data, split_seed=5)
    assert np.array_equal(again.x_test, d.x_test) and not np.array_equal(again.x_val, d.x_val)


FREY_TEST_SHA256 = "b29682d851d310003a12b3bc228af9fba81f8dc17ca5437aca67cbe21871bb88"


@needs_shared("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
def test_mnist_test_protocol(shared_data):
    d = load_dataset("mnist-test", shared_data)
    assert d.x_test.shape == (10000, 28, 28) and len(d.y_test) == 10000
    assert len(d.x_train) == 9000 and len(d.x_val) == 1000
    assert d.num_classes == 10


def _write_idx(path, arr):
    header = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_from_npz_in_data_dir(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 50).astype(np.uint8),
              "x_test": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 20).astype(np.uint8)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    digest = hashlib.sha256((tmp_path / "mnist.npz").read_bytes()).hexdigest()
    monkeypatch.setattr(data_mod, "MNIST_NPZ_SHA256", digest)
    d = load_dataset("mnist", str(tmp_path))
    assert len(d.x_train) + len(d.x_val) == 50 and len(d.x_test) == 20
    assert np.allclose(d.x_test, arrays["x_test"] / 255.0)


def test_checksum_mismatch_is_one_clear_line(tmp_path):
    (tmp_path / "frey_rawface.mat").write_bytes(b"not the real file")
    with pytest.raises(DataError, match="checksum mismatch") as e:
        load_dataset("frey", str(tmp_path))
    assert "frey_rawface.mat" in str(e.value) and "\n" not in str(e.value)


def test_missing_offline_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data_mod, "FREY_URL", "http://127.0.0.1:9/frey_rawface.mat")  # nothing listens
    with pytest.raises(DataError, match="put the file in") as e:
        load_dataset("frey", str(tmp_path / "empty"))
    assert "frey_rawface.mat" in str(e.value)


def test_bad_idx_file(tmp_path, shared_data):
    _write_idx(tmp_path / "x.gz", np.zeros((3, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="bad IDX magic"):
        data_mod._read_idx(tmp_path / "x.gz")


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*choose one of"):
        load_dataset("cifar")


def test_npz_user_images(tiny_npz):
    d = load_dataset(f"npz:{tiny_npz}")
    assert d.image_shape == (6, 6) and d.labelled and d.num_classes == 3


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((0, 4, 4), np.uint8)}, "x_train is empty"),
    ({"x_train": np.zeros((5, 16), np.uint8)}, r"shape \(5, 16\); expected \(N, H, W\)"),
    ({"x_train": np.zeros((5, 4, 4), np.int32)}, "dtype int32"),
    ({"x_train": np.full((5, 4, 4), np.nan, np.float32)}, "NaN or Inf"),
    ({"x_train": np.full((5, 4, 4), 2.0, np.float32)}, r"scale floats to \[0, 1\]"),
    ({"x_train": np.zeros((5, 4, 4), np.uint8), "y_train": np.zeros(4, np.int64)}, "4 labels for 5 images"),
    ({"images": np.zeros((5, 4, 4), np.uint8)}, "no 'x_train' array"),
])
def test_npz_bad_input(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as e:
        load_dataset(f"npz:{path}")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_npz_refuses_pickle(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="without pickle"):
        load_dataset(f"npz:{path}")


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_dataset(f"npz:{tmp_path}/nope.npz")


@needs_shared("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
def test_mnist_label_count_mismatch(tmp_path, shared_data, monkeypatch):
    shutil.copy(f"{shared_data}/t10k-images-idx3-ubyte.gz", tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    monkeypatch.setitem(data_mod.MNIST_TEST_SHA256, "t10k-labels-idx1-ubyte.gz", None)
    with pytest.raises(DataError, match="10000 images but t10k-labels-idx1-ubyte.gz has 7 labels"):
        load_dataset("mnist-test", str(tmp_path))


def test_relative_data_paths_become_absolute(tmp_path, monkeypatch):
    from training.data import absolute_paths

    monkeypatch.chdir(tmp_path)
    tmp_path = tmp_path.resolve()  # as the code sees it (a symlinked temp folder, e.g. on macOS)
    monkeypatch.setenv("AESWEEP_DATA_DIR", "env-data")
    assert absolute_paths("npz:x/y.npz", "data") == (f"npz:{tmp_path}/x/y.npz", f"{tmp_path}/data")
    assert absolute_paths("mnist", None) == ("mnist", f"{tmp_path}/env-data")  # the environment's folder, pinned
    monkeypatch.delenv("AESWEEP_DATA_DIR")
    assert absolute_paths("digits", None) == ("digits", None)
