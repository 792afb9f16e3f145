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

from training.backend import tf


def make_step(strategy: tf.distribute.Strategy, optimizer, variables: list,
              loss_fn: Callable) -> Callable:
    """A `tf.function` that takes one distributed batch, applies one optimiser step to `variables`
    and returns the batch's logs {name: scalar}, summed over replicas."""
    def replica_step(*batch):
        with tf.GradientTape() as tape:
            loss, logs = loss_fn(*batch)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return logs

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    return step


def run_epoch(strategy: tf.distribute.Strategy, step: Callable, dataset: tf.data.Dataset) -> dict[str, float]:
    """Run `step` on every batch of `dataset` (global batches), distributed by `strategy`;
    returns each log's mean over the steps."""
    sums: dict[str, float] = {}
    steps = 0
    for batch in strategy.experimental_distribute_dataset(dataset):
        for k, v in step(batch).items():
            sums[k] = sums.get(k, 0.0) + float(v)
        steps += 1
    return {k: v / steps for k, v in sums.items()}
