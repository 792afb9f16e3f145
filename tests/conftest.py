"""Shared fixtures: real data when ../shared/data is present, tiny arrays otherwise."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AESWEEP_SHARED_DATA", ROOT.parent / "shared" / "data"))
PYTHON = sys.executable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def needs_shared(*files: str):
    missing = [f for f in files if not (SHARED_DATA / f).is_file()]
    return pytest.mark.skipif(bool(missing), reason=f"real data {', '.join(missing)} not in {SHARED_DATA} "
                                                    f"(see ../shared/data/README.md)")


@pytest.fixture
def shared_data() -> str:
    return str(SHARED_DATA)


@pytest.fixture
def tiny_npz(tmp_path) -> Path:
    """A small labelled image set: 3 classes of 6x6 blobs in distinct corners."""
    rng = np.random.default_rng(0)
    x, y = [], []
    for label, (r, c) in enumerate([(0, 0), (0, 3), (3, 0)]):
        for _ in range(40):
            img = rng.uniform(0, 0.1, (6, 6))
            img[r:r + 3, c:c + 3] = rng.uniform(0.8, 1.0, (3, 3))
            x.append(img)
            y.append(label)
    x, y = np.array(x, dtype=np.float32), np.array(y, dtype=np.int64)
    path = tmp_path / "blobs.npz"
    np.savez(path, x_train=x[::2], y_train=y[::2], x_test=x[1::2], y_test=y[1::2])
    return path
