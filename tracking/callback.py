"""MlflowCallback: what one training records in its (already active) MLflow run."""
from __future__ import annotations

import logging
import math
import time
import warnings

import mlflow
import numpy as np
from mlflow.entities import Metric

from tracking.store import store_gone
from tracking.termination import check_terminated
from training.callbacks import Callback, sparse_epochs
from training.config import applicable_params

log = logging.getLogger("aesweep.tracking")
HEADLINE_SECTION = "sweep"
# Epochs' metrics go to the store in one request at most every FLUSH_SECONDS (and at the first epoch, image
# epochs, checkpoints and the end), each epoch with its own step and time: a trial of many short epochs sent a
# request per epoch (539 of them, 6.6 s of a 30-s trial: BENCHMARKS.md, Sweep overhead).
FLUSH_SECONDS = 2.0


def image_schedule(epochs: int, every: int | None) -> list[int]:
    """The epochs that log images: every `every` epochs (default 1), thinned to a multiple of `every` when that
    would make more than MAX_SPARSE_STEPS (10) steps, plus the last epoch: at most that many image steps however
    long the run (training.callbacks.sparse_epochs; the loop's costlier validation figures come at the same
    epochs). A run stopped early also logs its last epoch's images (`on_train_end`), within the bound."""
    return sparse_epochs(epochs, every)


class MlflowCallback(Callback):
    """Params, tags and lineage at the start; metrics and images by epoch; final metrics, figures
    and the model at the end. Image logging failures only warn: they never stop training."""

    def __init__(self, image_every: int | None = None, log_model: bool = True,
                 param_keys: tuple[str, ...] | None = None, headline: str | None = None):
        """param_keys: the config fields this run records (a sweep's trial: its swept ones; the sweep's
        constants are on its parent); None: every field that applies to the model.
        headline: the metric a sweep ranks by, logged each epoch also as `sweep/<metric>`: the MLflow UI's
        chart view orders its cards by name with "/"-sections first, so the sweep's own metric opens it."""
        self.headline = headline
        self.image_every = image_every
        self.param_keys = param_keys
        self.log_model = log_model
        self.model_uris: dict[str, str] = {}
        self.result = None
        self.logged_through = 0  # epochs this run already holds (a retried trial may replay one)
        self.pending: list = []  # epochs' metrics not yet sent (mlflow.entities.Metric)
        self.sent_at = 0.0
        self.unreachable: str | None = None  # set when a send found the store gone

    def on_train_begin(self, context):
        c, d = context.config, context.dataset
        context.extras_every = self.image_every  # the costlier validation figures with the images, same steps
        context.before_checkpoint.append(self.flush)
        run = mlflow.active_run()
        self.run_id, self.sent_at = run.info.run_id, time.monotonic()
        if context.start_epoch or run.data.metrics:
            history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
            self.logged_through = max((m.step for m in history), default=0)
        from tracking.params import log_params

        params = applicable_params(c)
        log_params({k: v for k, v in params.items() if self.param_keys is None or k in self.param_keys},
                   run.info.run_id)
        mlflow.set_tags({"model_kind": c.model, "dataset": c.dataset, "dataset_digest": d.digest,
                         "strategy": context.strategy_name, "replicas": context.num_replicas,
                         "workers": context.num_workers, "recon_likelihood": c.resolved_recon_loss()})
        if context.start_epoch == 0:
            try:
                ds = mlflow.data.from_numpy(d.x_train.reshape(len(d.x_train), -1), targets=d.y_train,
                                            name=c.dataset, digest=d.digest[:32])
                mlflow.log_input(ds, context="training")
            except Exception as e:  # lineage is a record, not a reason to stop
                warnings.warn(f"could not log dataset lineage: {e}")

    def on_epoch_end(self, epoch, logs, context):
        if epoch > self.logged_through:  # else logged before the process that made the last checkpoint died
            values = {k: float(v) for k, v in logs.items() if k != "seconds"} | \
                {"epoch_seconds": float(logs.get("seconds", 0.0))} | \
                ({f"{HEADLINE_SECTION}/{self.headline}": float(logs[self.headline])} if self.headline in logs else {})
            now = int(time.time() * 1000)
            self.pending += [Metric(k, v, now, epoch) for k, v in values.items()]
            images = epoch in image_schedule(context.config.epochs, self.image_every)
            if (images or epoch == context.start_epoch + 1 or epoch <= context.checkpoint_epoch
                    or epoch in context.decision_epochs or time.monotonic() - self.sent_at >= FLUSH_SECONDS):
                self.flush()
            if images:
                self._log_images(context, epoch)
        # A SIGTERM stops training here, between epochs, once this epoch is logged (the loop then checkpoints it):
        # a resumed run continues with the next one and no epoch is lost.
        try:
            check_terminated()
        except BaseException as e:
            try:
                self.flush()
            except Exception as failed:  # still a SIGTERM: the run ends KILLED, not FAILED
                e.add_note(f"(the last epochs' metrics could not be logged: {failed})")
            raise

    def flush(self) -> None:
        """Send the epochs' metrics held back, in one request (MLflow splits it past its batch limits). If the
        store refuses them they stay held, and the error goes on: no checkpoint is written past them."""
        if self.pending and self.unreachable is not None:  # asked again on the way out: do not wait again
            raise RuntimeError(f"the tracking store stopped answering: {self.unreachable}")
        if self.pending:
            pending, self.pending = self.pending, []
            try:
                mlflow.MlflowClient().log_batch(self.run_id, metrics=pending, synchronous=True)
            except BaseException as e:
                self.pending[:0] = pending
                if store_gone(e):
                    self.unreachable = type(e).__name__
                raise
        self.sent_at = time.monotonic()

    def on_cluster_epoch_end(self, epoch, logs, context):
        # Fine-tuning has its own step axis (its epochs), apart from training's.
        mlflow.log_metrics({f"idec_{k}": float(v) for k, v in logs.items() if k != "cluster_epoch"}, step=epoch)

    def _log_images(self, context, step):
        from training.images import model_images

        try:
            images = model_images(context.model, context.dataset, context.config)
        except Exception as e:
            warnings.warn(f"could not draw images at epoch {step}: {e}")
            return
        for key, image in images.items():
            try:
                # Synchronous: MLflow's asynchronous image logging (its default) starts a queue whose thread polls
                # with a 1-s timeout, and ending the run waits for that poll: ~1 s at every trial's end, against
                # ~10 ms to write the image here (BENCHMARKS.md, Sweep overhead). A failed write is caught below.
                mlflow.log_image(np.ascontiguousarray(image), key=key, step=step, synchronous=True)
            except Exception as e:
                warnings.warn(f"could not log image {key!r} at epoch {step}: {e}")

    def on_train_end(self, result, context):
        self.flush()
        self.result = result
        mlflow.set_tag("status_detail", result.status)
        if result.diverged:
            return
        last = result.epochs_completed
        # Final metrics at the last epoch's step. A name already in the epoch history (val_loss) is logged
        # again only if fine-tuning after the last epoch (IDEC) changed it: its latest value is then the
        # final model's, as Tune's last report has it.
        final = result.history[-1] if result.history else {}
        changed = {k: float(v) for k, v in result.metrics.items() if k not in final or final[k] != v}
        if self.headline in changed and self.headline in final:
            changed[f"{HEADLINE_SECTION}/{self.headline}"] = changed[self.headline]
        mlflow.log_metrics(changed, step=last)
        if last and last not in image_schedule(context.config.epochs, self.image_every):
            self._log_images(context, last)  # a run stopped early still ends with its final images
        from training.images import loss_curves

        try:
            import matplotlib.pyplot as plt

            if result.history:
                fig = loss_curves(result.history)
                mlflow.log_figure(fig, "figures/loss_curves.png")
                plt.close(fig)
        except Exception as e:
            warnings.warn(f"could not log the loss-curve figure: {e}")
        if self.log_model:
            from tracking.model import link_metrics, log_models, model_name

            self.model_uris = log_models(result.model, result.dataset.image_shape, model_name(context.config))
            mlflow.set_tag("pyfunc_model_uri", self.model_uris["pyfunc"])
            # The model's figures: the last epoch's validation metrics and the final (test) ones.
            linked = {k: float(v) for k, v in final.items() if k.startswith("val_")} | \
                {k: float(v) for k, v in result.metrics.items()}
            link_metrics(self.model_uris, {k: v for k, v in linked.items() if math.isfinite(v)}, last)
