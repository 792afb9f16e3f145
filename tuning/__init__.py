"""Ray Tune sweeps for aesweep: everything that imports ray lives here.

    python -m tuning --model vae --dataset digits --num-samples 8 --max-epochs 10
"""
import os as _os

if not _os.environ.get("AESWEEP_VERBOSE"):
    _os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    _os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
