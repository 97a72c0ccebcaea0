"""Train, evaluate, inspect and use a handwritten-digit classifier on MNIST.

The public API, by stage: :func:`load_mnist` (data); :class:`TrainingSettings`, :func:`train` and
:func:`start_training` (training with cached results, in the foreground or the background);
:func:`list_runs` (the cache); :func:`evaluate`; :class:`Predictor`; :func:`describe_layers`.
Image preprocessing for uploads and drawings lives in :mod:`mnist_model.images`.
"""

from mnist_model.artifacts import RunRecord
from mnist_model.data import DataError, MnistData, load_mnist
from mnist_model.evaluate import Evaluation, evaluate
from mnist_model.jobs import TrainingJob, find_job, running_jobs, start_training
from mnist_model.model import ModelSummary, build_model, describe_layers
from mnist_model.predict import Predictor
from mnist_model.settings import TrainingSettings
from mnist_model.train import EpochRecord, Progress, TrainedRun, TrainingStopped, list_runs, train

__all__ = [
    "DataError",
    "EpochRecord",
    "Evaluation",
    "MnistData",
    "ModelSummary",
    "Predictor",
    "Progress",
    "RunRecord",
    "TrainedRun",
    "TrainingJob",
    "TrainingSettings",
    "TrainingStopped",
    "build_model",
    "describe_layers",
    "evaluate",
    "find_job",
    "list_runs",
    "load_mnist",
    "running_jobs",
    "start_training",
    "train",
]
