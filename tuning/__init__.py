"""Ray Tune sweeps for aesweep: everything that imports ray lives here.

    python -m tuning --model vae --dataset digits --num-samples 8 --max-epochs 20
"""
from pathlib import Path as _Path

ROOT = _Path(__file__).resolve().parents[1]  # the checkout: Ray's working_dir; ./ray_results, ./mlflow.db by default
