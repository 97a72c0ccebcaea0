"""Training: choose settings, watch a run live, read its curves, and compare every cached run."""

import dataclasses

import pandas as pd
import streamlit as st

from dashboard import charts, formats, state, ui
from mnist_model.records import DONE, QUEUED, RUNNING

BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2]
FIELDS = ("architecture", "epochs", "batch_size", "learning_rate", "augment", "cosine_decay")


def submit() -> None:
    """Queue the form's settings as this session's training; the model in use changes when it finishes."""
    current = state.selected_settings()
    try:
        # Fields the form does not show (seed, validation size, strategy) stay as they were.
        settings = dataclasses.replace(current, **{name: st.session_state[f"form_{name}"] for name in FIELDS})
    except ValueError as error:
        st.session_state["training_refusal"] = f"These settings cannot be trained: {error}"
        return
    try:
        state.engine().submit(settings, owner=state.owner())
    except Exception as error:  # QueueFull, EngineError, DataError: all are messages for the user.
        # The page keeps showing the job the session already has.
        st.session_state["training_refusal"] = ui.visitor_message(error)
        return
    st.session_state[state.WATCHED_SETTINGS] = settings
    st.session_state.pop("training_refusal", None)


st.title("Training")
ui.require_data()
current = state.watched_settings()

with st.form("settings"):
    st.markdown("**Settings**")
    columns = st.columns(3)
    columns[0].selectbox(
        "Architecture",
        ["mlp", "cnn"],
        index=["mlp", "cnn"].index(current.architecture),
        format_func={"mlp": "mlp: dense network", "cnn": "cnn: convolutional network"}.get,
        help="mlp trains in seconds; cnn reads more (about 99.4% of the test digits with its recommended "
        "8 epochs, batch 256, lr 4e-3) and takes about a minute on two CPU cores.",
        key="form_architecture",
    )
    columns[1].slider("Epochs", 1, max(30, current.epochs), current.epochs, help=formats.EPOCHS_HELP, key="form_epochs")
    columns[2].select_slider(
        "Batch size",
        sorted({*BATCH_SIZES, current.batch_size}),
        value=current.batch_size,
        help=formats.BATCH_SIZE_HELP,
        key="form_batch_size",
    )
    columns[0].select_slider(
        "Learning rate",
        sorted({*LEARNING_RATES, current.learning_rate}),
        value=current.learning_rate,
        format_func="{:g}".format,
        help=formats.LEARNING_RATE_HELP,
        key="form_learning_rate",
    )
    columns[1].checkbox("Augment", current.augment, help=formats.AUGMENTATION_HELP, key="form_augment")
    columns[2].checkbox(
        "Cosine learning-rate decay", current.cosine_decay, help=formats.COSINE_DECAY_HELP, key="form_cosine_decay"
    )
    st.caption(
        "Training runs on the model engine, one job at a time, in a queue shared by everyone using this "
        "server. When your run finishes it becomes the model in use on every page; until then, the "
        "current model stays in use."
    )
    st.form_submit_button("Train", type="primary", icon=":material/play_arrow:", on_click=submit)

if refusal := st.session_state.get("training_refusal"):
    st.warning(ui.literal(refusal))

st.subheader(formats.short_settings(current))
st.caption(ui.literal(current.describe()))
record = state.record_for(current)
status = state.job(current)
if record is not None and (status is None or status.state == DONE):
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{record.test_accuracy:.2%}")
    columns[1].metric("Test loss", f"{record.test_loss:.4f}")
    columns[2].metric("Epochs", len(record.history))
    columns[3].metric("Training time", formats.seconds(record.train_seconds))
    show_loss = st.toggle("Show loss", key="show_loss")
    st.plotly_chart(charts.training_curves(record.history, show_loss=show_loss), key="curves")
    if note := formats.curve_note(record.history, current.augment):
        st.caption(note)
    if current != state.selected_settings():
        st.button("Use this model", on_click=state.select_settings, args=(current,), icon=":material/check:")
elif status is not None:
    ui.live_job(current, curves=True)
    if status.state in (QUEUED, RUNNING):
        st.caption(
            f"The model in use stays **{ui.literal(formats.short_settings(state.selected_settings()))}** until then."
        )
else:
    st.info("Choose settings and press Train.")

st.subheader("Cached runs")
runs = state.runs()
if not runs:
    st.info("No run has finished yet: cached runs appear here for comparison.")
    st.stop()
table = pd.DataFrame(
    [
        {
            "model": formats.short_settings(record.settings),
            "architecture": record.settings.architecture,
            "epochs": record.settings.epochs,
            "batch size": record.settings.batch_size,
            "learning rate": record.settings.learning_rate,
            "augment": record.settings.augment,
            "test accuracy": record.test_accuracy,
            "test loss": record.test_loss,
            "training time": record.train_seconds,
            "trained": formats.when(record.created),
        }
        for record in runs
    ]
)
picked = st.dataframe(
    table,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="runs_table",
    column_config={
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "test loss": st.column_config.NumberColumn(format="%.4f"),
        "training time": st.column_config.NumberColumn(format="%.1f s"),
    },
)
rows = picked.selection.rows if picked else []
if rows:
    chosen = runs[rows[0]].settings
    if chosen == state.selected_settings():
        st.caption("That run is the model in use.")
    else:
        st.button(
            f"Use {formats.short_settings(chosen)} as the model in use",
            on_click=state.select_settings,
            args=(chosen,),
            icon=":material/check:",
        )
else:
    st.caption("Select a row to make that run the model in use.")
metric = st.segmented_control(
    "Compare",
    ["val_accuracy", "val_loss", "accuracy", "loss"],
    format_func=lambda name: name.replace("val_", "validation ").replace("_", " "),
    **state.remembered("compare_metric", "val_accuracy"),
)
st.plotly_chart(charts.run_comparison(runs, metric or "val_accuracy"), key="comparison")
