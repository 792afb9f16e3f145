"""Logging a trained model: the Keras flavor with a signature, and a serving pyfunc, each named for
what it is (`vae-digits`: the pyfunc the registry registers; `vae-digits-keras`) and carrying the
run's validation and test metrics, so the experiment's Models tab can rank them."""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

HERE = Path(__file__).resolve().parent
TRAINING_DIR = HERE.parent / "training"


def signature(image_shape, with_params: bool = False) -> ModelSignature:
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


def model_name(config) -> str:
    """'vae-digits', 'sae-mnist-test', 'vae-faces' (npz:faces.npz): the default registered name too."""
    from tracking.store import dataset_label

    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{config.model}-{dataset_label(config.dataset)}")


def log_models(model, image_shape, name: str = "model") -> dict[str, str]:
    """Log `model` twice in the active run: `name` (the serving pyfunc) and `name`-keras (Keras flavor).

    No input_example: with one, mlflow.keras.log_model crashes on MLflow 3.17 (mlflow#16183).
    Returns {"keras": uri, "pyfunc": uri} (models:/<model id>).
    """
    requirements = _requirements()
    keras_info = mlflow.keras.log_model(model, name=f"{name}-keras", signature=signature(image_shape),
                                        pip_requirements=requirements)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        pyfunc_info = mlflow.pyfunc.log_model(
            name=name, python_model=str(HERE / "pyfunc_model.py"), artifacts={"keras_model": str(path)},
            code_paths=[str(TRAINING_DIR)], signature=signature(image_shape, with_params=True),
            pip_requirements=requirements)
    return {"keras": keras_info.model_uri, "pyfunc": pyfunc_info.model_uri}


def model_id(uri: str) -> str:
    return uri.removeprefix("models:/")


def link_metrics(model_uris: dict[str, str], metrics: dict[str, float], step: int) -> None:
    """Attach `metrics` to the logged models (which MLflow gave the run's params), as the active run's
    metrics at `step`. A metric the run already holds at `step` with that value is linked with its own
    timestamp: MLflow then stores no second point in the run's history, only the model's link."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run_id = mlflow.active_run().info.run_id
    now = int(time.time() * 1000)
    stamps = {}
    for key, value in metrics.items():
        at = [m for m in client.get_metric_history(run_id, key) if m.step == step and m.value == value]
        stamps[key] = at[-1].timestamp if at else now
    for uri in model_uris.values():
        client.log_batch(run_id, metrics=[Metric(k, float(v), stamps[k], step, model_id=model_id(uri))
                                          for k, v in metrics.items()])


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("tensorflow", "keras", "mlflow", "scikit-learn", "scipy", "numpy")]
