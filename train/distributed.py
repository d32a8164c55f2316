"""Multi-worker training (``--strategy multiworker``): one process per host, ``TF_CONFIG`` says who.

Keras 3's ``model.fit`` does not run under ``tf.distribute.MultiWorkerMirroredStrategy``
(keras-team/keras#20585: its symbolic build reduces the first batch with a collective that
rejects it, and its log reduction asks for axis 0 of scalar metrics). So with several workers
the trainer uses :func:`fit_multiworker`, a plain custom loop: each replica computes the summed
loss of its share of the global batch divided by the global batch's size, and the Keras
optimizer all-reduces (sums) the gradients across every replica of every worker, so each step
applies the gradient of the mean loss over the whole global batch, as one big machine would.

Only the chief (task ``chief``, else worker 0) writes artifacts; the other workers train the
same synchronised weights and write to a throw-away folder.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from device.errors import UserError


def cluster_config() -> dict:
    """``TF_CONFIG`` parsed and checked: a cluster with at least one worker and this task in it."""
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        raise UserError("--strategy multiworker needs TF_CONFIG describing the cluster, e.g. "
                        '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                        '"task": {"type": "worker", "index": 0}}')
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        members = cluster[task["type"]]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"TF_CONFIG is not a valid cluster description ({exc}): it needs "
                        '"cluster" {"worker": [host:port, ...]} and "task" {"type", "index"}') \
            from None
    if not 0 <= index < len(members):
        raise UserError(f"TF_CONFIG task index {index} is outside its {task['type']} list "
                        f"({len(members)} entries)")
    return config


def is_chief() -> bool:
    """Whether this process writes the artifacts: the ``chief`` task, else worker 0."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return True
    config = json.loads(text)
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def is_multiworker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def fit_multiworker(model, strategy, train_ds, val_ds, batch_size: int, epochs: int,
                    label_smoothing: float, log=print) -> dict:
    """Train ``model`` (compiled, built under ``strategy``) for ``epochs`` on global batches of
    ``batch_size``; return a Keras-style history dict (loss, accuracy, val_loss, val_accuracy
    per epoch)."""
    import keras
    import tensorflow as tf

    per_example = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing,
                                                       reduction=None)
    optimizer = model.optimizer
    options = tf.data.Options()
    # In-memory tensors have no files to split: every worker reads the (identically shuffled)
    # data and keeps its own share of each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # Full global batches only, so every step divides by the same known size and needs no
    # collective to count examples: one all-reduce for the gradients, one for the step's stats.
    train_ds = train_ds.unbatch().batch(batch_size, drop_remainder=True)
    train_dist = strategy.experimental_distribute_dataset(train_ds.with_options(options))
    val_dist = (strategy.experimental_distribute_dataset(val_ds.with_options(options))
                if val_ds is not None else None)

    def stats(x, y, training: bool):
        """This replica's [summed loss, correct, count] (summed across replicas afterwards)."""
        predictions = tf.cast(model(x, training=training), tf.float32)
        loss_sum = tf.reduce_sum(per_example(y, predictions))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(predictions, -1),
                                                 tf.argmax(y, -1)), tf.float32))
        return tf.stack([loss_sum, correct, tf.cast(tf.shape(x)[0], tf.float32)])

    def replica_train_step(x, y):
        with tf.GradientTape() as tape:
            local = stats(x, y, True)
            scaled = optimizer.scale_loss(local[0] / batch_size)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return local

    @tf.function
    def train_step(x, y):
        return strategy.reduce("SUM", strategy.run(replica_train_step, args=(x, y)), axis=None)

    @tf.function
    def val_step(x, y):
        return strategy.reduce("SUM", strategy.run(lambda a, b: stats(a, b, False), args=(x, y)),
                               axis=None)

    def run_epoch(dataset, step) -> tuple[float, float]:
        totals = np.zeros(3)
        for x, y in dataset:
            totals += step(x, y).numpy()
        return totals[0] / max(totals[2], 1), totals[1] / max(totals[2], 1)

    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    for epoch in range(epochs):
        started = time.time()
        loss, accuracy = run_epoch(train_dist, train_step)
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        line = f"Epoch {epoch + 1}/{epochs} - {time.time() - started:.0f}s - loss: {loss:.4f} - " \
               f"accuracy: {accuracy:.4f}"
        if val_dist is not None:
            val_loss, val_accuracy = run_epoch(val_dist, val_step)
            history.setdefault("val_loss", []).append(val_loss)
            history.setdefault("val_accuracy", []).append(val_accuracy)
            line += f" - val_loss: {val_loss:.4f} - val_accuracy: {val_accuracy:.4f}"
        log(line)
    # What fit() does at the end: swap the EMA weights in when --ema is on.
    optimizer.finalize_variable_values(model.trainable_variables)
    average_statistics(model, strategy)
    log(f"weights digest {weights_digest(model)} (the same on every worker)")
    return history


def average_statistics(model, strategy) -> None:
    """BatchNorm's moving mean and variance are updated by each replica from its own share of
    the batch; averaged over all replicas at the end, every worker holds the same model, and
    the saved statistics reflect all of the data."""
    import tensorflow as tf

    statistics = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]
    if not statistics:
        return

    @tf.function
    def averaged():
        # One packed vector per replica, averaged by the same kind of cross-replica reduce the
        # training step uses.
        packed = strategy.run(lambda: tf.concat(
            [tf.reshape(tf.cast(tf.identity(v.value), tf.float32), [-1]) for v in statistics], 0))
        return strategy.reduce("MEAN", packed, axis=None)

    flat = averaged().numpy()
    offset = 0
    for variable in statistics:
        size = int(np.prod(variable.shape))
        variable.assign(flat[offset:offset + size].reshape(variable.shape).astype(variable.dtype))
        offset += size


def weights_digest(model) -> str:
    """SHA-256 (12 hex) of every weight: equal on all workers when they are in sync."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:12]

