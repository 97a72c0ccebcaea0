"""Plain records that cross process boundaries: training progress and history, layer summaries,
attributions.

They hold numbers and strings only and import no TensorFlow, so a process that merely shows them (the
dashboard's web server) can receive them from the model workers without loading the framework.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_model.settings import TrainingSettings


class EngineError(Exception):
    """Something the work engine refuses or cannot do; the message says what happened and what to do."""


class QueueFull(EngineError):
    """A training request over the queue's bounds."""


class TrainingStopped(Exception):
    """Training was stopped on request before it finished; nothing was cached."""


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass(frozen=True)
class Progress:
    """A snapshot of a training run, passed to the progress callback."""

    phase: str  # "loading", "training", "evaluating", "saving" or "done"
    epoch: int  # the epoch under way (1-based); equals epochs when done
    epochs: int
    fraction: float  # of the whole run, 0 to 1
    elapsed: float  # seconds since training started
    history: tuple[EpochRecord, ...] = ()

    @property
    def seconds_left(self) -> float | None:
        if self.phase != "training" or self.fraction <= 0:
            return None
        return self.elapsed * (1 - self.fraction) / self.fraction


@dataclass(frozen=True)
class LayerInfo:
    """One row of a layer summary."""

    name: str
    type: str
    output_shape: tuple
    parameters: int
    trainable: bool


@dataclass(frozen=True)
class ModelSummary:
    layers: tuple[LayerInfo, ...]
    total_parameters: int
    trainable_parameters: int
    non_trainable_parameters: int

    def as_rows(self) -> list[dict]:
        """The layers as plain dicts (for tables and JSON); shapes as strings like ``(None, 128)``."""
        return [
            {
                "name": layer.name,
                "type": layer.type,
                "output_shape": str(layer.output_shape),
                "parameters": layer.parameters,
                "trainable": layer.trainable,
            }
            for layer in self.layers
        ]


# The states of a training job, in the order a job goes through them.
QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"


@dataclass(frozen=True)
class JobStatus:
    """Where one training job stands, as the work engine reports it.

    state: "queued", "running", "done", "stopped" or "failed". position: 1 for the next job to start,
    for queued jobs only. starts_in, ends_in: estimated seconds from now, when known. progress: the
    latest snapshot (its history keeps the epochs finished before a stop). message: what a person
    should know about a stop or a failure. node: the Ray node that trained it.
    """

    job_id: str
    key: str
    settings: TrainingSettings
    owner: str | None
    state: str
    submitted: float
    position: int | None = None
    progress: Progress | None = None
    starts_in: float | None = None
    ends_in: float | None = None
    message: str | None = None
    node: str | None = None

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)


@dataclass(frozen=True)
class Attribution:
    """One prediction explained (see :mod:`mnist_model.attribution`).

    ``digit`` is the digit explained (the model's answer unless another was asked for),
    ``probability`` the model's probability of it and ``baseline_probability`` that of a black image.
    ``gradient`` and ``integrated`` are float32 (28, 28), signed (positive: for the digit).
    ``grad_cam`` is float32 (28, 28) in [0, 1], or None for a network without convolutions, and
    ``grad_cam_layer`` the convolution it was taken from."""

    digit: int
    probability: float
    baseline_probability: float
    gradient: np.ndarray
    integrated: np.ndarray
    grad_cam: np.ndarray | None
    grad_cam_layer: str | None

    @property
    def completeness_gap(self) -> float:
        """How far the integrated gradients' sum is from the change in probability they explain."""
        return float(self.integrated.sum()) - (self.probability - self.baseline_probability)


@dataclass(frozen=True)
class LayerActivation:
    """One layer's output for one image (see :mod:`mnist_model.activations`).

    ``values`` is float32: (height, width, channels) for a convolution's feature maps, (units,) for a
    dense layer; ``kind`` is "feature maps" or "units"."""

    name: str
    type: str
    kind: str
    values: np.ndarray


@dataclass(frozen=True)
class Projection:
    """The map of the test set (see :mod:`mnist_model.projection`): ``coordinates`` float32 (n, 2), one
    row per test image in the test set's order, by ``method`` ("pca" or "tsne") from the ``features``
    values per image that the layer ``layer`` gives. ``explained_variance``: for PCA, the share of the
    features' variance along each axis (None for t-SNE). ``seconds``: what computing it took."""

    method: str
    coordinates: np.ndarray
    layer: str
    features: int
    explained_variance: tuple[float, ...] | None
    seconds: float
