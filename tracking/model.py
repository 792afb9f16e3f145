"""Logging a trained model: the Keras flavor with a signature, and a serving pyfunc."""
from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

HERE = Path(__file__).resolve().parent
TRAINING_DIR = HERE.parent / "training"


def signature(image_shape, latent_dim: int | None = None, with_params: bool = False) -> ModelSignature:
    """The Keras flavor's signature: images (N, H, W) to reconstructions (N, H, W).

    `with_params`: the serving pyfunc's, which declares only its `output` parameter. It takes images
    (N, H, W) or flat rows (N, H*W) (a JSON list of pixel vectors), which no one TensorSpec allows (MLflow
    requires the declared number of dimensions), and checks them itself with a one-line error; it returns
    reconstructions (N, H, W) or latent codes (N, latent), which no one output spec describes either.
    """
    f32 = np.dtype("float32")
    if with_params:
        return ModelSignature(params=ParamSchema([ParamSpec("output", "string", "reconstruction")]))
    return ModelSignature(inputs=Schema([TensorSpec(f32, (-1, *image_shape))]),
                          outputs=Schema([TensorSpec(f32, (-1, *image_shape))]))


def log_models(model, image_shape) -> dict[str, str]:
    """Log `model` twice in the active run: `model` (Keras flavor) and `pyfunc` (serving).

    No input_example: with one, mlflow.keras.log_model crashes on MLflow 3.17 (mlflow#16183).
    Returns {"keras": uri, "pyfunc": uri}.
    """
    requirements = _requirements()
    keras_info = mlflow.keras.log_model(model, name="model", signature=signature(image_shape),
                                        pip_requirements=requirements)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        pyfunc_info = mlflow.pyfunc.log_model(
            name="pyfunc", python_model=str(HERE / "pyfunc_model.py"), artifacts={"keras_model": str(path)},
            code_paths=[str(TRAINING_DIR)], signature=signature(image_shape, with_params=True),
            pip_requirements=requirements)
    return {"keras": keras_info.model_uri, "pyfunc": pyfunc_info.model_uri}


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("tensorflow", "keras", "mlflow", "scikit-learn", "scipy", "numpy")]
