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



def import_tensorflow():
    """Import TensorFlow and Keras once, hiding the C++ lines TF prints before its logging starts."""
    import sys

    import importlib

    if "tensorflow" in sys.modules or _os.environ.get("AESWEEP_VERBOSE"):
        importlib.import_module("keras")
        return importlib.import_module("tensorflow")
    saved, devnull = _os.dup(2), _os.open(_os.devnull, _os.O_WRONLY)
    _os.dup2(devnull, 2)
    try:
        importlib.import_module("keras")
        tensorflow = importlib.import_module("tensorflow")
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)
        _os.close(devnull)
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


from training.config import ConfigError, TrainConfig  # noqa: E402
from training.data import DataError, load_dataset  # noqa: E402


def train(*args, **kwargs):
    """See training.loop.train (imported lazily: TensorFlow starts only when training does)."""
    from training.loop import train as _train

    return _train(*args, **kwargs)


__all__ = ["ConfigError", "DataError", "TrainConfig", "load_dataset", "train"]
