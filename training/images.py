"""Images of a trained model, as uint8 RGB arrays (H, W, 3) legible at 1x, and matplotlib figures.

Every picture is scaled by nearest neighbour so that one tile is at least TILE_PX pixels wide and
tall (8x8 digits x8, 28x28 MNIST x3, 28x20 Frey faces x4), then labelled with matplotlib (Agg).

    traversal(model, x_ref)       the most active latent dimensions (at most 10), each swept while
                                  the others stay at the mean code; rows say which dimension and its activity
    reconstructions(model, x)     originals (top) above reconstructions (bottom)
    prior_samples(model)          decoded draws from N(0, I) (VAE)
    manifold(model)               the decoded 2-D latent grid (latent_dim == 2, VAE)
    loss_curves(history)          train / validation losses by epoch (a figure)
    save_all(result, out_dir)     all of the above as PNG files
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.stats import norm

from training.evaluate import embed, unit_activity

TILE_PX = 64   # smallest tile side in a logged picture: the MLflow UI shows images at 1x
MAX_ROWS = 10  # latent dimensions in a traversal
PAD = 2        # pixels between tiles (after scaling)
FONT = 11      # points at 100 dpi: about 15 px tall
CHAR_PX = 8.5  # width of a character at FONT, to size margins before drawing


def tile_scale(tile_shape: tuple[int, ...]) -> int:
    """The integer nearest-neighbour factor that makes a (H, W) tile at least TILE_PX on each side."""
    return max(1, math.ceil(TILE_PX / min(tile_shape[-2:])))


def grid(images: np.ndarray, pad: int = 1, scale: int = 1) -> np.ndarray:
    """(rows, cols, H, W) in [0, 1] -> one uint8 image: tiles scaled by `scale`, `pad` white pixels apart."""
    if scale > 1:
        images = images.repeat(scale, axis=-2).repeat(scale, axis=-1)
    rows, cols, h, w = images.shape
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            out[y:y + h, x:x + w] = images[r, c]
    return (np.clip(out, 0.0, 1.0) * 255).round().astype(np.uint8)


def labelled_grid(tiles: np.ndarray, title: str = "", rows: list[str] | None = None,
                  cols: list[str] | None = None, xlabel: str = "", ylabel: str = "") -> np.ndarray:
    """(rows, cols, H, W) in [0, 1] -> uint8 RGB: the grid at TILE_PX per tile, pixel for pixel, with a
    title, a label left of each row, a label under each column and axis labels (any may be empty)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale = tile_scale(tiles.shape)
    image = grid(tiles, PAD, scale)
    gh, gw = image.shape
    th, tw = tiles.shape[-2] * scale, tiles.shape[-1] * scale
    line = FONT * 1.45  # px per line of text
    longest = max((len(s) for label in rows or [] for s in label.split("\n")), default=0)
    left = (longest * CHAR_PX + 10 if rows else 6) + (line + 4 if ylabel else 0)
    top = line + 12 if title else 6
    bottom = 6 + (line + 2 if cols else 0) + (line + 2 if xlabel else 0)
    width = int(math.ceil(max(left + gw + 8, len(title) * CHAR_PX + 16, len(xlabel) * CHAR_PX + left + 8)))
    height = int(math.ceil(top + gh + bottom))
    left, top = int(left), int(top)

    fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    fig.figimage(np.repeat(image[..., None], 3, axis=-1), xo=left, yo=height - top - gh, origin="upper")

    def text(x, y, s, **kw):  # x, y in pixels from the top-left corner
        fig.text(x / width, 1 - y / height, s, fontsize=kw.pop("size", FONT), **kw)

    if title:
        text(width / 2, 6, title, ha="center", va="top", weight="bold")
    for r, label in enumerate(rows or []):
        text(left - 6, top + PAD + r * (th + PAD) + th / 2, label, ha="right", va="center", linespacing=1.1)
    for c, label in enumerate(cols or []):
        text(left + PAD + c * (tw + PAD) + tw / 2, top + gh + 3, label, ha="center", va="top")
    if xlabel:
        text(left + gw / 2, height - 4, xlabel, ha="center", va="bottom", color="0.25")
    if ylabel:
        text(4, top + gh / 2, ylabel, ha="left", va="center", rotation=90, color="0.25")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ------------------------------------------------------------------ latent traversal


class Sweep(NamedTuple):
    """A traversal before drawing: row i sweeps latent dimension dims[i] over the columns."""

    images: np.ndarray    # (rows, steps, H, W) decoded images in [0, 1]
    dims: np.ndarray      # (rows,) latent index of each row, most active first
    activity: np.ndarray  # (rows,) variance of that dimension's posterior mean over the reference images
    offsets: np.ndarray   # (steps,) VAE: prior sd from the mean code; SAE: fraction of the unit's observed range
    latent_dim: int       # dimensions in all (rows may be fewer)
    vae: bool


def traversal_images(model, x_ref: np.ndarray, steps: int = 9, max_rows: int = MAX_ROWS) -> Sweep:
    """The `max_rows` most active dimensions, by `unit_activity` on `x_ref`, each swept with the others
    at the mean code. VAE: -3..3 prior standard deviations around the mean; SAE: the unit's observed range."""
    codes = embed(model, x_ref)
    activity = unit_activity(model, x_ref)
    dims = np.argsort(-activity, kind="stable")[:max_rows]
    base = codes.mean(axis=0)
    vae = hasattr(model, "kl_weight")  # a VAE's prior is N(0, I)
    offsets = np.linspace(-3.0, 3.0, steps) if vae else np.linspace(0.0, 1.0, steps)
    z = np.repeat(base[None, None], len(dims) * steps, axis=0).reshape(len(dims), steps, -1).copy()
    for row, d in enumerate(dims):
        lo, hi = codes[:, d].min(), codes[:, d].max()
        z[row, :, d] = base[d] + offsets if vae else lo + (hi - lo) * offsets
    decoded = np.asarray(model.decode(z.reshape(len(dims) * steps, -1).astype(np.float32)))
    return Sweep(decoded.reshape((len(dims), steps) + decoded.shape[1:]), dims, activity[dims],
                 offsets, codes.shape[1], vae)


def traversal(model, x_ref: np.ndarray, steps: int = 9) -> np.ndarray:
    """The traversal as a labelled uint8 RGB image: rows "z3 / var 0.82", columns the swept values."""
    s = traversal_images(model, x_ref, steps)
    shown = f"{len(s.dims)} most active of {s.latent_dim}" if len(s.dims) < s.latent_dim else "most active first"
    cols = [f"{t:+.3g}" if abs(t) > 1e-9 else "0" for t in s.offsets] if s.vae else [f"{t:.0%}" for t in s.offsets]
    xlabel = ("offset from the mean code, in prior sd" if s.vae
              else "unit swept from its min to its max on the validation images")
    return labelled_grid(s.images, title=f"latent traversal ({shown})",
                         rows=[f"z{d}\nvar {a:.2g}" for d, a in zip(s.dims, s.activity)],
                         cols=cols, xlabel=xlabel,
                         ylabel="dimension, variance of " + ("E[z|x]" if s.vae else "the code") + " over x")


# ------------------------------------------------------------------ other pictures


def reconstructions(model, x: np.ndarray, n: int = 10) -> np.ndarray:
    x = x[:n]
    return labelled_grid(np.stack([x, np.asarray(model(x))]), title="test images and their reconstructions",
                         rows=["original", "reconstruction"])


def prior_samples(model, n: int = 8, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((n * n, model.latent_dim)).astype(np.float32)
    decoded = np.asarray(model.decode(z))
    return labelled_grid(decoded.reshape((n, n) + decoded.shape[1:]), title="samples from the prior N(0, I)")


def manifold(model, n: int = 15) -> np.ndarray:
    """Decoded images on a grid of prior quantiles (Kingma & Welling's 2-D manifold figure)."""
    q = norm.ppf(np.linspace(0.05, 0.95, n)).astype(np.float32)
    z = np.stack(np.meshgrid(q, q[::-1]), axis=-1).reshape(-1, 2)
    decoded = np.asarray(model.decode(z))
    return labelled_grid(decoded.reshape((n, n) + decoded.shape[1:]), title="decoded latent plane",
                         rows=[_short(v) for v in q[::-1]], cols=[_short(v) for v in q],
                         xlabel="z0 (prior quantiles 5%..95%)", ylabel="z1")


def _short(v: float) -> str:
    return "0" if abs(v) < 1e-6 else f"{v:.2g}"


def loss_curves(history: list[dict]):
    """A figure of every loss-like series in `history` by epoch (train solid, validation dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history) + 1)
    for key in ("loss", "recon"):
        for prefix, style in (("", "-"), ("val_", "--")):
            if history and prefix + key in history[0]:
                ax.plot(epochs, [h[prefix + key] for h in history], style, label=prefix + key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats / image" if history and "kl" in history[0] else "loss / image")
    ax.legend()
    fig.tight_layout()
    return fig


def model_images(model, data, config) -> dict[str, np.ndarray]:
    """The per-model image set logged by tracking and written by the CLI (uint8 RGB arrays)."""
    images = {"latent_traversal": traversal(model, data.x_val, config.traversal_steps),
              "reconstructions": reconstructions(model, data.x_test)}
    if config.model == "vae":
        images["samples"] = prior_samples(model, seed=config.seed)
        if config.latent_dim == 2:
            images["latent_manifold"] = manifold(model)
    return images


def save_png(image: np.ndarray, path: Path) -> None:
    """A uint8 (H, W) or (H, W, 3) array as a PNG, pixel for pixel."""
    from matplotlib.image import imsave

    imsave(path, image, cmap="gray", vmin=0, vmax=255)


def save_all(result, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, image in model_images(result.model, result.dataset, result.config).items():
        save_png(image, out / f"{key}.png")
        written.append(out / f"{key}.png")
    if result.history:
        fig = loss_curves(result.history)
        fig.savefig(out / "loss_curves.png", dpi=100)
        import matplotlib.pyplot as plt

        plt.close(fig)
        written.append(out / "loss_curves.png")
    return written
