"""Choosing the tf.distribute strategy: the one place that knows about devices and workers.

    MultiWorkerMirroredStrategy  when TF_CONFIG names more than one worker (Ray Train sets it)
    MirroredStrategy             when more than one GPU is visible
    default strategy             otherwise
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from training.backend import tf
from training.errors import UserError


def _tf_config_workers() -> int:
    try:
        cfg = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError:
        raise ValueError("TF_CONFIG is not valid JSON; unset it or fix it") from None
    cluster = cfg.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def enable_gpu_memory_growth() -> None:
    """Let fractional-GPU trials share a device (Ray's --gpus-per-trial 0.5 puts two processes on one GPU):
    each allocates memory as it needs it, not all at once, which would leave the second process "all
    CUDA-capable devices are busy" (ray#10677). AESWEEP_GPU_MEMORY_MB=N caps each process at N MiB instead."""
    limit = os.environ.get("AESWEEP_GPU_MEMORY_MB")
    if limit is not None and not limit.isdigit():
        raise UserError(f"AESWEEP_GPU_MEMORY_MB={limit!r}: give a whole number of MiB")
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            if limit:
                tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(int(limit))])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: TF_FORCE_GPU_ALLOW_GROWTH (set at import) applied growth
            pass


@dataclass(frozen=True)
class Distribution:
    strategy: tf.distribute.Strategy
    name: str
    num_replicas: int
    num_workers: int
    is_chief: bool


def select_strategy() -> Distribution:
    """Pick the strategy once, from TF_CONFIG and the visible devices."""
    workers = _tf_config_workers()
    if workers > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return describe(strategy)
    enable_gpu_memory_growth()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return describe(tf.distribute.MirroredStrategy())
    return describe(tf.distribute.get_strategy())


def describe(strategy: tf.distribute.Strategy) -> Distribution:
    resolver = getattr(strategy, "cluster_resolver", None)
    num_workers, is_chief = 1, True
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver is not None:
        spec = resolver.cluster_spec().as_dict()
        num_workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
        task_type, task_id = resolver.task_type, resolver.task_id
        # The chief is task "chief", or worker 0 when the cluster has no chief task.
        is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in spec)
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # the class is CollectiveAllReduceStrategy
    elif name == "_DefaultDistributionStrategy":
        name = "DefaultStrategy"
    return Distribution(strategy, name, int(strategy.num_replicas_in_sync), num_workers, is_chief)


def global_batch_mean(global_batch: int):
    """A per-replica function t (B_replica, ...) -> mean over the GLOBAL batch (...): batch-level terms
    (the sparsity penalty, the code spread) then match single-device training, and all_reduce's
    gradient (an all_reduce itself) routes its gradient to every replica."""
    def mean(t):
        ctx = tf.distribute.get_replica_context()
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(t, axis=0)) / global_batch

    return mean


def global_batch_gather():
    """A per-replica function t (B_replica, ...) -> the global batch's t (B_global, ...), replicas in
    order: terms that compare each example with every other (contrastive ones) then match
    single-device training; all_gather's gradient goes back to the replica that owns each row."""
    def gather(t):
        return tf.distribute.get_replica_context().all_gather(t, axis=0)

    return gather
