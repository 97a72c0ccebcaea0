"""Model: the layers of the model in use, how its weights are spread, and its files to download."""

import streamlit as st

from dashboard import charts, state, ui

st.title("Model")
run = ui.require_run()
settings = state.selected_settings()
summary = state.layer_summary(settings)

st.caption(settings.describe())
columns = st.columns(3)
columns[0].metric("Parameters", f"{summary.total_parameters:,}")
columns[1].metric("Trainable", f"{summary.trainable_parameters:,}")
columns[2].metric("Non-trainable", f"{summary.non_trainable_parameters:,}", help="Batch-normalisation statistics.")

st.subheader("Layers")
st.dataframe(
    summary.as_rows(),
    hide_index=True,
    column_config={
        "name": "layer",
        "output_shape": "output shape",
        "parameters": st.column_config.NumberColumn("parameters", format="localized"),
    },
)

st.subheader("Weights")
weights = state.layer_weights(settings)
layer = st.selectbox(
    "Layer", list(weights), width=320, **state.remembered("weights_layer", next(iter(weights), None), weights)
)
if layer not in weights:
    st.info("This model has no layers with weights.")
else:
    arrays = weights[layer]
    st.plotly_chart(charts.weight_histogram(arrays), key="weights")
    st.caption("Shapes: " + ", ".join(f"{name} {tuple(array.shape)}" for name, array in arrays.items()))

st.subheader("Downloads")
left, right = st.columns(2)
model_file = state.model_file_bytes(run)
if model_file is None:
    left.info("The model was not saved to disk, so there is no file to download.")
else:
    left.download_button(
        "Model (.keras)",
        model_file,
        file_name=f"mnist-{run.key}.keras",
        mime="application/zip",
        icon=":material/download:",
        on_click="ignore",
    )
right.download_button(
    "Test predictions (.csv)",
    state.predictions_csv(settings),
    file_name=f"mnist-{run.key}-test-predictions.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
)
