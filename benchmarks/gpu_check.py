"""Is this machine ready to train on its GPUs? Lists the GPUs TensorFlow sees, trains the project's VAE for a few
steps under MirroredStrategy over all of them with mixed precision (float16 compute, float32 variables, loss
scaling), and reports samples per second. On a machine without a GPU it says so and exits 0.

    python -m benchmarks.gpu_check                      # the GPUs, or "no GPU" and exit 0
    python -m benchmarks.gpu_check --steps 200 --batch-size 1024
    python -m benchmarks.gpu_check --cpu --steps 5      # the same path on the CPU (what the test runs)

Memory: each process grows its GPU memory as it needs it (training/distribute.py), so trials that share a GPU
under Ray (`--gpus-per-trial 0.5`) do not each grab it all; AESWEEP_GPU_MEMORY_MB=N caps each process instead.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from training.backend import keras, tf
from training.config import TrainConfig
from training.distribute import (describe, enable_gpu_memory_growth, global_batch_gather, global_batch_mean,
                                  select_strategy)
from training.models import build_model

IMAGE_SHAPE = (28, 28)  # MNIST-sized synthetic images: the throughput does not depend on their content


def describe_gpus() -> list[str]:
    lines = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        cc = ".".join(str(c) for c in details.get("compute_capability", ()))
        growth = tf.config.experimental.get_memory_growth(gpu)
        lines.append(f"{gpu.name}: {details.get('device_name', '?')} (compute capability {cc or '?'}; "
                     f"memory growth {'on' if growth else 'off'})")
    return lines


def measure(devices: list[str], steps: int, per_replica_batch: int, precision: str) -> dict:
    """Train the VAE for `steps` timed steps (after 3 untimed ones that trace and warm up)."""
    keras.mixed_precision.set_global_policy(precision)
    distribution = describe(tf.distribute.MirroredStrategy(devices)) if devices else select_strategy()
    strategy, replicas = distribution.strategy, distribution.num_replicas
    global_batch = per_replica_batch * replicas
    config = TrainConfig(model="vae", latent_dim=20, hidden=(512, 256))
    with strategy.scope():
        model = build_model(config, IMAGE_SHAPE)
        optimizer = keras.optimizers.Adam(1e-3)
        if precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    global_mean, gather = global_batch_mean(global_batch), global_batch_gather()

    def replica_step(x, noise):
        with tf.GradientTape() as tape:
            terms = model.loss_terms(x, noise, batch_mean=global_mean, training=True, batch_gather=gather)
            loss = tf.reduce_sum(tf.cast(terms["loss"], tf.float32)) / global_batch \
                + tf.cast(terms["penalty"], tf.float32) / replicas
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def step(x, noise):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(x, noise)), axis=None)

    # Inputs in the compute dtype (float16 under mixed precision): the model's loss mixes them with its outputs.
    dtype = keras.mixed_precision.global_policy().compute_dtype
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (global_batch, *IMAGE_SHAPE)).astype(dtype)
    noise = rng.standard_normal((global_batch, model.noise_dim)).astype(dtype)
    dataset = tf.data.Dataset.from_tensors((x, noise)).repeat()
    batches = iter(strategy.experimental_distribute_dataset(dataset))
    for _ in range(3):
        loss = step(*next(batches))
    float(loss)  # the warm-up has finished on the device
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(*next(batches))
    loss = float(loss)  # waits for the last step
    seconds = time.perf_counter() - start
    return {"strategy": distribution.name, "replicas": replicas, "global_batch": global_batch, "steps": steps,
            "seconds": seconds, "samples_per_second": steps * global_batch / seconds, "loss": loss,
            "precision": keras.mixed_precision.global_policy().name}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed training steps (default: 100)")
    parser.add_argument("--batch-size", type=int, default=512, help="examples per GPU per step (default: 512)")
    parser.add_argument("--precision", choices=["mixed_float16", "float32"], default="mixed_float16")
    parser.add_argument("--cpu", action="store_true", help="run the measurement on the CPU (a check of this path)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        print("error: --steps and --batch-size must be at least 1", file=sys.stderr)
        return 2

    gpus = tf.config.list_physical_devices("GPU")
    built = "with" if tf.test.is_built_with_cuda() else "without"
    print(f"TensorFlow {tf.__version__} (built {built} CUDA), Keras {keras.__version__}")
    if not gpus and not args.cpu:
        print("no GPU visible to TensorFlow: a CPU-only machine (or no NVIDIA driver / CUDA libraries: "
              "pip install 'tensorflow[and-cuda]', deploy/Dockerfile.gpu); nothing to measure")
        return 0
    enable_gpu_memory_growth()  # (or AESWEEP_GPU_MEMORY_MB) before anything touches a GPU
    for line in describe_gpus():
        print(line)
    devices = ["/cpu:0"] if args.cpu else [f"/gpu:{i}" for i in range(len(gpus))]
    r = measure(devices, args.steps, args.batch_size, args.precision)
    print(f"{r['strategy']} over {', '.join(devices)} ({r['replicas']} replica(s)), {r['precision']}, "
          f"global batch {r['global_batch']}: {r['samples_per_second']:.0f} samples/s "
          f"({r['steps']} steps in {r['seconds']:.2f} s; loss {r['loss']:.1f})")
    if not math.isfinite(r["loss"]):
        print("error: the loss is not finite", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
