"""Training, with results cached on disk.

:func:`train` returns a :class:`TrainedRun`: from the cache when an identical run (same settings,
same data, same library versions) was trained before, otherwise by training one and caching it. A
cross-process lock makes concurrent callers with the same settings train once.

The loop itself is ours rather than ``model.fit``: each call into TensorFlow runs many optimiser
steps inside one compiled graph, taking batches straight from the uint8 images held as a tensor, so
the cost per step is the arithmetic and not Python or ``tf.data`` overhead. It runs inside a
``tf.distribute`` strategy: each replica takes its slice of every global batch, and Keras' optimiser
sums the replicas' gradients.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow import keras

from mnist_model import artifacts, augment, config
from mnist_model.data import MnistData, load_mnist
from mnist_model.evaluation import test_metrics
from mnist_model.model import build_model
from mnist_model.records import EpochRecord, Progress, TrainingStopped
from mnist_model.settings import TrainingSettings

log = logging.getLogger(__name__)

# Progress is reported this many times per epoch (and the stop flag checked as often).
_CHUNKS_PER_EPOCH = 10
# Validation batches: large, since inference needs no gradients.
_EVAL_BATCH = 2000


ProgressCallback = Callable[[Progress], None]


@dataclass
class TrainedRun:
    """A trained model with what produced it and how it did."""

    model: keras.Model
    settings: TrainingSettings
    history: list[EpochRecord]
    data_fingerprint: str
    key: str
    test_loss: float
    test_accuracy: float
    created: str
    train_seconds: float
    from_cache: bool
    path: Path | None = None  # the cache entry, or None if it could not be saved
    notes: list[str] = field(default_factory=list)  # warnings a user should see

    @property
    def model_file(self) -> Path | None:
        return self.path / artifacts.MODEL_FILE if self.path else None


def train(
    settings: TrainingSettings | None = None,
    *,
    data: MnistData | None = None,
    artifacts_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    use_cache: bool = True,
) -> TrainedRun:
    """Return a trained run for ``settings``, from the cache when possible.

    data: defaults to :func:`load_mnist`. artifacts_dir: defaults to :func:`config.artifacts_dir`.
    progress: called with :class:`Progress` snapshots. stop: set it to stop training cleanly;
    :class:`TrainingStopped` is raised and nothing is cached.
    """
    settings = settings or TrainingSettings()
    data = data if data is not None else load_mnist()
    root = Path(artifacts_dir) if artifacts_dir is not None else config.artifacts_dir()
    key = artifacts.run_key(settings, data.fingerprint)
    notes: list[str] = []
    if not use_cache:
        return _train_and_save(settings, data, root, key, progress, stop, notes, save=False)
    with artifacts.run_lock(root, key):
        cached = artifacts.load_run(root, key)
        if cached is not None:
            model, record = cached
            run = TrainedRun(
                model=model,
                settings=record.settings,
                history=[EpochRecord(**epoch) for epoch in record.history],
                data_fingerprint=data.fingerprint,
                key=key,
                test_loss=record.test_loss,
                test_accuracy=record.test_accuracy,
                created=record.created,
                train_seconds=record.train_seconds,
                from_cache=True,
                path=record.path,
            )
            _report(progress, "done", settings.epochs, settings, 1.0, 0.0, run.history)
            return run
        if (artifacts.runs_dir(root) / key).exists():
            notes.append(f"The cached run {key} was incomplete or failed its checks; it was retrained.")
        return _train_and_save(settings, data, root, key, progress, stop, notes, save=True)


def _train_and_save(settings, data, root, key, progress, stop, notes, *, save: bool) -> TrainedRun:
    # One line per real training run, so that a server's log shows how often it trained.
    log.info("training %s (%s)", key, settings.describe())
    started = time.perf_counter()
    model, history = fit(settings, data, progress=progress, stop=stop)
    train_seconds = time.perf_counter() - started
    _report(progress, "evaluating", settings.epochs, settings, 1.0, train_seconds, history)
    test_loss, test_accuracy = test_metrics(model, data.test_images, data.test_labels)
    run = TrainedRun(
        model=model,
        settings=settings,
        history=history,
        data_fingerprint=data.fingerprint,
        key=key,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        train_seconds=train_seconds,
        from_cache=False,
        notes=notes,
    )
    if save:
        _report(progress, "saving", settings.epochs, settings, 1.0, train_seconds, history)
        manifest = {
            "settings": settings.to_dict(),
            "history": [dataclasses.asdict(epoch) for epoch in history],
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "created": run.created,
            "train_seconds": train_seconds,
            "data_fingerprint": data.fingerprint,
        }
        try:
            run.path = artifacts.save_run(root, key, model, manifest)
        except OSError as error:
            message = f"The trained model could not be saved to {root} ({error}); it is kept in memory only."
            log.warning(message)
            notes.append(message)
    _report(progress, "done", settings.epochs, settings, 1.0, time.perf_counter() - started, history)
    return run


def fit(
    settings: TrainingSettings,
    data: MnistData,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> tuple[keras.Model, list[EpochRecord]]:
    """Train a new model on ``data`` without touching the cache; returns the model and its history."""
    if settings.validation_size >= len(data.train_images):
        raise ValueError(
            f"validation_size is {settings.validation_size} but there are only "
            f"{len(data.train_images)} training images; hold out fewer."
        )
    strategy = make_strategy(settings.strategy)
    replicas = strategy.num_replicas_in_sync
    if settings.batch_size % replicas:
        raise ValueError(f"batch_size {settings.batch_size} must be a multiple of the {replicas} devices in use.")
    keras.utils.set_random_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(data.train_images))
    val_index, train_index = order[: settings.validation_size], order[settings.validation_size :]
    num_train = len(train_index)
    batch_size = min(settings.batch_size, num_train - num_train % replicas)
    steps_per_epoch = num_train // batch_size
    per_replica = batch_size // replicas

    _report(progress, "loading", 1, settings, 0.0, 0.0, ())
    started = time.perf_counter()
    train_images = tf.constant(data.train_images[train_index])
    train_labels = tf.constant(data.train_labels[train_index].astype(np.int32))
    val_images = data.train_images[val_index]
    val_labels = data.train_labels[val_index]

    with strategy.scope():
        model = build_model(settings)
        schedule = settings.learning_rate
        if settings.cosine_decay:
            schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, settings.epochs * steps_per_epoch)
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        optimizer.build(model.trainable_variables)

    def replica_step(batch_index):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        index = batch_index[replica * per_replica : (replica + 1) * per_replica]
        images = tf.cast(tf.gather(train_images, index), tf.float32) / 255.0
        labels = tf.gather(train_labels, index)
        if settings.augment:
            images = augment.random_distortions(images)
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            losses = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            loss = tf.reduce_sum(losses) / batch_size
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        predicted = tf.argmax(probabilities, axis=1, output_type=tf.int32)
        return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(predicted == labels, tf.float32))

    @tf.function
    def run_steps(permutation, first_step, last_step):
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0.0)
        for step in tf.range(first_step, last_step):
            batch_index = permutation[step * batch_size : (step + 1) * batch_size]
            losses, hits = strategy.run(replica_step, args=(batch_index,))
            loss_sum += strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
            correct += strategy.reduce(tf.distribute.ReduceOp.SUM, hits, axis=None)
        return loss_sum, correct

    chunk_bounds = np.linspace(0, steps_per_epoch, min(_CHUNKS_PER_EPOCH, steps_per_epoch) + 1).astype(int)
    history: list[EpochRecord] = []
    for epoch in range(1, settings.epochs + 1):
        epoch_started = time.perf_counter()
        permutation = tf.constant(rng.permutation(num_train).astype(np.int32))
        loss_sum = correct = 0.0
        for first, last in zip(chunk_bounds[:-1], chunk_bounds[1:], strict=True):
            if stop is not None and stop.is_set():
                raise TrainingStopped(f"training stopped during epoch {epoch} of {settings.epochs}")
            chunk_loss, chunk_correct = run_steps(permutation, tf.constant(first), tf.constant(last))
            loss_sum += float(chunk_loss)
            correct += float(chunk_correct)
            fraction = (epoch - 1 + last / steps_per_epoch) / settings.epochs
            _report(progress, "training", epoch, settings, fraction, time.perf_counter() - started, history)
        val_loss, val_accuracy = test_metrics(model, val_images, val_labels)
        seen = steps_per_epoch * batch_size
        history.append(
            EpochRecord(
                epoch=epoch,
                loss=loss_sum / seen,
                accuracy=correct / seen,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                seconds=time.perf_counter() - epoch_started,
            )
        )
        _report(progress, "training", epoch, settings, epoch / settings.epochs, time.perf_counter() - started, history)
        if not math.isfinite(history[-1].loss):
            raise FloatingPointError(
                f"the training loss became {history[-1].loss} in epoch {epoch}; try a lower learning rate."
            )
    return model, history


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for a settings value.

    "default" is TensorFlow's default strategy (one device). "mirrored" replicates over every
    visible GPU, or over the logical CPU devices when there is no GPU (so it can be tested on CPU by
    splitting the CPU into logical devices).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def _report(progress, phase, epoch, settings, fraction, elapsed, history) -> None:
    if progress is not None:
        progress(Progress(phase, epoch, settings.epochs, fraction, elapsed, tuple(history)))
