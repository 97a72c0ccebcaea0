"""The dashboard's caches and shared session state: thin wrappers over :mod:`mnist_model`.

All Streamlit caching lives here. ``st.cache_resource`` holds the objects that are shared, never
copied: the data set, trained runs and predictors, one per training settings. ``st.cache_data``
holds what pages derive from them: evaluations, layer summaries, weights, samples and tables.
Training never goes through a cache: :func:`training_job` hands it to ``mnist_model``'s background
jobs, so no model that a cache shares is ever trained further.

The model in use (the "selected run") is a value in ``st.session_state`` under a key no widget
owns, so it survives page switches, which clear the state of widgets that are not on the page.
"""

from __future__ import annotations

import gc
import io
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import mnist_model

# The session-state key holding the TrainingSettings of the model every page uses.
SELECTED_SETTINGS = "selected_settings"
# How long a page waits for a newly started job, enough to load a cached run (about a second).
CACHE_LOAD_SECONDS = 2.0
# The jobs whose loaded model has been moved out of the garbage collector's sight (see freeze_heap).
_frozen_jobs: set[tuple[int, str]] = set()


def freeze_heap() -> None:
    """Exclude every object alive now from Python's cyclic garbage collector.

    After each script run, and each fragment run, Streamlit calls ``keras.backend.clear_session()``
    and ``gc.collect(2)``: two full collections, each walking the ~360,000 objects TensorFlow and
    Keras create, about 0.2 s apiece here. Freezing moves those long-lived objects out of the
    collector's sight, so the same clean-up takes well under a millisecond. Objects created later are
    collected as usual.
    """
    gc.freeze()


def keep_keras_state() -> None:
    """Stop Streamlit's after-run clean-up from resetting Keras under a running training job.

    After every script run, and every fragment run, Streamlit calls ``keras.backend.clear_session()``.
    That resets TensorFlow's default graph and clears its kernel cache for every thread, so a job
    training in the background re-creates the kernels of its loop after each page refresh: with eight
    sessions polling progress, a 15-second training took 400 seconds. It also restarts Keras' layer
    numbering in the middle of another thread's model. The dashboard never needs that clean-up, so
    once Keras is loaded its ``clear_session`` is replaced, in this server process, by one that does
    nothing.
    """
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.clear_session is not _keep_session:
        keras.backend.clear_session = _keep_session


def _keep_session(*args, **kwargs) -> None:
    """Stands in for ``keras.backend.clear_session`` in the dashboard's process: see keep_keras_state."""


def selected_settings() -> mnist_model.TrainingSettings:
    """The settings of the run the pages show; the default settings until the user picks another."""
    return st.session_state.setdefault(SELECTED_SETTINGS, mnist_model.TrainingSettings())


def select_settings(settings: mnist_model.TrainingSettings) -> None:
    st.session_state[SELECTED_SETTINGS] = settings


def remembered(key: str, default: Any, choices: Sequence[Any] | None = None) -> dict[str, Any]:
    """Widget keyword arguments that keep the widget's value in ``st.session_state[key]``.

    Streamlit forgets a widget's value when the user switches to a page without it; a plain session
    key survives. The widget gets its own key, refreshed from ``key`` on every run and copied back on
    change. choices: the widget's options, when a remembered value may no longer be one of them (it
    then falls back to ``default``). Use as ``st.number_input("Index", **state.remembered("index", 0))``.
    """
    widget_key = f"_widget_{key}"
    value = st.session_state.setdefault(key, default)
    if choices is not None and value not in choices:
        value = st.session_state[key] = default
    st.session_state[widget_key] = value
    return {"key": widget_key, "on_change": _copy_state, "args": (widget_key, key)}


def _copy_state(source: str, target: str) -> None:
    st.session_state[target] = st.session_state[source]


def training_job(settings: mnist_model.TrainingSettings) -> mnist_model.TrainingJob:
    """This process's job for ``settings`` (running, finished or failed), or a newly started one.

    A finished job holds its run. A new job for settings trained before only loads them from the
    disk cache, so it is given a moment to finish: the page then shows the model at once instead of
    a progress bar for a second. A failed job is returned as it is, so a page can show its error
    instead of retrying on every visit.
    """
    keep_keras_state()
    job = mnist_model.find_job(settings)
    if job is None:
        job = mnist_model.start_training(settings)
        job.wait(timeout=CACHE_LOAD_SECONDS)
    # Freeze once training has started (TensorFlow is imported by then, and every poll of the live
    # progress would otherwise pay for collecting it) and once more when the model is ready.
    for stage, reached in (("started", job.progress is not None), ("finished", job.result is not None)):
        if reached and (id(job), stage) not in _frozen_jobs:
            freeze_heap()
            _frozen_jobs.add((id(job), stage))
    return job


def cached_record(settings: mnist_model.TrainingSettings) -> mnist_model.RunRecord | None:
    """The manifest of the cached run for ``settings``, if any: its figures without loading TensorFlow."""
    return next((record for record in mnist_model.list_runs() if record.settings == settings), None)


@st.cache_resource(show_spinner="Loading MNIST...")
def dataset() -> mnist_model.MnistData:
    """The MNIST arrays (read-only, so one copy is shared by every session). Raises DataError."""
    return mnist_model.load_mnist()


@st.cache_resource(show_spinner=False, max_entries=8)
def trained_run(settings: mnist_model.TrainingSettings) -> mnist_model.TrainedRun:
    """The finished run for ``settings``; call it once :func:`training_job` has a result."""
    job = training_job(settings)
    job.wait()
    if job.result is None:
        raise RuntimeError(job.error or f"no trained run for {settings.describe()}")
    return job.result


@st.cache_resource(show_spinner=False, max_entries=8)
def predictor(settings: mnist_model.TrainingSettings) -> mnist_model.Predictor:
    """A thread-safe predictor for the run trained with ``settings``."""
    return mnist_model.Predictor(trained_run(settings).model)


@st.cache_data(show_spinner="Evaluating on the 10,000 test images...", max_entries=8)
def evaluation(settings: mnist_model.TrainingSettings) -> mnist_model.Evaluation:
    data = dataset()
    return mnist_model.evaluate(trained_run(settings).model, data.test_images, data.test_labels)


@st.cache_data(show_spinner=False, max_entries=8)
def layer_summary(settings: mnist_model.TrainingSettings) -> mnist_model.ModelSummary:
    return mnist_model.describe_layers(trained_run(settings).model)


@st.cache_data(show_spinner=False, max_entries=8)
def layer_weights(settings: mnist_model.TrainingSettings) -> dict[str, dict[str, np.ndarray]]:
    """The weight arrays of every layer that has any: ``{layer name: {weight name: array}}``."""
    model = trained_run(settings).model
    return {
        layer.name: {variable.name: np.asarray(variable) for variable in layer.weights}
        for layer in model.layers
        if layer.weights
    }


@st.cache_data(show_spinner=False, max_entries=8)
def predictions_csv(settings: mnist_model.TrainingSettings) -> bytes:
    """The test-set predictions as CSV: index, label, prediction, confidence, one column per digit."""
    result = evaluation(settings)
    table = pd.DataFrame(
        {
            "index": np.arange(len(result.labels)),
            "label": result.labels,
            "prediction": result.predictions,
            "confidence": result.confidence,
        }
    )
    probabilities = pd.DataFrame(result.probabilities, columns=[f"p{digit}" for digit in range(10)])
    buffer = io.StringIO()
    pd.concat([table, probabilities], axis=1).to_csv(buffer, index=False, float_format="%.6f")
    return buffer.getvalue().encode()


@st.cache_data(show_spinner=False, max_entries=32)
def sample_images(per_digit: int, seed: int) -> np.ndarray:
    """``per_digit`` random training images of each digit: uint8 (10, per_digit, 28, 28)."""
    data = dataset()
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(data.train_labels == digit), per_digit, replace=False) for digit in range(10)]
    return data.train_images[np.stack(chosen)]


@st.cache_data(show_spinner=False)
def class_counts() -> pd.DataFrame:
    """Images per digit in the training and test sets: columns digit, split, images."""
    data = dataset()
    rows = [
        {"digit": str(digit), "split": split, "images": int(count)}
        for split, labels in (("train", data.train_labels), ("test", data.test_labels))
        for digit, count in enumerate(np.bincount(labels, minlength=10))
    ]
    return pd.DataFrame(rows)


def model_file_bytes(run: mnist_model.TrainedRun) -> bytes | None:
    """The saved ``.keras`` file of ``run``, or None when it was never saved. Not cached: it is on disk."""
    if run.model_file is None or not run.model_file.is_file():
        return None
    return run.model_file.read_bytes()
