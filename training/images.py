"""Images of a trained model, as uint8 arrays (H, W) or (H, W, 3) and matplotlib figures.

    traversal(model, data)        each latent dimension swept while the others stay fixed
    reconstructions(model, x)     originals (top) above reconstructions (bottom)
    prior_samples(model)          decoded draws from N(0, I) (VAE)
    manifold(model)               the decoded 2-D latent grid (latent_dim == 2, VAE)
    loss_curves(history)          train / validation losses by epoch (a figure)
    save_all(result, out_dir)     all of the above as PNG files
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import norm

from training.evaluate import embed


def grid(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """(rows, cols, H, W) in [0, 1] -> one uint8 image with `pad` pixels between tiles."""
    rows, cols, h, w = images.shape
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            out[y:y + h, x:x + w] = images[r, c]
    return (np.clip(out, 0.0, 1.0) * 255).round().astype(np.uint8)


def traversal_values(model, x_ref: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(base code (latent,), per-dimension sweep values (latent, steps)).

    VAE: base is the mean code of `x_ref`, each axis swept over -3..3 prior standard deviations
    around it. SAE: base is the mean code, each unit swept over its observed range on `x_ref`.
    """
    codes = embed(model, x_ref)
    base = codes.mean(axis=0)
    if hasattr(model, "kl_weight"):  # VAE: prior N(0, I)
        values = base[:, None] + np.linspace(-3.0, 3.0, steps)[None, :]
    else:
        lo, hi = codes.min(axis=0), codes.max(axis=0)
        values = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, steps)[None, :]
    return base.astype(np.float32), values.astype(np.float32)


def traversal_images(model, x_ref: np.ndarray, steps: int = 9, max_dims: int = 32) -> np.ndarray:
    """(latent_dims, steps, H, W): row d sweeps dimension d, other dimensions fixed at the base."""
    base, values = traversal_values(model, x_ref, steps)
    dims = min(len(base), max_dims)
    codes = np.repeat(base[None, None], dims * steps, axis=0).reshape(dims, steps, -1).copy()
    for d in range(dims):
        codes[d, :, d] = values[d]
    decoded = np.asarray(model.decode(codes.reshape(dims * steps, -1)))
    return decoded.reshape((dims, steps) + decoded.shape[1:])


def traversal(model, x_ref: np.ndarray, steps: int = 9) -> np.ndarray:
    return grid(traversal_images(model, x_ref, steps))


def reconstructions(model, x: np.ndarray, n: int = 10) -> np.ndarray:
    x = x[:n]
    return grid(np.stack([x, np.asarray(model(x))]))


def prior_samples(model, n: int = 8, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((n * n, model.latent_dim)).astype(np.float32)
    decoded = np.asarray(model.decode(z))
    return grid(decoded.reshape((n, n) + decoded.shape[1:]))


def manifold(model, n: int = 15) -> np.ndarray:
    """Decoded images on a grid of prior quantiles (Kingma & Welling's 2-D manifold figure)."""
    q = norm.ppf(np.linspace(0.05, 0.95, n)).astype(np.float32)
    z = np.stack(np.meshgrid(q, q[::-1]), axis=-1).reshape(-1, 2)
    decoded = np.asarray(model.decode(z))
    return grid(decoded.reshape((n, n) + decoded.shape[1:]))


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
    """The per-model image set logged by tracking and written by the CLI."""
    images = {"latent_traversal": traversal(model, data.x_val, config.traversal_steps),
              "reconstructions": reconstructions(model, data.x_test)}
    if config.model == "vae":
        images["samples"] = prior_samples(model, seed=config.seed)
        if config.latent_dim == 2:
            images["latent_manifold"] = manifold(model)
    return images


def save_png(image: np.ndarray, path: Path, scale: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    big = np.kron(image, np.ones((scale, scale), dtype=np.uint8)) if scale > 1 else image
    plt.imsave(path, big, cmap="gray", vmin=0, vmax=255)


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
