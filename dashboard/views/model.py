"""Model: the layers of the model in use, how its weights are spread, and its files to download."""

import streamlit as st

from dashboard import charts, state, ui

st.title("Model")
key = ui.require_run()
settings = state.selected_settings()
summary = state.layer_summary(key)

st.caption(settings.describe())
columns = st.columns(3)
columns[0].metric("Parameters", f"{summary.total_parameters:,}")
columns[1].metric("Trainable", f"{summary.trainable_parameters:,}")
columns[2].metric(
    "Non-trainable",
    f"{summary.non_trainable_parameters:,}",
    help="Parameters that training does not change; these networks have none.",
)

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
weights = state.layer_weights(key)
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
left.download_button(
    "Model (.keras)",
    state.model_file(key),
    file_name=f"mnist-{key}.keras",
    mime="application/zip",
    icon=":material/download:",
    on_click="ignore",
)
right.download_button(
    "Test predictions (.csv)",
    state.predictions_csv(key),
    file_name=f"mnist-{key}-test-predictions.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
)
