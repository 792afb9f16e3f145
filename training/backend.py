"""TensorFlow and Keras, imported once and quietly: the one module that starts them.

    from training.backend import keras, tf

TensorFlow prints C++ lines on stderr before its logging starts; unless AESWEEP_VERBOSE is set,
the log levels are raised first and stderr is muted for the import. Import this module lazily
where TensorFlow is not always needed (loading digits, the MLflow pyfunc wrapper).
"""
from __future__ import annotations

import importlib
import os
import sys


def _import_quietly():
    verbose = bool(os.environ.get("AESWEEP_VERBOSE"))
    if not verbose:  # TensorFlow reads these when it is first imported
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    # Several trials may share a GPU (fractional --gpus-per-trial): TensorFlow would take all its memory
    # ("all CUDA-capable devices are busy", ray#10677); it grows as needed instead, read when it first
    # touches a GPU. AESWEEP_GPU_MEMORY_MB=N caps each process instead (training.distribute).
    if "AESWEEP_GPU_MEMORY_MB" not in os.environ:
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if "tensorflow" in sys.modules or verbose:
        keras_module = importlib.import_module("keras")
        return importlib.import_module("tensorflow"), keras_module
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        keras_module = importlib.import_module("keras")
        tf_module = importlib.import_module("tensorflow")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tf_module.get_logger().setLevel("ERROR")
    return tf_module, keras_module


tf, keras = _import_quietly()

__all__ = ["keras", "tf"]
