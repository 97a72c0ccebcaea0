"""My digits: the uploads and drawings people flagged on Predict with their right digit, every cached
model scored on them, and the set to download or prune."""

import streamlit as st

from dashboard import charts, formats, state, ui
from mnist_model import mydigits
from mnist_model.engine import EngineError

# The newest images shown in the gallery; the table scores them all.
SHOWN = 120

st.title("My digits")
st.caption(ui.MY_DIGITS_NOTE)
try:
    digit_set = state.my_digits()
except mydigits.MyDigitsError:
    st.error("**My digits cannot be read:** its labels.csv is damaged; the server log says how.")
    st.button("Delete all and start again", on_click=ui.clear_my_digits, icon=":material/delete_sweep:")
    st.stop()
if digit_set.problems:
    skipped = "; ".join(ui.literal(problem) for problem in digit_set.problems[:5])
    st.warning(f"**{len(digit_set.problems):,} rows of labels.csv were skipped** ({skipped}).")
if not digit_set.entries:
    st.info(
        "**No digits saved yet.** On the **Predict** page, upload a photo of a digit or draw one; under the "
        "answer, pick the digit it really shows and press **Save to my digits**. Every cached model is then "
        "scored here on all the digits you saved, so you can see which one reads your handwriting best."
    )
    st.stop()

ui.require_engine()
runs = state.runs()
in_use = state.selected_settings()
try:
    scores = {record.key: state.my_digits_score(record.key, digit_set) for record in runs}
except EngineError as error:
    st.error(f"**My digits could not be scored.** {ui.literal(error)}")
    st.stop()

in_use_run = state.record_for(in_use, runs)
columns = st.columns(3)
columns[0].metric("Images saved", f"{len(digit_set):,}", help=f"At most {mydigits.MAX_IMAGES:,}.")
if in_use_run is not None:
    score = scores[in_use_run.key]
    columns[1].metric(
        "The model in use reads", formats.percent(score.accuracy), help="The share of my digits it reads right."
    )
    columns[2].metric("Read right", f"{score.right:,} of {score.count:,}")

st.subheader("Every cached model on my digits")
st.dataframe(
    formats.my_digits_rows([(record, scores[record.key]) for record in runs], state.default_settings(), in_use),
    hide_index=True,
    column_config={
        "my digits": st.column_config.TextColumn("my digits", help="The share of my digits it reads right.")
    },
)
shown_run = in_use_run or (runs[0] if runs else None)
if shown_run is None:
    st.info("No model is trained yet; the table fills in when the first one is.")
    st.stop()

st.subheader(f"The images, as {formats.short_settings(shown_run.settings)} reads them")
inputs = state.my_digits_inputs(digit_set)
newest = list(reversed(range(len(digit_set.entries))))[:SHOWN]
results = scores[shown_run.key].results
st.caption(
    f"{len(digit_set):,} images ({digit_set.total_bytes / 2**20:.1f} MB), newest first, each as the model sees it: "
    f"the right digit, then ✓ or what the model read, and its confidence. Showing up to {SHOWN}."
)
st.image(
    [charts.pixelated(inputs.finals[index], 3) for index in newest],
    caption=[formats.my_digit_caption(results[index]) for index in newest],
    width=84,
)

st.subheader("Download or delete")
download, delete, clear = st.columns([1, 2, 1], vertical_alignment="bottom")
download.download_button(
    "My digits (.zip)",
    state.my_digits_zip,
    file_name="my-digits.zip",
    mime="application/zip",
    icon=":material/download:",
    on_click="ignore",
    help="labels.csv and the images, for `python -m mnist_model evaluate --images my-digits` once unpacked.",
)
entries = {entry.file: entry for entry in reversed(digit_set.entries)}
chosen = delete.selectbox(
    "Image to delete",
    list(entries),
    format_func=lambda file: f"a {entries[file].label}: {entries[file].name or file} ({entries[file].created})",
    key="my_digits_delete",
)
delete.button("Delete this image", on_click=ui.delete_my_digit, args=(chosen,), icon=":material/delete:")
with clear.popover("Delete all", icon=":material/delete_sweep:"):
    st.button(f"Yes, delete all {len(digit_set):,} images", on_click=ui.clear_my_digits, type="primary")
