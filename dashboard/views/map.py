"""Map: the 10,000 test images as the network's last layer sees them, projected to 2-D by PCA or t-SNE."""

import streamlit as st

from dashboard import charts, formats, state, ui
from mnist_model import projection

# The session-state key of the test image chosen on the map; a click on a point sets it.
CHOSEN = "map_index"


def choose_point() -> None:
    """Copy a clicked point's test index into the image shown under the map."""
    points = st.session_state["map"].selection.points
    if points and "customdata" in points[0]:
        # A list, or, for a figure that carried it as a typed array, an object keyed by position.
        data = points[0]["customdata"]
        st.session_state[CHOSEN] = int(data[0] if isinstance(data, list) else data["0"])


st.title("Map of the test set")
key = ui.require_run()
result = state.evaluation(key)
test_images, _ = state.test_set()

left, right = st.columns([2, 1])
method = left.radio(
    "Projection",
    list(projection.METHODS),
    format_func=projection.METHODS.get,
    horizontal=True,
    help="PCA: the two directions along which the images differ most, exact and immediate. t-SNE: neighbours "
    "kept together, so the digits show as islands; computed once per model, in about ten seconds.",
    **state.remembered("map_method", "pca", list(projection.METHODS)),
)
mistakes_only = right.toggle("Mistakes only", help="Show only the images the model reads wrong.", key="map_mistakes")
with st.spinner(f"Computing the {projection.METHODS[method]} map of the 10,000 test images in the model engine..."):
    found = state.projection(key, method)
index = st.session_state.get(CHOSEN)
index = index if isinstance(index, int) and 0 <= index < len(test_images) else None
st.plotly_chart(
    charts.test_set_map(
        found, result.labels, result.predictions, result.confidence, mistakes_only=mistakes_only, selected=index
    ),
    key="map",
    on_select=choose_point,
    selection_mode="points",
)
st.caption(formats.projection_caption(found))

if index is None:
    st.info("Click a point to see that test image, the model's answer and where it looked.")
    st.stop()
image, true, predicted = test_images[index], int(result.labels[index]), int(result.predictions[index])
st.subheader(f"Test image #{index}")
picture, answer = st.columns([1, 3], gap="large")
picture.image(charts.pixelated(image, 8), caption=f"A {true} in the test set")
with answer:
    columns = st.columns(3)
    columns[0].metric("Predicted digit", predicted)
    columns[1].metric("Confidence", f"{result.confidence[index]:.1%}")
    ui.true_label(columns[2], predicted, true)
    st.plotly_chart(charts.probability_bars(result.probabilities[index], true_label=true))
attribution = state.explain(key, image)
st.markdown(f"**Where the model looked for its {attribution.digit}**")
st.plotly_chart(charts.attribution_maps(image, attribution), config=ui.PICTURE)
st.caption(formats.attribution_note(attribution))
