"""Where the package reads and writes: every path it uses is derived here.

Defaults come from the location of this file; environment variables override them so that a user,
a test run or a benchmark can point the package at its own data copy and artifacts folder without
touching code.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A Keras-layout mnist.npz, or a folder holding the four IDX files (gzipped or not).
DATA_ENV = "MNIST_DATA"
# The folder where trained runs are cached.
ARTIFACTS_ENV = "MNIST_ARTIFACTS"
# The folder for the digit detector, which depends on the data only (default: in the artifacts folder).
DETECTOR_ENV = "MNIST_DETECTOR_DIR"
# The folder of "my digits", the images people flagged with their right digit (default: in the artifacts folder).
MY_DIGITS_ENV = "MNIST_MY_DIGITS"
# The architecture of the model people get by default, on the command line and in the dashboard:
# "cnn" (the default) or "mlp", which keeps the dense network, for a machine that should never spend
# the minute or two the convnet takes to train.
DEFAULT_MODEL_ENV = "MNIST_DEFAULT_MODEL"
DEFAULT_MODELS = ("cnn", "mlp")


def default_architecture() -> str:
    """``$MNIST_DEFAULT_MODEL``, "cnn" when unset. Raises ValueError for any other value."""
    value = os.environ.get(DEFAULT_MODEL_ENV) or DEFAULT_MODELS[0]
    if value not in DEFAULT_MODELS:
        raise ValueError(f"{DEFAULT_MODEL_ENV} must be {' or '.join(DEFAULT_MODELS)}; it is {value!r}.")
    return value


def artifacts_dir() -> Path:
    """The folder for cached training runs: ``$MNIST_ARTIFACTS`` or ``artifacts/`` in the project."""
    configured = os.environ.get(ARTIFACTS_ENV)
    return Path(configured).expanduser() if configured else PROJECT_ROOT / "artifacts"


def detector_dir() -> Path:
    """The folder for the digit detector: ``$MNIST_DETECTOR_DIR`` or ``detector/`` in the artifacts folder."""
    configured = os.environ.get(DETECTOR_ENV)
    return Path(configured).expanduser() if configured else artifacts_dir() / "detector"


def my_digits_dir() -> Path:
    """The folder of "my digits" (see :mod:`mnist_model.mydigits`): ``$MNIST_MY_DIGITS`` or ``my-digits/``
    in the artifacts folder."""
    configured = os.environ.get(MY_DIGITS_ENV)
    return Path(configured).expanduser() if configured else artifacts_dir() / "my-digits"


def configured_data_path() -> Path | None:
    """The data location named by ``$MNIST_DATA``, or None when it is not set."""
    configured = os.environ.get(DATA_ENV)
    return Path(configured).expanduser() if configured else None


def keras_cache_file() -> Path:
    """Where ``keras.datasets.mnist.load_data()`` keeps its download (honours ``$KERAS_HOME``)."""
    keras_home = os.environ.get("KERAS_HOME")
    base = Path(keras_home).expanduser() if keras_home else Path.home() / ".keras"
    return base / "datasets" / "mnist.npz"
