"""Label-free image augmentation for training inputs: small random rotations and translations.

Drawn from the input pipeline's own random stream (a pure function of seed and epoch), so a
run stays reproducible, resumable, and independent of how batches are split across replicas.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

AUGMENT_STREAM = 3_000_017


def augment(x: np.ndarray, seed: int, epoch: int, shift: float, rotate: float, view: int = 0) -> np.ndarray:
    """(N, H, W) in [0, 1] -> the same images, each rotated by up to `rotate` degrees and shifted
    by up to `shift` of its height and width (a fraction, so one recipe suits 8x8 and 28x28 images;
    uniformly at random, sub-pixel), bilinear, zero outside. `view` > 0 draws another, independent
    augmentation of the same epoch."""
    if not shift and not rotate:
        return x
    n, h, w = x.shape
    rng = np.random.default_rng([seed, AUGMENT_STREAM, epoch] + ([view] if view else []))
    angle = np.deg2rad(rng.uniform(-rotate, rotate, n))
    dy, dx = rng.uniform(-shift, shift, (2, n)) * np.array([[h], [w]])
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")  # (H, W) around the centre
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    # Inverse map: output pixel (y, x) samples input at R(-angle) (y - dy, x - dx).
    src_y = cos * (yy - dy[:, None, None]) + sin * (xx - dx[:, None, None]) + cy
    src_x = -sin * (yy - dy[:, None, None]) + cos * (xx - dx[:, None, None]) + cx
    idx = np.broadcast_to(np.arange(n)[:, None, None], (n, h, w))
    out = map_coordinates(x, [idx, src_y, src_x], order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
