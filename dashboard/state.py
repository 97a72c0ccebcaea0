"""The dashboard's connection to the work engine, its caches and its session state.

The web process holds no model and imports no TensorFlow: every model-related question goes to the
engine (:mod:`mnist_model.engine`, on Ray) and comes back as plain data. The connection is made once
per server, on a thread of its own that starts with the server (``python -m dashboard``) or with the
first page view, so a page never waits for Ray to start: it shows what it can and says the engine is
starting.

All Streamlit caching lives here: ``st.cache_resource`` for the test images, which every session
shares; ``st.cache_data`` for what pages derive from a run (evaluations, layer
summaries, weights, tables), keyed by the run's cache key, and from the "my digits" set (its images in
MNIST form, each run's score on them), keyed by the set's digest.

The model in use (the "selected run") is a value in ``st.session_state`` under a key no widget
owns, so it survives page switches. It changes only to a run that exists: when a training this
session started has finished, or when the user picks one.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import connection
from mnist_model import artifacts, config, images, mydigits
from mnist_model.engine import ADDRESS_ENV, Engine, EngineError
from mnist_model.records import Attribution, JobStatus, LayerActivation, Projection
from mnist_model.settings import TrainingSettings

log = logging.getLogger(__name__)

# The session-state key holding the TrainingSettings of the model every page uses.
SELECTED_SETTINGS = "selected_settings"
# The session-state key holding the settings of the training this session started last.
WATCHED_SETTINGS = "watched_settings"
# The session-state key that is true once the user has chosen the model in use (or trained one):
# from then on the pages keep to it, and the default model no longer takes over.
CHOSEN = "model_chosen"
_SERVED = "_served_settings"


def connector() -> connection.Connector:
    return connection.connector()


def engine() -> Engine | None:
    """The engine, or None while it starts. Raises EngineError when it could not start."""
    connected = connection.connector()
    if connected.error:
        raise EngineError(connected.error)
    return connected.engine


def retry_engine() -> None:
    """Forget a failed connection so that the next page view tries again."""
    connection.forget_failure()


def owner() -> str:
    """This browser session's identity, which owns the trainings it starts."""
    context = get_script_run_ctx()
    return context.session_id if context else "no-session"


def default_settings() -> TrainingSettings:
    """The model people get: the convnet, unless ``$MNIST_DEFAULT_MODEL`` says mlp."""
    try:
        return TrainingSettings.default()
    except ValueError as error:
        log.error("%s Serving the dense network.", error)
        return TrainingSettings()


def first_settings() -> TrainingSettings:
    """The model served until the default one is trained (see ``TrainingSettings.served_first``)."""
    try:
        return TrainingSettings.served_first()
    except ValueError:
        return TrainingSettings()  # default_settings() logs why


def selected_settings() -> TrainingSettings:
    """The settings of the run the pages show: the user's choice once made; until then the default
    model once it is trained, and the model served first before that.

    When the default model takes over, the session is told once, in a toast.
    """
    if st.session_state.get(CHOSEN) and SELECTED_SETTINGS in st.session_state:
        return st.session_state[SELECTED_SETTINGS]
    best, first = default_settings(), first_settings()
    settings = best if best == first or _is_cached(best) else first
    if st.session_state.get(_SERVED) == first and settings != first:
        st.toast(
            f"**The convnet is ready** and now answers on every page ({_accuracy(settings)} of the test digits "
            "read right). Pick another model in the sidebar at any time.",
            icon=":material/upgrade:",
        )
    st.session_state[_SERVED] = st.session_state[SELECTED_SETTINGS] = settings
    return settings


def chosen_by_user() -> bool:
    return bool(st.session_state.get(CHOSEN))


def select_settings(settings: TrainingSettings) -> None:
    """Make ``settings`` the model in use for this session, as the user's own choice."""
    st.session_state[SELECTED_SETTINGS] = settings
    st.session_state[CHOSEN] = True


def choose_from_widget(widget_key: str) -> None:
    """The model selector's callback: the user picked a model."""
    select_settings(st.session_state[widget_key])


def _is_cached(settings: TrainingSettings) -> bool:
    """Whether a run of the default model is in the store. A yes is remembered for the server's life:
    the store never evicts the default runs."""
    if settings not in _cached_defaults and record_for(settings) is not None:
        _cached_defaults.add(settings)
    return settings in _cached_defaults


_cached_defaults: set[TrainingSettings] = set()


def _accuracy(settings: TrainingSettings) -> str:
    record = record_for(settings)
    return f"{record.test_accuracy:.2%}" if record is not None else "most"


def watched_settings() -> TrainingSettings:
    """The settings the Training page shows: this session's latest training, else the model in use."""
    return st.session_state.get(WATCHED_SETTINGS) or selected_settings()


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


# Runs and jobs (never cached: they change while people train)


def runs() -> list[artifacts.RunRecord]:
    """The cached runs, newest first: from the engine, or, while a local engine starts, from the store's folder."""
    try:
        connected = engine()
    except EngineError:
        connected = None  # The page says why, where it needs the engine.
    if connected is not None:
        return connected.runs()
    if os.environ.get(ADDRESS_ENV):
        return []
    return artifacts.list_runs()


def record_for(settings: TrainingSettings, records: Sequence[artifacts.RunRecord] | None = None):
    """The cached run trained with ``settings``, if any."""
    return next((record for record in (runs() if records is None else records) if record.settings == settings), None)


def ensure(settings: TrainingSettings) -> JobStatus:
    """The job or cached run for ``settings``, training it (owned by nobody) when it is not cached."""
    return engine().submit(settings, owner=None)


def job(settings: TrainingSettings) -> JobStatus | None:
    return engine().job(settings)


# Derived data, cached per run key


@st.cache_data(show_spinner=False, max_entries=64)
def run_key(settings: TrainingSettings) -> str:
    return engine().key(settings)


@st.cache_resource(show_spinner="Fetching the test images...")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 test images, uint8 (10000, 28, 28), and labels, uint8 (10000,), shared by every session."""
    return engine().test_set()


@st.cache_data(show_spinner=False)
def class_counts() -> pd.DataFrame:
    """Images per digit in the training and test sets: columns digit, split, images."""
    counts = engine().class_counts()
    rows = [
        {"digit": str(digit), "split": split, "images": int(count)}
        for split, values in counts.items()
        for digit, count in enumerate(values)
    ]
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False, max_entries=32)
def sample_images(per_digit: int, seed: int) -> np.ndarray:
    """``per_digit`` random training images of each digit: uint8 (10, per_digit, 28, 28)."""
    return engine().samples(per_digit, seed)


@st.cache_data(show_spinner="Evaluating on the 10,000 test images...", max_entries=8)
def evaluation(key: str):
    return engine().evaluate(key)


@st.cache_data(show_spinner=False, max_entries=8)
def layer_summary(key: str):
    return engine().summary(key)


@st.cache_data(show_spinner=False, max_entries=8)
def layer_weights(key: str) -> dict[str, dict[str, np.ndarray]]:
    return engine().weights(key)


@st.cache_data(show_spinner=False, max_entries=4)
def model_file(key: str) -> bytes:
    return engine().model_file(key)


@st.cache_data(show_spinner=False, max_entries=8)
def predictions_csv(key: str) -> bytes:
    """The test-set predictions as CSV: index, label, prediction, confidence, one column per digit."""
    result = evaluation(key)
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


def prepared_upload(data: bytes, name: str):
    """An upload brought into MNIST form by the engine, once per file: a page's reruns reuse the
    answer, a refusal included. Raises ImageError."""
    prepared, refusal = _prepared_upload(data, name)
    if refusal is not None:
        raise images.ImageError(refusal)
    return prepared


@st.cache_data(show_spinner=False, max_entries=16)
def _prepared_upload(data: bytes, name: str):
    try:
        return engine().prepare_file(data, name), None
    except images.ImageError as error:
        return None, str(error)


def predict(settings: TrainingSettings, model_input: np.ndarray) -> np.ndarray:
    """The ten probabilities for one (28, 28) image from the run trained with ``settings``."""
    return engine().predict(run_key(settings), model_input)


@st.cache_data(show_spinner=False, max_entries=32)
def explain(key: str, model_input: np.ndarray, digit: int | None = None) -> Attribution:
    """Where the run's model looked for its answer (or for ``digit``) on one (28, 28) image (see
    :mod:`mnist_model.attribution`)."""
    return engine().explain(key, model_input, digit)


@st.cache_data(show_spinner=False, max_entries=32)
def activations(key: str, model_input: np.ndarray) -> tuple[LayerActivation, ...]:
    """Each computing layer's output for one (28, 28) image (see :mod:`mnist_model.activations`)."""
    return engine().activations(key, model_input)


@st.cache_data(show_spinner=False, max_entries=16)
def projection(key: str, method: str) -> Projection:
    """The map of the 10,000 test images by ``method``, "pca" or "tsne" (see :mod:`mnist_model.projection`):
    the engine computes it once per run and keeps it with the run."""
    return engine().projection(key, method)


def digit_scores(model_inputs: np.ndarray) -> np.ndarray | None:
    """How much each (28, 28) image looks like a digit; None while the detector is being trained."""
    return engine().digit_scores(model_inputs)


# My digits: the images people flagged with their right digit, in a folder on this server (see mnist_model.mydigits)

# A set is cached by what it holds: its digest changes with its CSV and with every listed file.
_BY_CONTENT = {mydigits.DigitSet: lambda digit_set: (str(digit_set.folder), digit_set.digest)}


def my_digits() -> mydigits.DigitSet:
    """The set as it is now: its CSV and the status of its files, read on every call. Raises MyDigitsError
    (logged, since its message names the server's files)."""
    try:
        return mydigits.load(config.my_digits_dir())
    except mydigits.MyDigitsError as error:
        log.error("my digits cannot be read: %s", error)
        raise


def save_my_digit(data: bytes, name: str, label: int, source: str, predicted: int | None) -> mydigits.Entry:
    """Save an upload's bytes or a drawing's PNG with the digit it shows. Raises MyDigitsError (SetFull
    over a bound) or OSError."""
    return mydigits.add(config.my_digits_dir(), data, name=name, label=label, source=source, predicted=predicted)


def delete_my_digit(file: str) -> None:
    mydigits.remove(config.my_digits_dir(), file)


def clear_my_digits() -> int:
    return mydigits.clear(config.my_digits_dir())


def my_digits_zip() -> bytes:
    """The set as a zip (labels.csv and the images), made when the visitor downloads it."""
    return mydigits.zip_bytes(config.my_digits_dir())


@st.cache_data(show_spinner="Preparing my digits...", max_entries=4, hash_funcs=_BY_CONTENT)
def my_digits_inputs(digit_set: mydigits.DigitSet) -> mydigits.Inputs:
    """The set's images in MNIST form, prepared by the engine (where untrusted images are decoded)."""
    return engine().prepare_my_digits(mydigits.samples(digit_set))


@st.cache_data(show_spinner="Scoring the cached models on my digits...", max_entries=64, hash_funcs=_BY_CONTENT)
def my_digits_score(key: str, digit_set: mydigits.DigitSet) -> mydigits.Score:
    """The run's answers on the set, against its labels: one batch prediction on the engine."""
    inputs = my_digits_inputs(digit_set)
    accepted = inputs.model_inputs
    probabilities = engine().predict(key, accepted) if len(accepted) else np.zeros((0, 10), dtype=np.float32)
    return mydigits.score(digit_set.entries, inputs, probabilities)
