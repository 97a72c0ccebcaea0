"""Train, evaluate, inspect and use a handwritten-digit classifier on MNIST.

The public API, by stage: :func:`load_mnist` (data); :class:`TrainingSettings` and :func:`train`
(training with cached results); :func:`list_runs` (the cache); :func:`evaluate`; :class:`Predictor`;
:func:`describe_layers`. Image preprocessing for uploads and drawings lives in
:mod:`mnist_model.images`. :mod:`mnist_model.engine` runs all of it on Ray for a server with many
users: a training queue, shared jobs, and models served from workers.

TensorFlow takes seconds to import, so the names that need it are imported on first use: reading
data, settings, cached-run listings and job status is immediate.
"""

import importlib
import os

# TensorFlow's C++ start-up chatter is noise for this package's users; they can still turn it on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_model.artifacts import RunRecord, list_runs  # noqa: E402
from mnist_model.data import DataError, MnistData, load_mnist  # noqa: E402
from mnist_model.settings import TrainingSettings  # noqa: E402

_LAZY = {
    "EpochRecord": "mnist_model.records",
    "Progress": "mnist_model.records",
    "TrainedRun": "mnist_model.training",
    "TrainingStopped": "mnist_model.records",
    "train": "mnist_model.training",
    "Evaluation": "mnist_model.evaluation",
    "evaluate": "mnist_model.evaluation",
    "Predictor": "mnist_model.predict",
    "ModelSummary": "mnist_model.records",
    "build_model": "mnist_model.model",
    "describe_layers": "mnist_model.model",
}

__all__ = [
    "DataError",
    "MnistData",
    "RunRecord",
    "TrainingSettings",
    "list_runs",
    "load_mnist",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mnist_model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
