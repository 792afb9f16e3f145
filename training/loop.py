"""The data-parallel training loop: a custom `tf.function` step under tf.distribute.

Not `model.fit`: Keras 3 `fit` fails under MultiWorkerMirroredStrategy with 2+ workers
(keras-team/keras#20585). Stages, once per run:
  1. pick the strategy; load data;
  2. under strategy.scope(): build model and optimizer (everything that makes variables);
  3. restore the latest checkpoint, if any;
  4. per epoch: a seeded shuffle and noise draw, distributed batches of the GLOBAL batch size,
     per-replica losses averaged over the global batch, gradients summed across replicas;
     validation (one compiled call; the costlier figures at a bounded cadence); a checkpoint when
     CHECKPOINT_SECONDS have passed, at the last epoch, and before an interrupt leaves the loop; callbacks;
  5. final evaluation; callbacks.

    result = train(TrainConfig(model="vae", dataset="digits", epochs=5))
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from training import checkpoint as ckpt
from training.augment import augment
from training.callbacks import Callback, TrainContext, sparse_epochs
from training.config import ConfigError, TrainConfig
from training.data import Dataset, load_dataset
from training.backend import keras, tf
from training.distribute import Distribution, describe, global_batch_gather, global_batch_mean, select_strategy
from training import evaluate
from training.models import build_model
from training.runner import batched, epoch_order, make_step, run_epoch

# A checkpoint at most this often, and at the last epoch, at a stop and before an exception (SIGTERM, Ctrl-C,
# Tune's stop) leaves the loop: so an interrupted run loses no epoch, and a killed one at most this much training.
# (One per epoch cost the default VAE on digits ~7 ms of a ~30-ms epoch: BENCHMARKS.md, Throughput.)
CHECKPOINT_SECONDS = 10.0


@dataclass
class TrainResult:
    status: str  # "finished", "stopped at epoch N" or "diverged at epoch N"
    epochs_completed: int
    history: list[dict]
    metrics: dict[str, float]
    model: Any
    dataset: Dataset
    config: TrainConfig
    distribution: dict = field(default_factory=dict)
    cluster_history: list[dict] = field(default_factory=list)  # per-epoch logs of IDEC fine-tuning
    # Per epoch of this process, seconds: "batches" (the epoch's input pipeline), "steps" (training steps),
    # "validation", "checkpoint", "callbacks", and "epoch" (all of them).
    timings: list[dict] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.status.startswith("diverged")


def epoch_steps(config: TrainConfig, n: int) -> int:
    """Updates per epoch: config.steps_per_epoch, else the full global batches of one pass over n images."""
    return config.steps_per_epoch or n // config.batch_size


def epoch_columns(x: np.ndarray, noise_dim: int, global_batch: int, seed: int, epoch: int, shift: float = 0.0,
                  rotate: float = 0.0, clean_targets: bool = False, second_view: bool = False,
                  steps: int = 0) -> tuple[np.ndarray, ...]:
    """The epoch's shuffled (images, noise[, clean images[, second views]]), one row per example, in batch order:
    per-example noise and augmentation, all a pure function of (seed, epoch). With augmentation on,
    `clean_targets` adds the un-augmented images (reconstruction targets) and `second_view` another
    augmentation of each image. `steps` > 0: exactly that many global batches' rows (epoch_order)."""
    rng = np.random.default_rng([seed, epoch])
    perm = epoch_order(rng, len(x), global_batch, steps)
    noise = rng.standard_normal((len(perm), noise_dim)).astype(np.float32)
    images = augment(x[perm], seed, epoch, shift, rotate)
    columns = (images, noise)
    if (clean_targets or second_view) and (shift or rotate):
        columns += (x[perm],)
        if second_view:
            columns += (augment(x[perm], seed, epoch, shift, rotate, view=1),)
    return tuple(c[:steps * global_batch] for c in columns) if steps else columns


def epoch_batches(x: np.ndarray, noise_dim: int, global_batch: int, seed: int, epoch: int,
                  shift: float = 0.0, rotate: float = 0.0, clean_targets: bool = False,
                  second_view: bool = False, steps: int = 0) -> tf.data.Dataset:
    """epoch_columns's arrays in full global batches, as the tf.data pipeline a strategy distributes."""
    return batched(epoch_columns(x, noise_dim, global_batch, seed, epoch, shift, rotate, clean_targets, second_view,
                                 steps), global_batch)


def make_train_step(model, optimizer, strategy: tf.distribute.Strategy, global_batch: int):
    replicas = strategy.num_replicas_in_sync

    global_mean = global_batch_mean(global_batch)
    gather = global_batch_gather()

    def loss_fn(x, noise, target=None, other_view=None):
        terms = model.loss_terms(x, noise, batch_mean=global_mean, training=True, target=target,
                                 other_view=other_view, batch_gather=gather)
        # Per-example terms averaged over the global batch; the batch-level penalty counted once
        # in total after gradients are summed over replicas.
        loss = tf.reduce_sum(terms["loss"]) / global_batch + terms["penalty"] / replicas
        # Per-example terms as their share of the global-batch mean; scalars as a share of their mean.
        return loss, {k: tf.reduce_sum(v) / global_batch if v.shape.rank else v / replicas for k, v in terms.items()}

    return make_step(strategy, optimizer, model.trainable_variables, loss_fn)


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """Adam (AdamW with weight_decay > 0) at a constant or cosine-decayed learning rate, after any warm-up."""
    lr = config.learning_rate
    warmup = config.warmup_epochs * steps_per_epoch
    if config.lr_schedule == "cosine" or warmup:
        # Warm-up rises linearly from 0 to the learning rate; "constant" then never decays (alpha=1).
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else lr, decay_steps=max(1, config.epochs * steps_per_epoch - warmup),
            alpha=0.0 if config.lr_schedule == "cosine" else 1.0,
            warmup_target=lr if warmup else None, warmup_steps=warmup)
    if config.weight_decay > 0:
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(lr)


def train(config: TrainConfig, callbacks: Sequence[Callback] = (), checkpoint_dir: str | None = None,
          distribution: Distribution | tf.distribute.Strategy | None = None, dataset: Dataset | None = None,
          evaluate_at_end: bool = True) -> TrainResult:
    """Train one model; resume from `checkpoint_dir` if it holds a checkpoint of the same config."""
    # 1. strategy and data
    if distribution is None:
        distribution = select_strategy()
    elif isinstance(distribution, tf.distribute.Strategy):
        distribution = describe(distribution)
    strategy = distribution.strategy
    data = dataset if dataset is not None else load_dataset(config.dataset, config.data_dir)
    g = config.batch_size
    if g > len(data.x_train):
        raise ConfigError(f"invalid batch_size={g}: larger than the {len(data.x_train)} training images; "
                          f"lower --batch-size")
    if config.cluster_epochs and not data.labelled:
        raise ConfigError(f"invalid cluster_epochs={config.cluster_epochs}: {data.name} has no labels to tell the "
                          f"number of clusters; use --cluster-epochs 0")
    if g % distribution.num_replicas:
        raise ConfigError(f"invalid batch_size={g}: not divisible by the {distribution.num_replicas} replicas")

    # 2. variables under the strategy's scope
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config, data.image_shape, data.x_train)
        optimizer = make_optimizer(config, steps_per_epoch=epoch_steps(config, len(data.x_train)))
        optimizer.build(model.trainable_variables)

    # 3. resume
    start_epoch, history = 0, []
    if ckpt.exists(checkpoint_dir):
        start_epoch, history = ckpt.restore(checkpoint_dir, model, optimizer, config.to_dict())
        if not (config.lr_schedule == "cosine" or config.warmup_epochs):  # a constant rate (make_optimizer)
            # The config's rate, not the one in the restored optimizer state: the same on a resume; a new one
            # when a sweep's Population Based Training continues another trial's checkpoint (tuning/pbt.py).
            optimizer.learning_rate = config.learning_rate
    # Every worker writes a checkpoint (saving may need all of them); only the chief's is kept.
    write_dir = checkpoint_dir if distribution.is_chief else tempfile.mkdtemp(prefix="aesweep-ckpt-")

    context = TrainContext(config=config, dataset=data, model=model, strategy_name=distribution.name,
                           num_replicas=distribution.num_replicas, num_workers=distribution.num_workers,
                           is_chief=distribution.is_chief, start_epoch=start_epoch,
                           checkpoint_dir=checkpoint_dir, history=history)
    active = [c for c in callbacks if distribution.is_chief or not getattr(c, "chief_only", True)]

    def fire(event: str, *args) -> None:
        for c in active:
            getattr(c, event)(*args, context)

    fire("on_train_begin")
    train_step = make_train_step(model, optimizer, strategy, g)
    status = "finished"
    epoch = start_epoch
    timings = context.timings
    validate = evaluate.Validation(model, data.x_val, config.seed, data.y_val, data.num_classes, compiled=True)
    extras_at = set(sparse_epochs(config.epochs, context.extras_every))  # else only those asked for every epoch
    saved = {"epoch": start_epoch, "at": time.monotonic()}

    def save_checkpoint() -> None:
        if write_dir and saved["epoch"] != epoch:
            for hook in context.before_checkpoint:
                hook()
            ckpt.save(write_dir, model, optimizer, epoch, history, config.to_dict())
            saved.update(epoch=epoch, at=time.monotonic())
            context.checkpoint_epoch = epoch

    context.save_checkpoint = save_checkpoint

    # 4. epochs
    for epoch in range(start_epoch + 1, config.epochs + 1):
        clock = [time.perf_counter()]

        def lap() -> float:
            clock.append(time.perf_counter())
            return clock[-1] - clock[-2]

        columns = epoch_columns(data.x_train, model.noise_dim, g, config.seed, epoch, config.augment_shift,
                                config.augment_rotate, clean_targets=model.reconstructs_clean,
                                second_view=config.uses_second_view, steps=config.steps_per_epoch)
        timing = {"batches": lap()}
        logs = run_epoch(strategy, train_step, columns, global_batch=g)
        timing["steps"] = lap()
        logs["loss"] = logs["loss"] + logs.pop("penalty")
        logs.update(validate(evaluate.EXTRAS if epoch in extras_at else context.every_epoch))
        timing["validation"] = lap()
        if not all(math.isfinite(v) for v in logs.values()):
            status = f"diverged at epoch {epoch}"
            epoch -= 1
            break
        logs["seconds"] = clock[-1] - clock[0]
        history.append(logs)
        if epoch == config.epochs or time.monotonic() - saved["at"] >= CHECKPOINT_SECONDS:
            save_checkpoint()
        timing["checkpoint"] = lap()
        timings.append(timing)
        try:
            fire("on_epoch_end", epoch, logs)
            if context.stop_training:
                save_checkpoint()
        except BaseException as e:  # SIGTERM (tracking.termination), Ctrl-C, Tune's stop: the epoch is kept
            try:
                save_checkpoint()
            except Exception as failed:
                e.add_note(f"(the checkpoint of epoch {epoch} could not be written: {failed})")
            raise
        timing.update(callbacks=lap(), epoch=clock[-1] - clock[0])
        if context.stop_training:
            status = f"stopped at epoch {epoch}"
            break

    # 5. optional clustering fine-tuning of the encoder (IDEC), then final evaluation
    cluster_history: list[dict] = []
    if config.cluster_epochs and not status.startswith("diverged"):
        from training.finetune import idec

        cluster_history = idec(model, data, config, strategy,
                               on_epoch=lambda e, logs: fire("on_cluster_epoch_end", e, logs))
    metrics: dict[str, float] = {}
    if evaluate_at_end and not status.startswith("diverged"):
        metrics = evaluate.evaluate(model, data, config)  # eager, as before: the final figures unchanged
    result = TrainResult(status=status, epochs_completed=epoch, history=history, metrics=metrics, model=model,
                         dataset=data, config=config,
                         distribution={"strategy": distribution.name, "replicas": distribution.num_replicas,
                                       "workers": distribution.num_workers},
                         cluster_history=cluster_history, timings=timings)
    fire("on_train_end", result)
    return result

