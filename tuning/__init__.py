"""Ray Tune sweeps for aesweep: everything that imports ray lives here.

    python -m tuning --model vae --dataset digits --num-samples 8 --max-epochs 20
"""
