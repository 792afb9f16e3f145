"""The served model, written as MLflow "models from code".

`predict` returns reconstructions (N, H, W) by default, or latent codes (N, latent) with
params={"output": "latent"}. `unwrap_python_model()` gives this object, whose `decode(z)`
and `sample(n, seed)` reach the decoder and the prior (VAE).
"""
from __future__ import annotations

import importlib

import numpy as np
import mlflow
from mlflow.pyfunc import PythonModel

OUTPUTS = ("reconstruction", "latent")


class AutoencoderModel(PythonModel):
    def load_context(self, context):
        from training import import_tensorflow

        import_tensorflow()
        import keras

        importlib.import_module("training.models")  # registers the custom classes for safe-mode loading

        self.model = keras.models.load_model(context.artifacts["keras_model"], safe_mode=True)

    def _images(self, model_input) -> np.ndarray:
        x = np.asarray(model_input.values if hasattr(model_input, "values") else model_input, dtype=np.float32)
        shape = tuple(self.model.image_shape)
        if x.ndim == 2 and x.shape[1] == int(np.prod(shape)):
            x = x.reshape((-1,) + shape)  # flat rows, e.g. from a JSON "inputs" list of pixel vectors
        if x.shape[1:] != shape:
            raise ValueError(f"expected images of shape {shape} (or flat rows of {int(np.prod(shape))} pixels), "
                             f"got {x.shape[1:]}")
        return x

    def predict(self, context, model_input, params=None):
        output = (params or {}).get("output", "reconstruction")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}: choose one of {', '.join(OUTPUTS)}")
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


mlflow.models.set_model(AutoencoderModel())
