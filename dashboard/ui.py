"""Interface pieces every page shares: the sidebar, live training progress, and early stops.

A page calls :func:`require_engine` or :func:`require_run` first; each returns what the page needs or
stops the page with a message saying why not (the engine still starting, no data, the model still
training). Live views are fragments that poll once a second while a job is queued or running and
rerun the whole page when it ends, so the page can fill in.
"""

from __future__ import annotations

import hashlib
import logging
import re

import streamlit as st

from dashboard import charts, formats, state
from mnist_model import mydigits
from mnist_model.data import DataError
from mnist_model.engine import Engine, EngineError, QueueFull
from mnist_model.records import DONE, FAILED, QUEUED, STOPPED, JobStatus
from mnist_model.settings import TrainingSettings

# Seconds between refreshes of live views while a job is queued or running, and of the sidebar while
# idle (so that training started from another session shows up here too).
POLL_SECONDS = 1.0
# Plotly's options for a figure that is a picture to look at (maps over an image): no mode bar over it.
PICTURE = {"displayModeBar": False}
IDLE_POLL_SECONDS = 5.0
_ACTIVE_SEEN = "_active_jobs_seen"
# Where a flagged image goes, said under every flag control and on the My digits page.
MY_DIGITS_NOTE = (
    f"Kept on this dashboard's server only, in a folder beside its trained models, and never sent anywhere "
    f"else; everyone who uses this server shares the set. It holds at most {mydigits.MAX_IMAGES:,} images "
    f"({mydigits.MAX_SET_BYTES // 2**20} MB); the My digits page scores every model on them and deletes them."
)

log = logging.getLogger(__name__)


def literal(text: object) -> str:
    """``text`` escaped so that Streamlit's Markdown shows it as typed (file names, paths, messages).

    Every ASCII punctuation character gets a backslash, which CommonMark defines as that character
    itself; this disarms emphasis, links, images, code, LaTeX (``$``), colour and emoji directives
    (``:red[...]``) and HTML alike.
    """
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", str(text))


def visitor_message(error: Exception) -> str:
    """What a page says of an engine or data error: never a file of the server (the log has those)."""
    return error.public if isinstance(error, DataError) else str(error)


def require_engine() -> Engine:
    """The engine, or stop the page: with progress while it starts, or with why it could not."""
    try:
        connected = state.engine()
    except EngineError as error:
        st.error(f"**The model engine is not available.** {literal(error)}")
        st.button("Try again", on_click=state.retry_engine, icon=":material/refresh:")
        st.stop()
    if connected is None:
        st.fragment(run_every=0.5)(_engine_starting)()
        st.stop()
    return connected


def _engine_starting() -> None:
    if state.connector().engine is not None or state.connector().error:
        st.rerun()
    if state.connector().restarts:
        st.warning(
            "**The model engine stopped, and a new one is starting.** Trainings that were under way were "
            "lost; the trained models are kept.",
            icon=":material/restart_alt:",
        )
    else:
        st.info("Starting the model engine (a local Ray instance): a few seconds after the server starts.")
    st.progress(0.0, text="Starting the model engine...")


def require_data() -> None:
    """Stop the page with the loader's explanation when MNIST cannot be loaded."""
    require_engine()
    try:
        state.test_set()
    except DataError as error:
        st.error(f"**MNIST could not be loaded.** {literal(error.public)}")
        st.stop()


def require_run() -> str:
    """The cache key of the model in use, or stop the page showing its training progress."""
    require_data()
    settings = state.selected_settings()
    status = ensure(settings)
    default_model_coming(settings)
    if status.state != DONE:
        st.info(f"This page shows the model **{literal(settings.describe())}**, which is not ready yet.")
        live_job(settings)
        st.stop()
    if status.message:
        st.warning(literal(status.message))
    return status.key


def default_model_coming(settings: TrainingSettings) -> None:
    """While the model served first serves a session that has chosen no model, have the default model
    trained (queued after the first) and say that it takes over, and about when."""
    best = state.default_settings()
    if state.chosen_by_user() or settings != state.first_settings() or best == settings:
        return
    status = ensure(best)
    if status.state == FAILED:
        return
    if status.active:
        when = f" in about {formats.seconds(status.ends_in)}" if status.ends_in is not None else " when it is trained"
        st.info(
            f"**The convnet takes over{when}.** It reads more of the digits people photograph and draw "
            "than this quick dense network, which answers until then. To use another model, pick it in the sidebar.",
            icon=":material/upgrade:",
        )


def ensure(settings: TrainingSettings) -> JobStatus:
    """The cached run for ``settings``, or its job: trained (owned by nobody) when not cached.

    A failed last attempt is not repeated on every page view: it is shown, with a button to try again.
    """
    last = state.job(settings)
    if last is not None and last.state == FAILED:
        return last
    return submit_or_explain(settings, owner=None)


def submit_or_explain(settings: TrainingSettings, owner: str | None) -> JobStatus:
    """Submit training (or find the job or cached run), or stop the page with why it was refused."""
    try:
        return state.engine().submit(settings, owner=owner)
    except QueueFull as error:
        st.warning(literal(error))
        st.stop()
    except (EngineError, DataError) as error:
        st.error(literal(visitor_message(error)))
        st.stop()


def live_job(settings: TrainingSettings, *, curves: bool = False) -> None:
    """The queued or running job for ``settings``, refreshed each second, or how its last job ended.

    curves: also draw the accuracy curves, growing epoch by epoch (and kept after a stop).
    """
    status = state.job(settings)
    active = status is not None and status.active
    st.fragment(run_every=POLL_SECONDS if active else None)(_live_job)(settings, curves, active)


def _live_job(settings: TrainingSettings, curves: bool, was_active: bool) -> None:
    status = state.job(settings)
    if status is None:
        return
    if was_active and not status.active:
        _finished(status)
        st.rerun()  # The job ended since the page ran: rerun the whole page to show the result.
    progress = status.progress
    if status.state == QUEUED:
        starts = f", starting in about {formats.seconds(status.starts_in)}" if status.starts_in is not None else ""
        st.progress(0.0, text=f"Waiting: number {status.position} in the training queue{starts}.")
    elif status.active:
        st.progress(progress.fraction if progress else 0.0, text=describe_progress(status))
    elif status.state == STOPPED:
        st.info(f"{literal(status.message or 'Stopped.')} Nothing was saved; the model in use did not change.")
    elif status.state == FAILED:
        st.error(literal(status.message or "Training failed."))
        owner = state.owner() if status.owner is not None else None
        st.button("Try again", on_click=_retry, args=(settings, owner), icon=":material/refresh:", key="retry")
    if curves and progress is not None and progress.history:
        st.plotly_chart(charts.training_curves(progress.history, epochs=progress.epochs), key="live_curves")
    if status.active and status.owner == state.owner():
        st.button("Stop training", on_click=_stop, args=(status.job_id,), icon=":material/stop_circle:", key="stop")
    elif status.active and status.owner is not None:
        st.caption("Another session started this training; only it can stop it.")


def _retry(settings: TrainingSettings, owner: str | None) -> None:
    try:
        state.engine().submit(settings, owner=owner)
    except (EngineError, DataError) as error:
        st.toast(literal(visitor_message(error)))


def _stop(job_id: str) -> None:
    try:
        state.engine().stop(job_id, state.owner())
    except EngineError as error:
        st.toast(literal(error))


def _finished(status: JobStatus) -> None:
    """A job this session watched has ended: a finished training of this session becomes the model in use."""
    if status.state == DONE and status.owner == state.owner() and status.settings == state.watched_settings():
        state.select_settings(status.settings)
        st.toast(f"Training finished: **{literal(formats.short_settings(status.settings))}** is now the model in use.")


def describe_progress(status: JobStatus) -> str:
    """One line such as ``Epoch 3 of 10 · 4 s elapsed · about 12 s left``."""
    progress = status.progress
    if progress is None or progress.phase == "loading":
        return "Starting a worker and loading the data..."
    if progress.phase != "training":
        return f"{progress.phase.capitalize()}..."
    left = f" · about {formats.seconds(status.ends_in)} left" if status.ends_in is not None else " · estimating..."
    return f"Epoch {progress.epoch} of {progress.epochs} · {formats.seconds(progress.elapsed)} elapsed{left}"


def sidebar() -> None:
    """The model selector and the status of every training job on the engine."""
    with st.sidebar:
        try:
            connected = state.engine()
        except EngineError:
            connected = None
        if connected is None:
            st.caption("Model engine starting...")
            return
        _model_selector()
        st.fragment(run_every=POLL_SECONDS)(_training_status)()


def _model_selector() -> None:
    selected = state.selected_settings()
    records = {record.settings: record for record in state.runs()}
    options = list(dict.fromkeys([selected, *records]))

    def label(settings: TrainingSettings) -> str:
        return formats.short_settings(settings)

    remembered = state.remembered(state.SELECTED_SETTINGS, selected)
    st.selectbox(
        "Model in use",
        options,
        format_func=label,
        help="Evaluation, Model and Predict show this run. Train others on the Training page; "
        "a training you start becomes the model in use when it finishes.",
        **{**remembered, "on_change": state.choose_from_widget, "args": (remembered["key"],)},
    )
    record = records.get(selected)
    accuracy = f"{record.test_accuracy:.2%} test accuracy · " if record else ""
    st.caption(accuracy + literal(selected.describe()))


def _training_status() -> None:
    try:
        jobs = [status for status in state.engine().jobs() if status.active]
    except EngineError as error:
        st.caption(literal(error))
        return
    seen = st.session_state.get(_ACTIVE_SEEN, set())
    now = {status.job_id for status in jobs}
    st.session_state[_ACTIVE_SEEN] = now
    if seen - now:
        st.rerun()  # A job ended: rerun the whole page so it shows the new run.
    if not jobs:
        st.caption("No training under way.")
        return
    for status in jobs:
        mine = " (yours)" if status.owner == state.owner() else ""
        st.caption(f"**{literal(formats.short_settings(status.settings))}**{mine}")
        if status.state == QUEUED:
            st.progress(0.0, text=f"Number {status.position} in the queue")
        else:
            st.progress(status.progress.fraction if status.progress else 0.0, text=describe_progress(status))


# The galleries of test images (Evaluation's mistakes, Compare's changes): the digit filters and the grid.
ANY_DIGIT = "any"
DIGIT_CHOICES = [ANY_DIGIT, *range(10)]
GALLERY_SIZE = 40


def digit_filter(column, label: str, key: str) -> int | None:
    """A choice of one digit or any (None), remembered across pages under ``key``."""
    value = column.selectbox(label, DIGIT_CHOICES, **state.remembered(key, ANY_DIGIT))
    return None if value == ANY_DIGIT else value


def gallery(images, chosen, caption, order: str) -> None:
    """The first ``GALLERY_SIZE`` of the test images ``chosen`` (indices), each with ``caption(index)``."""
    shown = chosen[:GALLERY_SIZE]
    st.caption(f"{len(chosen):,} images, {order} first; showing up to {GALLERY_SIZE}.")
    st.image([charts.pixelated(images[index], 3) for index in shown], caption=[caption(i) for i in shown], width=84)


def true_label(column, predicted: int, true: int) -> None:
    """The true label as a metric in ``column``, marked "correct" or "wrong" for the ``predicted`` digit."""
    correct = predicted == true
    column.metric(
        "True label",
        true,
        delta="correct" if correct else "wrong",
        delta_color="normal" if correct else "inverse",
        delta_arrow="off",
    )


# My digits: the flag under an answer, and the changes the My digits page makes.


def flag_wrong_answer(data: bytes, name: str, source: str, predicted: int) -> None:
    """Under an upload's or a drawing's answer: "Wrong? The right digit is [0-9]", saved to my digits.

    data: the uploaded file's bytes or the drawing's PNG; source: "upload" or "drawing"; predicted: the
    model's answer. The outcome (saved, or why not) shows below until the image changes.
    """
    key = f"flag_{source}"
    digest = hashlib.sha256(data).hexdigest()
    with st.form(key, border=False, enter_to_submit=False):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        left.segmented_control("Wrong? The right digit is", list(range(10)), key=f"{key}_digit")
        right.form_submit_button(
            "Save to my digits",
            icon=":material/bookmark_add:",
            on_click=_save_flag,
            args=(data, name, source, predicted, key, digest),
        )
    kind, shown_for, text = st.session_state.get(f"{key}_outcome", (None, None, None))
    if shown_for == digest:
        (st.success if kind == "saved" else st.warning)(text)
    st.caption(MY_DIGITS_NOTE)


def _save_flag(data: bytes, name: str, source: str, predicted: int, key: str, digest: str) -> None:
    label = st.session_state.get(f"{key}_digit")
    if label is None:
        outcome = ("refused", "Pick the digit the image really shows, then press **Save to my digits**.")
    else:
        try:
            state.save_my_digit(data, name, label, source, predicted)
        except mydigits.MyDigitsError as error:
            outcome = ("refused", f"**Not saved.** {literal(error)}")
        except OSError as error:
            log.error("cannot save to my digits: %s", error)
            outcome = (
                "refused",
                "**Not saved:** this server cannot write to its folder for my digits; its log says why.",
            )
        else:
            read = "read it right" if label == predicted else f"read a {predicted}"
            outcome = ("saved", f"Saved to my digits as a **{label}** (the model in use {read}).")
            st.session_state[f"{key}_digit"] = None
    st.session_state[f"{key}_outcome"] = (outcome[0], digest, outcome[1])


def delete_my_digit(file: str) -> None:
    """The Delete button's callback: one image out of the set, with a toast either way."""
    try:
        state.delete_my_digit(file)
    except mydigits.MyDigitsError as error:
        st.toast(literal(error))
    except OSError as error:
        log.error("cannot delete from my digits: %s", error)
        st.toast("This server cannot change its folder for my digits; its log says why.")
    else:
        st.toast("Deleted from my digits.", icon=":material/delete:")


def clear_my_digits() -> None:
    """The Delete all button's callback."""
    try:
        count = state.clear_my_digits()
    except (mydigits.MyDigitsError, OSError) as error:
        log.error("cannot clear my digits: %s", error)
        st.toast("This server cannot change its folder for my digits; its log says why.")
    else:
        st.toast(f"Deleted all {count:,} images from my digits.", icon=":material/delete_sweep:")
