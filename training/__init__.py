"""aesweep's training core: datasets, Keras 3 autoencoders, a tf.distribute loop, evaluation, images.

Pure: never imports mlflow or ray. Tracking and tuning plug in through `training.callbacks`.

    from training import TrainConfig, train
    result = train(TrainConfig(model="vae", dataset="digits", epochs=5))
"""
import os as _os

# TensorFlow reads these when it is first imported: quiet unless asked for.
if not _os.environ.get("AESWEEP_VERBOSE"):
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

from training.config import ConfigError, TrainConfig  # noqa: E402
from training.data import DataError, load_dataset  # noqa: E402


def train(*args, **kwargs):
    """See training.loop.train (imported lazily: TensorFlow starts only when training does)."""
    from training.loop import train as _train

    return _train(*args, **kwargs)


__all__ = ["ConfigError", "DataError", "TrainConfig", "load_dataset", "train"]
