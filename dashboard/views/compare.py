"""Compare: two cached runs side by side, their curves, what the second fixed and broke, and their mistakes."""

import streamlit as st

from dashboard import charts, formats, state, ui
from mnist_model.evaluation import compare

st.title("Compare runs")
ui.require_data()
runs = state.runs()
if len(runs) < 2:
    st.info("Two cached runs are needed: train another one on the Training page, then compare them here.")
    st.stop()
labels = {record.key: formats.short_settings(record.settings) for record in runs}
in_use = state.record_for(state.selected_settings(), runs)
keys = list(labels)
left, right = st.columns(2)
first_key = left.selectbox(
    "Run A", keys, format_func=labels.get, **state.remembered("compare_a", in_use.key if in_use else keys[0], keys)
)
second_key = right.selectbox(
    "Run B",
    keys,
    format_func=labels.get,
    **state.remembered("compare_b", next(key for key in keys if key != first_key), keys),
)
if first_key == second_key:
    st.info("Pick two different runs.")
    st.stop()
first, second = (next(record for record in runs if record.key == key) for key in (first_key, second_key))
first_result, second_result = state.evaluation(first_key), state.evaluation(second_key)
comparison = compare(first_result, second_result)

columns = st.columns(4)
columns[0].metric("Test accuracy A", f"{first_result.accuracy:.2%}")
columns[1].metric(
    "Test accuracy B",
    f"{second_result.accuracy:.2%}",
    delta=f"{second_result.accuracy - first_result.accuracy:+.2%}",
)
columns[2].metric("Fixed by B", f"{len(comparison.fixed):,}", help="Test images A got wrong and B gets right.")
columns[3].metric("Broken by B", f"{len(comparison.broken):,}", help="Test images A got right and B gets wrong.")

metric = st.segmented_control(
    "Curves",
    ["val_accuracy", "val_loss", "accuracy", "loss"],
    format_func=lambda name: name.replace("val_", "validation ").replace("_", " "),
    **state.remembered("compare_runs_metric", "val_accuracy"),
)
st.plotly_chart(charts.run_comparison([first, second], metric or "val_accuracy"))

st.subheader("Confusion matrices")
matrices = st.columns(2, gap="large")
for column, title, key, result in (
    (matrices[0], "A", first_key, first_result),
    (matrices[1], "B", second_key, second_result),
):
    column.markdown(f"**{title}: {ui.literal(labels[key])}**")
    column.plotly_chart(charts.confusion_heatmap(result.confusion, normalise=False, size=460))
change, explanation = st.columns(2, gap="large")
change.markdown("**B less A**")
change.plotly_chart(charts.confusion_change(comparison.confusion_change))
explanation.caption(
    "Each cell: how many more (+) or fewer (-) test images B puts there than A. Green where B is better "
    "(more right answers on the diagonal, fewer mistakes off it), red where it is worse. The diagonal's "
    f"changes add up to {len(comparison.fixed) - len(comparison.broken):+,}: {len(comparison.fixed):,} images "
    f"fixed less {len(comparison.broken):,} broken."
)

st.subheader("What B changed")
kind = st.segmented_control(
    "Images",
    ["fixed", "broke"],
    format_func={"fixed": "Fixed by B", "broke": "Broken by B"}.get,
    **state.remembered("compare_kind", "fixed"),
)
left, right = st.columns(2)
true_digit = ui.digit_filter(left, "True digit", "compare_true")
wrong_answer = ui.digit_filter(right, "Wrong answer (A's for a fixed image, B's for a broken one)", "compare_wrong")
chosen = comparison.changed(kind or "fixed", true_digit, wrong_answer)
if len(chosen) == 0:
    st.success("No test image of this kind.")
    st.stop()
ui.gallery(
    state.test_set()[0],
    chosen,
    lambda index: (
        f"#{index} ({first_result.labels[index]}): A {first_result.predictions[index]}, "
        f"B {second_result.predictions[index]}"
    ),
    "the most confident wrong answer",
)
