"""Overview: the state of the model in use, a look at the training images and the class balance."""

import numpy as np
import streamlit as st

from dashboard import charts, state, ui

SAMPLES_PER_DIGIT = 12


def reshuffle() -> None:
    st.session_state["sample_seed"] = int(np.random.default_rng().integers(2**31))


st.title("MNIST digit classifier")
st.caption("Train a neural network to read handwritten digits, see how it does and why, and try it on your own digits.")
data = ui.require_data()

settings = state.selected_settings()
job = state.training_job(settings)
# Until the model itself has loaded, a cached run's manifest already has its figures.
run = job.result or state.cached_record(settings)
st.subheader("Model in use")
if run is None:
    st.info(
        f"Getting **{settings.describe()}** ready: the first visit trains it once (a few seconds for the "
        "default network); later visits load it from the cache. Other pages fill in when it is ready."
    )
    ui.live_training(settings, curves=True)
else:
    last = run.history[-1] if run.history else None
    val_accuracy = last["val_accuracy"] if isinstance(last, dict) else getattr(last, "val_accuracy", None)
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{run.test_accuracy:.2%}")
    columns[1].metric("Test loss", f"{run.test_loss:.4f}")
    columns[2].metric("Validation accuracy", f"{val_accuracy:.2%}" if val_accuracy is not None else "n/a")
    columns[3].metric("Training time", f"{run.train_seconds:.0f} s", help="Time the run took when it was trained.")
    if job.result is None:
        st.caption(f"{settings.describe()} · loading the model from the cache · trained {run.created}")
        ui.live_training(settings)
    else:
        origin = "loaded from the cache" if run.from_cache else "trained in this server session"
        st.caption(f"{settings.describe()} · {origin} · trained {run.created}")

images, balance = st.columns([3, 2], gap="large")
with images:
    st.subheader("Training images")
    st.caption(f"{SAMPLES_PER_DIGIT} random training images of each digit, one digit per row, 0 at the top.")
    samples = state.sample_images(SAMPLES_PER_DIGIT, st.session_state.setdefault("sample_seed", 0))
    st.image(charts.pixelated(charts.mosaic(samples), 2), width="content")
    st.button("Reshuffle", on_click=reshuffle, icon=":material/shuffle:")
with balance:
    st.subheader("Class balance")
    st.caption(f"Images per digit: {len(data.train_images):,} for training, {len(data.test_images):,} for testing.")
    st.plotly_chart(charts.class_balance(state.class_counts()), key="class_balance")
