"""Training, with results cached on disk.

:func:`train` returns a :class:`TrainedRun`: from the cache when an identical run (same settings,
same data, same library versions) was trained before, otherwise by training one and caching it. A
cross-process lock makes concurrent callers with the same settings train once.

:func:`fit` is one call of ``model.fit`` for the whole run, with ``steps_per_execution``, so each
call into TensorFlow runs many optimiser steps inside one compiled graph. ``tf.data`` carries only
shuffled batches of image indices (and their labels); a wrapper used only for ``fit`` gathers the
uint8 images from one tensor inside the training graph, scales them and augments them in front of
the network. A callback reports progress after every call, about ten times an epoch, and stops the
run when asked. It all runs inside a ``tf.distribute`` strategy: each replica takes its slice of
every global batch, and Keras' optimiser sums the replicas' gradients.
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

from mnist_model import artifacts, augment, calibration, config
from mnist_model.data import MnistData, load_mnist
from mnist_model.evaluation import test_metrics
from mnist_model.model import build_model
from mnist_model.records import EpochRecord, Progress, TrainingStopped
from mnist_model.settings import TrainingSettings

log = logging.getLogger(__name__)

# Progress is reported at least this many times per epoch (and the stop flag checked as often), with
# at most _MAX_STEPS_PER_EXECUTION optimiser steps per call into TensorFlow.
_REPORTS_PER_EPOCH = 10
_MAX_STEPS_PER_EXECUTION = 100
# Validation batches: large, since inference needs no gradients.
_EVAL_BATCH = 2000


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, kw_only=True)
class TrainedRun(artifacts.RunRecord):
    """A run's record (what produced it, how it did, where it is cached) with its trained model."""

    model: keras.Model
    from_cache: bool
    notes: list[str] = field(default_factory=list)  # warnings a user should see

    @classmethod
    def of(cls, record: artifacts.RunRecord, model: keras.Model, *, from_cache: bool) -> TrainedRun:
        fields = {column.name: getattr(record, column.name) for column in dataclasses.fields(record)}
        return cls(**fields, model=model, from_cache=from_cache)


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
            run = TrainedRun.of(record, model, from_cache=True)
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
    held_out, _ = validation_split(settings, len(data.train_images))
    temperature = calibrate(model, data.train_images[held_out], data.train_labels[held_out])
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
        temperature=temperature,
        from_cache=False,
        notes=notes,
    )
    if save:
        _report(progress, "saving", settings.epochs, settings, 1.0, train_seconds, history)
        try:
            run = dataclasses.replace(run, path=artifacts.save_run(root, key, model, run.manifest()))
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
    val_index, train_index = validation_split(settings, len(data.train_images))
    num_train = len(train_index)
    batch_size = min(settings.batch_size, num_train - num_train % replicas)
    steps_per_epoch = num_train // batch_size

    _report(progress, "loading", 1, settings, 0.0, 0.0, ())
    reporter = _ProgressReporter(settings, steps_per_epoch, progress, stop)
    with strategy.scope():
        model = build_model(settings)
        schedule = settings.learning_rate
        if settings.cosine_decay:
            schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, settings.epochs * steps_per_epoch)
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
        loss_and_metrics = {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
        # The model returned is compiled with the optimizer that trained it, as a saved model was before.
        model.compile(optimizer=optimizer, **loss_and_metrics)
        trainer = _fit_wrapper(model, settings, data.train_images)
        steps_per_execution = max(1, min(_MAX_STEPS_PER_EXECUTION, steps_per_epoch // _REPORTS_PER_EPOCH))
        trainer.compile(optimizer=optimizer, steps_per_execution=steps_per_execution, **loss_and_metrics)
    labels = data.train_labels.astype(np.int32)
    batches = _EpochBatches(train_index, labels, batch_size, steps_per_epoch, settings.seed)
    validation = tf.data.Dataset.from_tensor_slices((val_index.astype(np.int32), labels[val_index]))
    trainer.fit(
        batches.dataset,
        epochs=settings.epochs,
        validation_data=validation.batch(_EVAL_BATCH),
        shuffle=False,  # the batches come shuffled
        callbacks=[batches, reporter],
        verbose=0,
    )
    return model, reporter.history


def validation_split(settings: TrainingSettings, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the held-out and the training images among ``count``, chosen with the seed."""
    order = np.random.default_rng(settings.seed).permutation(count)
    return order[: settings.validation_size], order[settings.validation_size :]


def calibrate(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Fit a temperature on held-out uint8 ``images`` (n, 28, 28) and fold it into the last layer.

    The last layer is Dense with softmax, so its logits are the features before it times its kernel
    plus its bias; dividing both by T divides the logits by T. Returns T (see :mod:`calibration`).
    """
    *body, last = model.layers
    kernel, bias = (np.asarray(weight, np.float64) for weight in last.get_weights())

    def features(batch: np.ndarray) -> np.ndarray:
        for layer in body:
            batch = layer(batch, training=False)
        return np.asarray(batch, np.float64)

    scaled = images.astype(np.float32) / 255.0
    logits = np.concatenate(
        [features(scaled[start : start + _EVAL_BATCH]) @ kernel + bias for start in range(0, len(scaled), _EVAL_BATCH)]
    )
    temperature = calibration.fit_temperature(logits, labels)
    last.set_weights([(kernel / temperature).astype(np.float32), (bias / temperature).astype(np.float32)])
    return temperature


def _fit_wrapper(model: keras.Model, settings: TrainingSettings, images: np.ndarray) -> keras.Model:
    """``model`` behind a lookup of ``images`` by index, their scaling (and augmentation); for ``fit`` only.

    The wrapper takes int32 indices (n,) into ``images``, uint8 (count, 28, 28); it is never saved.
    """
    layers = [keras.Input(shape=(), dtype="int32"), _ImageLookup(images), keras.layers.Rescaling(1 / 255)]
    if settings.augment:
        layers.append(augment.RandomDistortions(seed=settings.seed))
    return keras.Sequential([*layers, model], name=f"{model.name}_training")


class _ImageLookup(keras.layers.Layer):
    """Indices (n,) -> the images they name, uint8 (n, 28, 28), gathered from one tensor in the graph.

    The images stay in one place for the whole run, so a training step costs one gather and the
    input pipeline moves only indices.
    """

    def __init__(self, images: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self._images = tf.constant(images)

    def call(self, indices):
        return tf.gather(self._images, indices)

    def compute_output_shape(self, input_shape):
        return (*input_shape, *self._images.shape[1:])


class _EpochBatches(keras.callbacks.Callback):
    """The training batches, shuffled anew for every epoch: a callback that also holds the dataset.

    ``dataset`` yields one epoch of image indices into the training images, int32 (batch_size,), with
    their labels, int32 (batch_size,). Keras iterates it afresh each epoch, after this callback has
    set the epoch number, and each pass is a shuffle of ``train_index`` drawn from ``(seed, epoch)``
    alone: the order is the same on one device and under a MirroredStrategy (tf.data's own
    reshuffling is not).
    """

    def __init__(self, train_index: np.ndarray, labels: np.ndarray, batch_size: int, steps_per_epoch: int, seed: int):
        super().__init__()
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        train_index = tf.constant(train_index.astype(np.int32))
        labels = tf.constant(labels)

        def one_epoch(_):
            order = tf.random.experimental.stateless_shuffle(
                train_index, seed=tf.stack([tf.constant(seed, tf.int64), self._epoch.read_value()])
            )
            return tf.data.Dataset.from_tensor_slices(
                tf.reshape(order[: steps_per_epoch * batch_size], (steps_per_epoch, batch_size))
            )

        self.dataset = (
            tf.data.Dataset.range(1)
            .flat_map(one_epoch)
            .map(lambda index: (index, tf.gather(labels, index)))
            .apply(tf.data.experimental.assert_cardinality(steps_per_epoch))
            .prefetch(tf.data.AUTOTUNE)
        )

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch.assign(epoch)


class _ProgressReporter(keras.callbacks.Callback):
    """Reports progress after every call into TensorFlow, records each epoch, and stops on request."""

    def __init__(self, settings, steps_per_epoch, progress, stop) -> None:
        super().__init__()
        self.settings, self.steps_per_epoch, self.progress, self.stop = settings, steps_per_epoch, progress, stop
        self.history: list[EpochRecord] = []
        self.started = self.epoch_started = time.perf_counter()
        self.epoch = 1

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch, self.epoch_started = epoch + 1, time.perf_counter()
        self._check_stop()

    def on_train_batch_end(self, batch, logs=None) -> None:
        # ``batch`` is the last step that the call into TensorFlow ran (0-based, within the epoch).
        steps_done = min(batch + 1, self.steps_per_epoch)
        fraction = (self.epoch - 1 + steps_done / self.steps_per_epoch) / self.settings.epochs
        self._report(fraction)
        self._check_stop()

    def on_epoch_end(self, epoch, logs=None) -> None:
        record = EpochRecord(
            epoch=self.epoch,
            loss=float(logs["loss"]),
            accuracy=float(logs["accuracy"]),
            val_loss=float(logs["val_loss"]),
            val_accuracy=float(logs["val_accuracy"]),
            seconds=time.perf_counter() - self.epoch_started,
        )
        self.history.append(record)
        self._report(self.epoch / self.settings.epochs)
        if not math.isfinite(record.loss):
            raise FloatingPointError(
                f"the training loss became {record.loss} in epoch {self.epoch}; try a lower learning rate."
            )

    def _report(self, fraction: float) -> None:
        _report(
            self.progress,
            "training",
            self.epoch,
            self.settings,
            fraction,
            time.perf_counter() - self.started,
            self.history,
        )

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise TrainingStopped(f"training stopped during epoch {self.epoch} of {self.settings.epochs}")


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
