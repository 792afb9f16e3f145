"""IDEC clustering fine-tuning of a trained sparse autoencoder's encoder (Guo et al. 2017, after DEC).

Cluster centres mu_j start from k-means on the code. Each epoch the soft assignments
q_ij = (1 + |z_i - mu_j|^2)^-1 / sum_j' (...) of all training images are computed once and
sharpened into targets p_ij = (q_ij^2 / f_j) / sum_j' (...), f_j = sum_i q_ij; the encoder, decoder
and centres then minimise, per example, recon_i + gamma * KL(p_i || q_i) (plus the SAE's sparsity
penalty). No labels are used: k is the number of clusters the evaluation asks for.

Targets are per-example inputs from the pipeline and every loss term is per example (the sparsity
penalty uses the global-batch mean), so replica splitting does not change the result.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from training.augment import augment
from training.backend import keras, tf
from training.config import ConfigError
from training.distribute import global_batch_mean
from training.evaluate import embed
from training.runner import epoch_order, make_step, run_epoch

KMEANS_RESTARTS = 20


def soft_assign(z, centres):
    """Student-t (one degree of freedom) soft assignment: (B, latent) x (k, latent) -> (B, k)."""
    d2 = tf.reduce_sum(tf.square(z[:, None, :] - centres[None]), axis=-1)
    q = 1.0 / (1.0 + d2)
    return q / tf.reduce_sum(q, axis=1, keepdims=True)


def target_distribution(q: np.ndarray) -> np.ndarray:
    w = q ** 2 / q.sum(axis=0)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def idec(model, data, config, strategy: tf.distribute.Strategy, on_epoch=None) -> list[dict]:
    """Fine-tune `model` (a SparseAutoencoder) in place for config.cluster_epochs epochs; returns per-epoch
    logs, each also passed to `on_epoch(epoch, logs)` as it completes."""
    k = data.num_classes
    if k < 2:
        raise ConfigError("cluster_epochs > 0 needs labelled data (the number of clusters is the number of "
                          "classes); set --cluster-epochs 0 for unlabelled images")
    g, gamma = config.batch_size, config.cluster_weight
    z = embed(model, data.x_train)
    km = KMeans(n_clusters=k, n_init=KMEANS_RESTARTS, random_state=config.seed).fit(z)
    # The kernel sees codes in units of the initial RMS distance to the assigned centre, so its
    # sharpness does not depend on the code's scale (a sigmoid code lives in the unit cube).
    scale = float(np.sqrt(km.inertia_ / len(z))) or 1.0
    with strategy.scope():
        centres = tf.Variable((km.cluster_centers_ / scale).astype(np.float32), name="cluster_centres")
        optimizer = keras.optimizers.Adam(config.learning_rate)
        variables = model.trainable_variables + [centres]
        optimizer.build(variables)

    global_mean = global_batch_mean(g)

    def loss_fn(x, p, clean):
        terms, code = model.terms_and_code(x, clean, batch_mean=global_mean, training=True)
        q = soft_assign(code / scale, centres)
        kl = tf.reduce_sum(p * (tf.math.log(p + 1e-10) - tf.math.log(q + 1e-10)), axis=-1)
        per_example = terms["loss"] + gamma * kl
        loss = tf.reduce_sum(per_example) / g + terms["penalty"] / strategy.num_replicas_in_sync
        return loss, {"loss": tf.reduce_sum(per_example) / g, "cluster_kl": tf.reduce_sum(kl) / g}

    step = make_step(strategy, optimizer, variables, loss_fn)

    logs, labels = [], km.labels_
    for epoch in range(1, config.cluster_epochs + 1):
        q = np.asarray(soft_assign(tf.constant(embed(model, data.x_train) / scale), centres))
        p = target_distribution(q)
        new_labels = q.argmax(axis=1)
        changed = float(np.mean(new_labels != labels))
        labels = new_labels
        rng = np.random.default_rng([config.seed, 7_000_003, epoch])  # a stream apart from pretraining's
        perm = epoch_order(rng, len(p), g, config.steps_per_epoch)
        # Targets from the clean images, inputs augmented as in pretraining (as DEC-DA does).
        images = augment(data.x_train[perm], config.seed, 10_000 + epoch, config.augment_shift, config.augment_rotate)
        columns = (images, p[perm], data.x_train[perm])
        if config.steps_per_epoch:  # exactly that many global batches, cut as pretraining's epochs are
            columns = tuple(c[:config.steps_per_epoch * g] for c in columns)
        means = run_epoch(strategy, step, columns, global_batch=g)
        logs.append({"cluster_epoch": epoch, "labels_changed": changed, **means})
        if on_epoch is not None:
            on_epoch(epoch, logs[-1])
    return logs
