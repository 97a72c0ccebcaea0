"""Train, evaluate, inspect and use a handwritten-digit classifier on MNIST.

The public API, by stage: :func:`load_mnist` (data); :class:`TrainingSettings` and
:func:`mnist_model.training.train` (training with cached results); :func:`list_runs` (the cache);
:func:`mnist_model.evaluation.evaluate`; :class:`mnist_model.predict.Predictor`;
:func:`mnist_model.model.describe_layers`. Image preprocessing for uploads and drawings lives in
:mod:`mnist_model.images`. :mod:`mnist_model.engine` runs all of it on Ray for a server with many
users: a training queue, shared jobs, and models served from workers.

TensorFlow takes seconds to import, so this package imports only what does without it (data,
settings, the cache's listings and the records that jobs report); the modules named above that
need TensorFlow are imported by name when they are used.
"""

import os

# TensorFlow's C++ start-up chatter is noise for this package's users; they can still turn it on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_model.artifacts import RunRecord, list_runs  # noqa: E402
from mnist_model.data import DataError, MnistData, load_mnist  # noqa: E402
from mnist_model.records import EpochRecord, ModelSummary, Progress, TrainingStopped  # noqa: E402
from mnist_model.settings import TrainingSettings  # noqa: E402

__all__ = [
    "DataError",
    "EpochRecord",
    "MnistData",
    "ModelSummary",
    "Progress",
    "RunRecord",
    "TrainingSettings",
    "TrainingStopped",
    "list_runs",
    "load_mnist",
]
