"""Training: choose settings, watch a run live, read its curves, and compare every cached run."""

import dataclasses

import pandas as pd
import streamlit as st

import mnist_model
from dashboard import charts, state, ui

BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2]

st.title("Training")
ui.require_data()
current = state.selected_settings()

with st.form("settings"):
    st.markdown("**Settings**")
    columns = st.columns(3)
    architecture = columns[0].selectbox(
        "Architecture",
        ["mlp", "cnn"],
        index=["mlp", "cnn"].index(current.architecture),
        format_func={"mlp": "mlp: dense network", "cnn": "cnn: convolutional network"}.get,
        help="mlp trains in seconds; cnn reaches about 99.3% but takes minutes on a CPU.",
    )
    epochs = columns[1].slider("Epochs", 1, max(30, current.epochs), current.epochs)
    batch_size = columns[2].select_slider(
        "Batch size", sorted({*BATCH_SIZES, current.batch_size}), value=current.batch_size
    )
    learning_rate = columns[0].select_slider(
        "Learning rate",
        sorted({*LEARNING_RATES, current.learning_rate}),
        value=current.learning_rate,
        format_func="{:g}".format,
    )
    augment = columns[1].checkbox(
        "Augment", current.augment, help="Random shifts, rotations, zoom and stroke widths; slower, generalises better."
    )
    cosine_decay = columns[2].checkbox("Cosine learning-rate decay", current.cosine_decay)
    submitted = st.form_submit_button("Train", type="primary", icon=":material/play_arrow:")
if submitted:
    try:
        # Fields the form does not show (seed, validation size, strategy) stay as they were.
        settings = dataclasses.replace(
            current,
            architecture=architecture,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            augment=augment,
            cosine_decay=cosine_decay,
        )
    except ValueError as error:
        st.error(f"These settings cannot be trained: {ui.literal(error)}")
        st.stop()
    state.select_settings(settings)
    current = settings
    mnist_model.start_training(settings)

st.subheader(current.describe())
job = state.training_job(current)
if job.result is None:
    ui.live_training(current, curves=True)
else:
    run = job.result
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{run.test_accuracy:.2%}")
    columns[1].metric("Test loss", f"{run.test_loss:.4f}")
    columns[2].metric("Epochs", len(run.history))
    columns[3].metric("Training time", f"{run.train_seconds:.1f} s")
    show_loss = st.toggle("Show loss", key="show_loss")
    st.plotly_chart(charts.training_curves(run.history, show_loss=show_loss), key="curves")

st.subheader("Cached runs")
runs = mnist_model.list_runs()
if not runs:
    st.info("No run has finished yet: cached runs appear here for comparison.")
    st.stop()
table = pd.DataFrame(
    [
        {
            "architecture": record.settings.architecture,
            "epochs": record.settings.epochs,
            "batch size": record.settings.batch_size,
            "learning rate": record.settings.learning_rate,
            "augment": record.settings.augment,
            "seed": record.settings.seed,
            "test accuracy": record.test_accuracy,
            "test loss": record.test_loss,
            "training time": record.train_seconds,
            "trained": record.created,
        }
        for record in runs
    ]
)
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "test loss": st.column_config.NumberColumn(format="%.4f"),
        "training time": st.column_config.NumberColumn(format="%.1f s"),
    },
)
metric = st.segmented_control(
    "Compare",
    ["val_accuracy", "val_loss", "accuracy", "loss"],
    format_func=lambda name: name.replace("val_", "validation ").replace("_", " "),
    **state.remembered("compare_metric", "val_accuracy"),
)
st.plotly_chart(charts.run_comparison(runs, metric or "val_accuracy"), key="comparison")
