"""Interface pieces every page shares: the sidebar, live training progress, and early stops.

A page calls :func:`require_data` or :func:`require_run` first; each returns what the page needs or
stops the page with a message saying why not (no data, training still under way, training failed).
Live views are fragments that poll once a second while a job runs and stop polling when it ends, at
which point they rerun the whole page so it can fill in.
"""

from __future__ import annotations

import re

import streamlit as st

import mnist_model
from dashboard import charts, state

# Seconds between refreshes of live training views while a job runs, and of the sidebar while idle
# (so that training started from another session shows up here too).
POLL_SECONDS = 1.0
IDLE_POLL_SECONDS = 10.0
_SEEN_RUNNING = "_jobs_seen_running"


def literal(text: object) -> str:
    """``text`` escaped so that Streamlit's Markdown shows it as typed (file names, paths, messages).

    Every ASCII punctuation character gets a backslash, which CommonMark defines as that character
    itself; this disarms emphasis, links, images, code, LaTeX (``$``), colour and emoji directives
    (``:red[...]``) and HTML alike.
    """
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", str(text))


def require_data() -> mnist_model.MnistData:
    """MNIST, or stop the page with the loader's explanation of how to supply it."""
    try:
        return state.dataset()
    except mnist_model.DataError as error:
        st.error(f"**MNIST could not be loaded.** {literal(error)}")
        st.stop()


def require_run() -> mnist_model.TrainedRun:
    """The selected run, or stop the page showing its training progress or why it failed."""
    require_data()
    settings = state.selected_settings()
    job = state.training_job(settings)
    if job.result is None:
        st.info(f"This page shows the model **{settings.describe()}**, which is not ready yet.")
        live_training(settings)
        st.stop()
    for note in job.result.notes:
        st.warning(literal(note))
    return state.trained_run(settings)


def live_training(settings: mnist_model.TrainingSettings, *, curves: bool = False) -> None:
    """Progress of the unfinished job for ``settings``, refreshed while it runs, or why it failed.

    curves: also draw the accuracy curves, growing epoch by epoch.
    """
    job = state.training_job(settings)
    if job.result is None:
        st.fragment(run_every=POLL_SECONDS if job.running else None)(_live_training)(settings, curves)


def _live_training(settings: mnist_model.TrainingSettings, curves: bool) -> None:
    job = state.training_job(settings)
    if job.result is not None:
        st.rerun()  # Training ended since the page ran: rerun the whole page to show the result.
    if job.error is not None:
        st.error(literal(job.error))
        st.button("Try again", on_click=mnist_model.start_training, args=(settings,), icon=":material/refresh:")
        return
    progress = job.progress
    st.progress(progress.fraction if progress else 0.0, text=describe_progress(progress))
    if curves and progress is not None and progress.history:
        st.plotly_chart(charts.training_curves(progress.history, epochs=progress.epochs), key="live_curves")
    st.button("Stop training", on_click=job.stop, icon=":material/stop_circle:", key="stop_live")


def describe_progress(progress: mnist_model.Progress | None) -> str:
    """One line such as ``Epoch 3 of 10 · 12 s left``."""
    if progress is None or progress.phase == "loading":
        return "Loading the data and the cached model, or preparing to train..."
    if progress.phase != "training":
        return f"{progress.phase.capitalize()}..."
    left = progress.seconds_left
    remaining = f" · {left:.0f} s left" if left is not None else ""
    return f"Epoch {progress.epoch} of {progress.epochs} · {progress.elapsed:.0f} s elapsed{remaining}"


def sidebar() -> None:
    """The model selector and the status of every training job in this server process."""
    state.keep_keras_state()
    with st.sidebar:
        _model_selector()
        running = bool(mnist_model.running_jobs())
        st.fragment(run_every=POLL_SECONDS if running else IDLE_POLL_SECONDS)(_training_status)()


def _model_selector() -> None:
    selected = state.selected_settings()
    runs = {record.settings: record for record in mnist_model.list_runs()}
    options = list(dict.fromkeys([selected, *runs, *(job.settings for job in mnist_model.running_jobs())]))

    def label(settings: mnist_model.TrainingSettings) -> str:
        record = runs.get(settings)
        return f"{settings.describe()} ({record.test_accuracy:.2%})" if record else f"{settings.describe()} (new)"

    st.selectbox(
        "Model in use",
        options,
        format_func=label,
        help="Evaluation, Predict and Model show this run. Train others on the Training page.",
        **state.remembered(state.SELECTED_SETTINGS, selected),
    )


def _training_status() -> None:
    state.keep_keras_state()
    running = mnist_model.running_jobs()
    seen = st.session_state.setdefault(_SEEN_RUNNING, set())
    finished = seen - {job.settings for job in running}
    st.session_state[_SEEN_RUNNING] = {job.settings for job in running}
    if finished:
        st.rerun()  # A job ended: rerun the whole page so it shows the new run.
    if not running:
        st.caption("No training under way.")
        return
    for job in running:
        st.caption(f"Training **{job.settings.describe()}**")
        st.progress(job.progress.fraction if job.progress else 0.0, text=describe_progress(job.progress))
