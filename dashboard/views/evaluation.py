"""Evaluation: where the model in use goes wrong on the test set, and the images it gets wrong."""

import streamlit as st

from dashboard import charts, formats, state, ui

GALLERY_SIZE = 40
ANY = "any"
DIGIT_CHOICES = [ANY, *range(10)]


def choose_cell() -> None:
    """Copy a clicked confusion-matrix cell into the gallery's choice of true and predicted digit."""
    points = st.session_state["confusion"].selection.points
    if points:
        st.session_state["gallery_true"] = int(points[0]["y"])
        st.session_state["gallery_predicted"] = int(points[0]["x"])


st.title("Evaluation")
key = ui.require_run()
result = state.evaluation(key)
test_images, _ = state.test_set()

columns = st.columns(3)
columns[0].metric("Test accuracy", f"{result.accuracy:.2%}")
columns[1].metric("Test loss", f"{result.loss:.4f}")
columns[2].metric("Misclassified", f"{len(result.misclassified):,} of {len(result.labels):,}")

matrix, scores = st.columns(2, gap="large")
with matrix:
    st.subheader("Confusion matrix")
    left, right = st.columns(2)
    normalise = left.toggle("Share of each true digit", help="Divide each row by its total.", key="normalise")
    mistakes_only = right.toggle(
        "Mistakes only", help="Grey out the correct answers so the colours show only the mistakes.", key="mistakes_only"
    )
    st.plotly_chart(
        charts.confusion_heatmap(result.confusion, normalise=normalise, mistakes_only=mistakes_only),
        key="confusion",
        on_select=choose_cell,
        selection_mode="points",
    )
    st.caption("Click a cell to show its images below.")
with scores:
    st.subheader("Per digit")
    rows = [
        {**row, **{name: formats.percent(row[name]) for name in ("precision", "recall", "f1")}}
        for row in result.per_class_rows()
    ]
    st.dataframe(rows, hide_index=True)

st.subheader("Misclassified test images")
left, right = st.columns(2)
true_digit = left.selectbox("True digit", DIGIT_CHOICES, **state.remembered("gallery_true", ANY))
predicted_digit = right.selectbox("Predicted as", DIGIT_CHOICES, **state.remembered("gallery_predicted", ANY))
if true_digit != ANY and true_digit == predicted_digit:
    st.info("That cell is a correct prediction; pick two different digits to see mistakes.")
    st.stop()
chosen = result.mistakes(
    true_digit=None if true_digit == ANY else true_digit,
    predicted_digit=None if predicted_digit == ANY else predicted_digit,
)
if len(chosen) == 0:
    st.success("The model makes no mistakes of this kind on the test set.")
    st.stop()
st.caption(f"{len(chosen):,} images, most confident mistakes first; showing up to {GALLERY_SIZE}.")
shown = chosen[:GALLERY_SIZE]
st.image(
    [charts.pixelated(test_images[index], 3) for index in shown],
    caption=[
        f"#{index}: {result.labels[index]} → {result.predictions[index]} ({result.confidence[index]:.0%})"
        for index in shown
    ],
    width=84,
)
