"""Pictures legible at 1x: tile sizes, traversal order, image cadence, and the sweep's figures (pure drawing)."""
from __future__ import annotations

import numpy as np
import pytest

from training.config import TrainConfig
from training.evaluate import embed, unit_activity
from training.images import TILE_PX, labelled_grid, tile_scale, traversal, traversal_images
from training.models import build_model


def longest_run(mask: np.ndarray) -> int:
    """The longest run of True along the last axis, over all rows."""
    best = 0
    for row in mask.reshape(-1, mask.shape[-1]):
        edges = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        best = max(best, int((ends - starts).max(initial=0)))
    return best


@pytest.mark.parametrize("shape, scale", [((8, 8), 8), ((28, 20), 4), ((28, 28), 3)])
def test_tiles_are_at_least_64_pixels(shape, scale):
    assert tile_scale(shape) == scale
    tiles = np.full((2, 3) + shape, 0.5, np.float32)  # grey 128: elsewhere only a few anti-aliased text pixels
    image = labelled_grid(tiles, title="t", rows=["z0\nvar 1", "z1\nvar 0.5"], cols=["a", "b", "c"],
                          xlabel="x", ylabel="y")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    grey = (image == 128).all(axis=-1)
    assert longest_run(grey) == shape[1] * scale >= TILE_PX  # one tile's width, pixel for pixel
    assert longest_run(grey.T) == shape[0] * scale >= TILE_PX
    assert 0 <= grey.sum() - 6 * shape[0] * shape[1] * scale ** 2 < 50  # all six tiles, whole


def test_traversal_rows_are_the_most_active_dimensions_first():
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(TrainConfig(model="vae", latent_dim=12, hidden=(16,)), (8, 8))
    kernel = model.encoder.get_layer("z_mean").kernel
    factors = np.array([0.3, 0, 2.0, 0.5, 1.5, 0, 0.1, 1.0, 3.0, 0.7, 0.2, 2.5], np.float32)
    k0 = kernel.numpy()[:, :1]
    kernel.assign(k0 * factors[None, :])  # dimension d's mean is factors[d] times one shared feature
    x = np.random.default_rng(0).uniform(size=(40, 8, 8)).astype(np.float32)
    sweep = traversal_images(model, x, steps=5)
    expected = np.argsort(-factors, kind="stable")[:10]  # the two dead dimensions (factor 0) are left out
    np.testing.assert_array_equal(sweep.dims, expected)
    assert 1 not in sweep.dims and 5 not in sweep.dims
    np.testing.assert_allclose(sweep.activity, unit_activity(model, x)[expected], rtol=1e-6)
    assert np.all(np.diff(sweep.activity) <= 0) and sweep.images.shape == (10, 5, 8, 8)
    # Row r sweeps dimension dims[r] by -3..3 prior sd around the mean code, the others held at the mean.
    base = embed(model, x).mean(axis=0)
    for r in (0, 9):
        z = np.repeat(base[None], 5, axis=0)
        z[:, sweep.dims[r]] += np.linspace(-3, 3, 5)
        np.testing.assert_allclose(sweep.images[r], np.asarray(model.decode(z)), atol=1e-5)
    image = traversal(model, x, steps=5)
    assert image.shape[0] >= 10 * TILE_PX and image.shape[1] >= 5 * TILE_PX


def test_small_latent_traversal_shows_every_dimension():
    model = build_model(TrainConfig(model="sae", latent_dim=3, hidden=(8,)), (28, 20))
    x = np.random.default_rng(1).uniform(size=(20, 28, 20)).astype(np.float32)
    sweep = traversal_images(model, x, steps=4)
    assert sorted(sweep.dims) == [0, 1, 2] and sweep.images.shape == (3, 4, 28, 20)
    assert traversal(model, x, steps=4).shape[0] >= 3 * 28 * 4


def test_image_cadence_is_bounded_and_ends_at_the_last_epoch():
    from tracking.callback import image_schedule

    assert image_schedule(3, 1) == [1, 2, 3]
    assert image_schedule(1000, None) == list(range(100, 1001, 100))
    for epochs in [*range(1, 130), 997, 1000, 1001]:
        for every in (None, 1, 7, 50):
            steps = image_schedule(epochs, every)
            assert steps[-1] == epochs and len(steps) <= 10 and steps == sorted(set(steps)), (epochs, every)
            if every:
                assert all(s % every == 0 for s in steps[:-1])
            for last in range(1, epochs):  # stopped early at `last`: its final images are one more step
                assert len([s for s in steps if s <= last]) + (last not in steps) <= 10, (epochs, every, last)


# ------------------------------------------------------------------ the sweep's figures


def trial_table():
    """Rows as tuning.summary.trial_table makes them: flat columns."""
    import pandas as pd

    from tuning.labels import trial_label

    rng = np.random.default_rng(0)
    n = 8
    df = pd.DataFrame({"trial": [f"t{i}" for i in range(n)], "status": "FINISHED",
                       "stopped_early": [False] * 5 + [True] * 3, "epochs": [10] * 5 + [3] * 3,
                       "latent_dim": [16, 2, 4, 8, 32, 2, 4, 8],
                       "learning_rate": 10 ** rng.uniform(-4, -2.5, n),
                       "kl_weight": rng.uniform(0.25, 4, n), "hidden": "256,128",
                       "val_elbo": rng.normal(-30, 4, n)})
    df.loc[0, ["learning_rate", "kl_weight"]] = [7.9e-4, 3.0]
    df["run_name"] = [trial_label({k: r[k] for k in ("latent_dim", "learning_rate", "kl_weight")})
                      for r in df.to_dict("records")]
    return df


def test_trial_labels_are_readable():
    from tuning.figures import fmt, swept_columns

    df = trial_table()
    swept = swept_columns(df)
    assert swept == ["latent_dim", "learning_rate", "kl_weight"]  # constants left out
    assert df["run_name"][0] == "latent=16 lr=7.9e-4 beta=3.0"
    assert [fmt(v) for v in (0.25, 2.0, 1e-4, 12345.0, np.int64(8))] == ["0.25", "2.0", "1.0e-4", "1.2e4", "8"]


def test_comparison_figure_marks_stopped_trials_and_labels_real_values():
    import matplotlib.pyplot as plt

    from tuning.figures import comparison_figure

    fig = comparison_figure(trial_table(), "val_elbo")
    scatter = fig.axes[:3]
    assert [ax.get_xscale() for ax in scatter] == ["linear", "log", "linear"]
    for ax in scatter:
        finished, stopped = ax.collections[:2]
        assert len(finished.get_offsets()) == 5 and len(stopped.get_offsets()) == 3
    parallel = fig.axes[3]
    labels = {t.get_text() for t in parallel.texts}
    assert {"2", "8", "16", "32", "learning_rate (log)", "kl_weight", "val_elbo"} <= labels  # 4: too close to 2
    assert "4" not in labels
    assert any(label.endswith("e-4") for label in labels)  # learning-rate ticks in its own units
    assert sum(line.get_linestyle() == "--" for line in parallel.lines) == 3
    fig.canvas.draw()
    plt.close(fig)
    assert comparison_figure(trial_table().drop(columns=["kl_weight", "learning_rate", "latent_dim"]),
                             "val_elbo") is None


def test_traversal_panel_puts_trials_side_by_side_at_their_size():
    import matplotlib.pyplot as plt

    from tuning.figures import traversal_panel

    df = trial_table()
    image = np.zeros((500, 300, 3), np.uint8)
    image[10:74, 10:74] = 200
    rows = df.to_dict("records")[:3]
    fig = traversal_panel([(r, image) for r in rows], "val_elbo")
    fig.canvas.draw()
    w, h = fig.canvas.get_width_height()
    assert w >= 3 * 300 and h < 500 + 100  # one row, little more than the images' height
    rendered = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    assert longest_run((rendered == 200).all(axis=-1)) == 64  # each image pixel for pixel
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("#1  latent=16 lr=7.9e-4 beta=3.0\nval_elbo ")
    plt.close(fig)
