"""Evaluation: where the model in use goes wrong on the test set, and the images it gets wrong."""

import streamlit as st

from dashboard import charts, formats, state, ui
from mnist_model import calibration


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

st.subheader("How far the confidence can be trusted")
record = state.record_for(state.selected_settings())
temperature = record.temperature if record else 1.0
before, after = result.reliability(temperature)
unsure = result.unsure_split()
chart, figures = st.columns([3, 2], gap="large")
chart.plotly_chart(charts.reliability_diagram(before, after))
with figures:
    st.metric("Calibration error before", f"{before.error:.2%}")
    st.metric(
        "Calibration error after",
        f"{after.error:.2%}",
        delta=f"{after.error - before.error:+.2%}",
        delta_color="inverse",
        help="The expected calibration error: how far, on average over the test answers, the confidence "
        "is from the share of answers of that confidence that are right.",
    )
    st.metric("Temperature", f"{temperature:.3g}", help="The model's logits are divided by it.")
    st.caption(
        f"The probabilities were calibrated by temperature scaling on the {record.settings.validation_size:,} "
        "training images held out for validation, then checked here on the test set. "
        if record
        else ""
    )
    st.caption(
        f"Answers below {calibration.UNSURE_BELOW:.0%} confidence are marked unsure: "
        f"{unsure.below:.1%} of the test answers, of which {formats.percent(unsure.right_below)} are right "
        f"(against {formats.percent(unsure.right_above)} of the others)."
    )

st.subheader("Misclassified test images")
left, right = st.columns(2)
true_digit = ui.digit_filter(left, "True digit", "gallery_true")
predicted_digit = ui.digit_filter(right, "Predicted as", "gallery_predicted")
if true_digit is not None and true_digit == predicted_digit:
    st.info("That cell is a correct prediction; pick two different digits to see mistakes.")
    st.stop()
chosen = result.mistakes(true_digit=true_digit, predicted_digit=predicted_digit)
if len(chosen) == 0:
    st.success("The model makes no mistakes of this kind on the test set.")
    st.stop()
ui.gallery(
    test_images,
    chosen,
    lambda index: f"#{index}: {result.labels[index]} → {result.predictions[index]} ({result.confidence[index]:.0%})",
    "most confident mistakes",
)
shown = chosen[: ui.GALLERY_SIZE]

st.subheader("Why this mistake")
index = st.selectbox(
    "Image",
    shown,
    format_func=lambda index: f"#{index}: a {result.labels[index]} read as {result.predictions[index]}",
    key="why_index",
)
predicted, true = int(result.predictions[index]), int(result.labels[index])
explained = [state.explain(key, test_images[index], digit) for digit in (predicted, true)]
st.plotly_chart(
    charts.integrated_maps(
        test_images[index],
        explained,
        [
            f"For {predicted}, its answer ({explained[0].probability:.0%})",
            f"For {true}, the truth ({explained[1].probability:.0%})",
        ],
    )
)
st.caption(
    f"Integrated gradients of the two digits on one colour scale: red pixels raise that digit's probability, "
    f"blue ones lower it. Where the {predicted} is red and the {true} blue, the model read the ink as part of a "
    f"{predicted}."
)
