"""The hook through which tracking and tuning plug into the training loop.

Subclass `Callback` and pass instances to `train(config, callbacks=[...])`. The loop
fires events only on the chief worker unless a callback sets `chief_only = False`
(Ray Train requires every worker to report). Setting `context.stop_training = True`
in `on_epoch_end` stops training after that epoch.

The costlier validation figures (training.evaluate.EXTRAS: the K=50 importance-weighted estimate, active
units, k-means) come at a bounded cadence, `sparse_epochs(epochs, context.extras_every)`, the epochs that
also log images; a callback that reads one of them at every epoch (a sweep's metric) names it in
`context.every_epoch` in `on_train_begin`. Checkpoints are written at a bounded cadence too; a callback
that hands the checkpoint on (Tune's report) calls `context.save_checkpoint()` first.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_SPARSE_STEPS = 10


def sparse_epochs(epochs: int, every: int | None) -> list[int]:
    """Every `every` epochs (default 1), thinned to a multiple of `every` when that would make more than
    MAX_SPARSE_STEPS epochs, plus the last epoch: at most MAX_SPARSE_STEPS epochs however long the run. The
    epochs of images (tracking.callback) and of the costlier validation figures (training.loop)."""
    every = max(1, every or 1)
    interval = every * math.ceil(math.ceil(epochs / MAX_SPARSE_STEPS) / every)
    return sorted(set(range(interval, epochs + 1, interval)) | {epochs})


@dataclass
class TrainContext:
    """What callbacks may read: the run's config, data, model and distribution facts."""

    config: Any
    dataset: Any
    model: Any
    strategy_name: str
    num_replicas: int
    num_workers: int
    is_chief: bool
    start_epoch: int  # epochs already done before this process started (from a checkpoint)
    checkpoint_dir: str | None = None
    history: list[dict] = field(default_factory=list)
    stop_training: bool = False
    # Set in on_train_begin: the cadence of the costlier validation figures (see sparse_epochs), and those of
    # them (training.evaluate.EXTRAS) wanted every epoch.
    extras_every: int | None = None
    every_epoch: set[str] = field(default_factory=set)
    # Writes the epoch just trained to checkpoint_dir unless it is there already (the loop sets it).
    save_checkpoint: Callable[[], None] = lambda: None
    # Called before each checkpoint is written: a callback that holds records back (tracking sends epochs'
    # metrics in batches) sends them here, and again at the end of an epoch the loop checkpointed before its
    # callbacks ran (`checkpoint_epoch`), so a checkpoint never holds an epoch whose record could be lost.
    before_checkpoint: list[Callable[[], None]] = field(default_factory=list)
    checkpoint_epoch: int = 0  # the last epoch written to checkpoint_dir
    # Epochs after which something outside may stop the training (a Tune scheduler's rungs, named by the callback
    # that reports to it in on_train_begin): records held back are sent at their end, before that report.
    decision_epochs: set[int] = field(default_factory=set)
    # Per epoch of this process, seconds by part (TrainResult.timings); in on_epoch_end the last entry is the
    # epoch's so far: "batches", "steps", "validation", "checkpoint".
    timings: list[dict] = field(default_factory=list)


class Callback:
    chief_only = True

    def on_train_begin(self, context: TrainContext) -> None:
        """Before the first epoch of this process (after any checkpoint was restored)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float], context: TrainContext) -> None:
        """After epoch `epoch` (1-based) was trained and validated; checkpointed when due (else
        `context.save_checkpoint()` writes it)."""

    def on_cluster_epoch_end(self, epoch: int, logs: dict[str, float], context: TrainContext) -> None:
        """After epoch `epoch` (1-based) of clustering fine-tuning (cluster_epochs > 0), which follows training."""

    def on_train_end(self, result: Any, context: TrainContext) -> None:
        """After final evaluation, or after divergence; `result` is the TrainResult."""


class ProgressPrinter(Callback):
    """One line per epoch: epoch, train and validation losses, the validation metric, seconds."""

    def __init__(self, print_fn=print):
        self.print = print_fn
        self._t0 = time.time()

    def on_train_begin(self, context):
        c = context
        resumed = f", resuming after epoch {c.start_epoch}" if c.start_epoch else ""
        self.print(f"[aesweep] {c.config.model} on {c.dataset.summary()}; {c.strategy_name} with "
                   f"{c.num_replicas} replica(s){resumed}")

    def on_epoch_end(self, epoch, logs, context):
        keys = [k for k in ("loss", "val_loss", "val_elbo", "val_recon_mse") if k in logs]
        parts = " ".join(f"{k} {logs[k]:.4f}" for k in keys)
        self.print(f"epoch {epoch:>3}/{context.config.epochs}  {parts}  {logs.get('seconds', 0.0):.1f}s")

    def on_cluster_epoch_end(self, epoch, logs, context):
        self.print(f"cluster epoch {epoch:>3}/{context.config.cluster_epochs}  cluster_kl {logs['cluster_kl']:.4f}  "
                   f"labels_changed {logs['labels_changed']:.4f}")

    def on_train_end(self, result, context):
        shown = {k: v for k, v in result.metrics.items() if isinstance(v, float)}
        self.print(f"[aesweep] {result.status} after {time.time() - self._t0:.0f}s: "
                   + ", ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items())))
