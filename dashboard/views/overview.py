"""Overview: the state of the model in use, a look at the training images and the class balance."""

import numpy as np
import streamlit as st

from dashboard import charts, formats, state, ui
from mnist_model.records import DONE

SAMPLES_PER_DIGIT = 12


def reshuffle() -> None:
    st.session_state["sample_seed"] = int(np.random.default_rng().integers(2**31))


st.title("MNIST digit classifier")
st.caption("Train a neural network to read handwritten digits, see how it does and why, and try it on your own digits.")

settings = state.selected_settings()
st.subheader("Model in use")
# The cached run's figures come from its manifest, shown even while the engine starts.
record = state.record_for(settings)
if record is not None:
    last = record.history[-1] if record.history else None
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{record.test_accuracy:.2%}")
    columns[1].metric("Test loss", f"{record.test_loss:.4f}")
    columns[2].metric("Validation accuracy", f"{last.val_accuracy:.2%}" if last else "n/a")
    columns[3].metric(
        "Training time", formats.seconds(record.train_seconds), help="Time the run took when it was trained."
    )
    st.caption(f"{ui.literal(settings.describe())} · trained {formats.when(record.created)}")

ui.require_data()
if record is None:
    status = ui.ensure(settings)
ui.default_model_coming(settings)
if record is None:
    if status.active:
        st.info(
            f"Getting **{ui.literal(settings.describe())}** ready: it is trained once (seconds for the dense "
            "network) and then kept for every visit. The other pages fill in when it is ready."
        )
    if status.state != DONE:
        ui.live_job(settings, curves=True)
    else:
        st.rerun()

images, balance = st.columns([3, 2], gap="large")
with images:
    st.subheader("Training images")
    st.caption(f"{SAMPLES_PER_DIGIT} random training images of each digit, one digit per row, 0 at the top.")
    samples = state.sample_images(SAMPLES_PER_DIGIT, st.session_state.setdefault("sample_seed", 0))
    st.image(charts.pixelated(charts.mosaic(samples), 2), width="content")
    st.button("Reshuffle", on_click=reshuffle, icon=":material/shuffle:")
with balance:
    counts = state.class_counts()
    totals = counts.groupby("split")["images"].sum()
    st.subheader("Class balance")
    st.caption(f"Images per digit: {totals['train']:,} for training, {totals['test']:,} for testing.")
    st.plotly_chart(charts.class_balance(counts), key="class_balance")
