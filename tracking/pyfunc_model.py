"""The served model, written as MLflow "models from code".

`predict` takes images (N, H, W) or flat rows of pixels (N, H*W), and returns reconstructions
(N, H, W) by default, or latent codes (N, latent) with params={"output": "latent"}. Bad input raises
an MlflowException (INVALID_PARAMETER_VALUE) with one line saying what was expected: the scoring
server answers it with HTTP 400 and that line, not a stack trace. `unwrap_python_model()` gives this
object, whose `decode(z)` and `sample(n, seed)` reach the decoder and the prior (VAE).
"""
from __future__ import annotations

import importlib

import numpy as np
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

OUTPUTS = ("reconstruction", "latent")


class AutoencoderModel(PythonModel):
    # Input is checked in predict (images or flat rows), not by type hints: this tells MLflow 3 so, which
    # also silences its "Add type hints to the `predict` method" warning at every load (a UserWarning that
    # MLflow re-enables itself, so a warnings filter cannot). Private to MLflow: if it goes, the warning is back.
    _skip_type_hint_validation = True

    def load_context(self, context):
        from training.backend import keras

        importlib.import_module("training.models")  # registers the custom classes for safe-mode loading

        self.model = keras.models.load_model(context.artifacts["keras_model"], safe_mode=True)

    def _images(self, model_input) -> np.ndarray:
        shape = tuple(self.model.image_shape)
        pixels = int(np.prod(shape))
        expected = (f"images of shape (N, {', '.join(map(str, shape))}) "
                    f"or flat rows of {pixels} pixels (N, {pixels})")
        try:
            x = np.asarray(model_input.values if hasattr(model_input, "values") else model_input, dtype=np.float32)
        except (TypeError, ValueError):
            raise bad_input(f"expected {expected}, as numbers; got values that are not numbers "
                            f"or rows of unequal length") from None
        if x.ndim == 2 and x.shape[1] == pixels:
            x = x.reshape((-1,) + shape)  # flat rows, e.g. from a JSON "inputs" list of pixel vectors
        if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
            raise bad_input(f"expected {expected}; got shape {x.shape}")
        return x

    def predict(self, context, model_input, params=None):
        output = (params or {}).get("output", "reconstruction")
        if output not in OUTPUTS:
            raise bad_input(f"unknown output {output!r}: choose one of {', '.join(OUTPUTS)}")
        x = self._images(model_input)
        if output == "latent":
            return np.asarray(self.model.encode_mean(x))
        return np.asarray(self.model(x))

    def decode(self, z) -> np.ndarray:
        return np.asarray(self.model.decode(np.asarray(z, dtype=np.float32)))

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n images decoded from prior draws z ~ N(0, I) (VAE only)."""
        if not hasattr(self.model, "kl_weight"):
            raise ValueError("sampling from a prior needs a VAE; this is a sparse autoencoder")
        z = np.random.default_rng(seed).standard_normal((n, self.model.latent_dim)).astype(np.float32)
        return self.decode(z)


def bad_input(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


mlflow.models.set_model(AutoencoderModel())
