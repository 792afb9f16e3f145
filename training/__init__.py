"""aesweep's training core: datasets, Keras 3 autoencoders, a tf.distribute loop, evaluation, images.

Pure: never imports mlflow or ray. Tracking and tuning plug in through `training.callbacks`.

    from training import TrainConfig, train
    result = train(TrainConfig(model="vae", dataset="digits", epochs=5))
"""
from training.config import ConfigError, TrainConfig
from training.data import DataError, load_dataset


def train(*args, **kwargs):
    """See training.loop.train (imported lazily: TensorFlow starts only when training does)."""
    from training.loop import train as _train

    return _train(*args, **kwargs)


__all__ = ["ConfigError", "DataError", "TrainConfig", "load_dataset", "train"]
