"""One distributed epoch runner, used by pretraining (training/loop.py) and IDEC fine-tuning (training/finetune.py).

    step = make_step(strategy, optimizer, variables, loss_fn)   # loss_fn(*batch) -> (loss, logs), per replica
    logs = run_epoch(strategy, step, dataset)                   # {name: mean over the epoch's steps}
    logs = run_epoch(strategy, step, (images, noise), global_batch=256)  # the epoch's arrays, in batch order

`loss_fn` runs on each replica on its share of a global batch: `loss` is that replica's share of
the global-batch loss (per-example terms summed and divided by the GLOBAL batch, batch-level terms
divided by the number of replicas), so the gradients summed across replicas are the global batch's;
each value in `logs` is likewise that replica's share, and the replicas' shares are summed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from training.backend import tf


@dataclass(frozen=True)
class EpochSteps:
    """An epoch's optimiser steps in one `tf.function` call, over an iterator of distributed batches
    ((iterator, n) -> sums), or, with one replica, over the epoch's arrays already cut into batches
    ((columns,) -> sums, each column (n, global batch, ...)): no tf.data pipeline to build per epoch."""

    over_iterator: Callable
    over_arrays: Callable


def make_step(strategy: tf.distribute.Strategy, optimizer, variables: list,
              loss_fn: Callable) -> EpochSteps:
    """n optimiser steps on n global batches -> {name: float64 sum over the n steps}, each batch's logs summed
    over replicas (see EpochSteps).

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

    def log_names(batch_of: Callable, *args) -> list[str]:
        """The names of the step's logs: the loss function's, traced alone (forward only) in a graph that never runs."""
        names: list[str] = []

        def forward(*args):
            names.extend(strategy.run(lambda *batch: loss_fn(*batch)[1], args=batch_of(*args)))

        tf.function(forward, autograph=False).get_concrete_function(*args)
        return names

    # Each loop is one `tf.while_loop` with every step inside it: the step (forward, gradients, update) is built
    # once, where a first step outside the loop (to learn the logs' names) built it twice. The sums start at 0.0
    # (0.0 + x == x in float64). Autograph is off: it converted every function the step calls (the model's
    # losses, the optimizer's update; none has tensor-dependent Python control flow). Together they cut the first
    # call's tracing by about two thirds (BENCHMARKS.md, Sweep overhead).
    def loop(n, step_at: Callable, names: list[str]):
        """n steps (step_at(i) -> logs) -> {name: float64 sum over the steps}, in step order."""
        def body(i, sums):
            logs = step_at(i)
            return i + 1, {k: sums[k] + logs[k] for k in sums}

        zeros = {k: tf.constant(0.0, tf.float64) for k in names}
        return tf.while_loop(lambda i, _: i < n, body, (tf.zeros_like(n), zeros), maximum_iterations=n)[1]

    @tf.function(autograph=False)
    def over_iterator(iterator, n):
        return loop(n, lambda _: one_step(next(iterator)), log_names(next, iterator))

    @tf.function(autograph=False)
    def over_arrays(columns):
        return loop(tf.shape(columns[0])[0], lambda i: one_step(tuple(c[i] for c in columns)),
                    log_names(lambda *cs: tuple(c[0] for c in cs), *columns))

    return EpochSteps(over_iterator, over_arrays)


def batched(columns: tuple[np.ndarray, ...], global_batch: int) -> tf.data.Dataset:
    """The epoch's full global batches of `columns` (arrays of one length, in batch order) as a tf.data pipeline
    that a strategy can distribute (sharded by data across workers)."""
    ds = tf.data.Dataset.from_tensor_slices(columns).batch(global_batch, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def run_epoch(strategy: tf.distribute.Strategy, step: EpochSteps, data: tf.data.Dataset | tuple[np.ndarray, ...],
              global_batch: int | None = None) -> dict[str, float]:
    """Run `step` over every batch of `data`, distributed by `strategy`: a tf.data.Dataset of global batches of
    known number, or the epoch's arrays (`columns`, cut into full batches of `global_batch`); returns each log's
    mean over the steps. With one replica the arrays go to the device as they are (building a tf.data pipeline
    each epoch cost the default VAE on digits ~4 ms of a ~25-ms epoch); with more, through `batched`."""
    if not isinstance(data, tf.data.Dataset):
        n = len(data[0]) // global_batch
        if strategy.num_replicas_in_sync == 1 and n >= 1:
            columns = tuple(tf.constant(c[:n * global_batch].reshape((n, global_batch) + c.shape[1:])) for c in data)
            return {k: float(v) / n for k, v in step.over_arrays(columns).items()}
        data = batched(data, global_batch)
    n = int(data.cardinality())
    if n < 1:
        raise ValueError(f"an epoch needs a known number (>= 1) of batches, not {n}")
    sums = step.over_iterator(iter(strategy.experimental_distribute_dataset(data)), tf.constant(n))
    return {k: float(v) / n for k, v in sums.items()}


def epoch_order(rng: np.random.Generator, n: int, global_batch: int, steps: int = 0) -> np.ndarray:
    """The order of an epoch's examples: one shuffled pass over n; with `steps` (steps_per_epoch) more
    updates than one pass holds, as many reshuffled passes back to back as they need."""
    passes = max(1, -(-steps * global_batch // n)) if steps else 1
    return np.concatenate([rng.permutation(n) for _ in range(passes)])
