"""One distributed epoch runner, used by pretraining (training/loop.py) and IDEC fine-tuning (training/finetune.py).

    step = make_step(strategy, optimizer, variables, loss_fn)   # loss_fn(*batch) -> (loss, logs), per replica
    logs = run_epoch(strategy, step, dataset)                   # {name: mean over the epoch's steps}

`loss_fn` runs on each replica on its share of a global batch: `loss` is that replica's share of
the global-batch loss (per-example terms summed and divided by the GLOBAL batch, batch-level terms
divided by the number of replicas), so the gradients summed across replicas are the global batch's;
each value in `logs` is likewise that replica's share, and the replicas' shares are summed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from training.backend import tf


def make_step(strategy: tf.distribute.Strategy, optimizer, variables: list,
              loss_fn: Callable) -> Callable:
    """A `tf.function` (iterator, n) -> {name: float64 sum over the n steps}: n optimiser steps on the
    distributed batches `iterator` yields, each batch's logs summed over replicas.

    All n steps run in one call and the sums stay on the device until it returns: no Python between
    steps and no host sync per step. float64 sums in step order, as Python's float sums were."""
    def replica_step(*batch):
        with tf.GradientTape() as tape:
            loss, logs = loss_fn(*batch)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return logs

    def one_step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return {k: tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), tf.float64)
                for k, v in per_replica.items()}

    @tf.function
    def steps(iterator, n):
        sums = one_step(next(iterator))  # the first step outside the loop fixes the logs' names
        for _ in tf.range(n - 1):
            logs = one_step(next(iterator))
            sums = {k: sums[k] + logs[k] for k in sums}
        return sums

    return steps


def run_epoch(strategy: tf.distribute.Strategy, step: Callable, dataset: tf.data.Dataset) -> dict[str, float]:
    """Run `step` over every batch of `dataset` (global batches of known number), distributed by `strategy`;
    returns each log's mean over the steps."""
    n = int(dataset.cardinality())
    if n < 1:
        raise ValueError(f"an epoch needs a known number (>= 1) of batches, not {n}")
    sums = step(iter(strategy.experimental_distribute_dataset(dataset)), tf.constant(n))
    return {k: float(v) / n for k, v in sums.items()}


def epoch_order(rng: np.random.Generator, n: int, global_batch: int, steps: int = 0) -> np.ndarray:
    """The order of an epoch's examples: one shuffled pass over n; with `steps` (steps_per_epoch) more
    updates than one pass holds, as many reshuffled passes back to back as they need."""
    passes = max(1, -(-steps * global_batch // n)) if steps else 1
    return np.concatenate([rng.permutation(n) for _ in range(passes)])
