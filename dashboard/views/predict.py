"""Predict: the model in use on a test image, an uploaded file, or a digit drawn by hand."""

import functools
from collections.abc import Callable

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from dashboard import charts, formats, state, ui
from mnist_model import calibration, detector, images

# Any file is accepted by the picker and judged by its content, so a refused file is named in a
# message of ours (the picker's own filter kept the previous file and showed the refused one beside it).
UPLOAD_HELP = "PNG, JPEG, BMP, GIF or WebP, recognised by content; up to 5 MB."
CANVAS_SIZE = (280, 280)  # width, height
UNSURE_HELP = (
    f"Calibrated on held-out images: of the answers given with 90% confidence, about 90% are right. "
    f"Below {calibration.UNSURE_BELOW:.0%} the answer is marked unsure."
)
# Called with the digit an upload or a drawing was read as: the control to flag a wrong answer.
Flag = Callable[[int], None]
STEPS = {"decoded": "As uploaded", "grey": "Grey, paper removed", "cropped": "Digit cropped", "final": "28x28 input"}


def show_prediction(image: np.ndarray, true_label: int | None = None, flag: Flag | None = None) -> int:
    """The predicted digit, its probability and the bar chart of all ten, for one (28, 28) image, then
    ``flag(digit)`` if given (the control to correct it), then where the model looked; returns the digit."""
    probabilities = state.predict(state.selected_settings(), image)
    digit = int(probabilities.argmax())
    confidence = float(probabilities[digit])
    columns = st.columns(2 if true_label is None else 3)
    columns[0].metric("Predicted digit", digit)
    show_confidence(columns[1], confidence)
    if true_label is not None:
        ui.true_label(columns[2], digit, true_label)
    st.plotly_chart(charts.probability_bars(probabilities, true_label=true_label))
    if flag is not None:
        flag(digit)
    show_attribution(image)
    return digit


def show_attribution(image: np.ndarray) -> None:
    """Where the model looked for its answer on one (28, 28) image."""
    key = state.run_key(state.selected_settings())
    attribution = state.explain(key, image)
    st.markdown(f"**Where the model looked for its {attribution.digit}**")
    st.plotly_chart(charts.attribution_maps(image, attribution), config=ui.PICTURE)
    st.caption(formats.attribution_note(attribution))
    with st.expander("Inside the network: what each layer computes for this image"):
        layers = state.activations(key, image)
        for index, activation in enumerate(layers):
            st.caption(formats.activation_caption(activation, last=index == len(layers) - 1))
            st.plotly_chart(charts.layer_activation(activation), config=ui.PICTURE)


def show_confidence(column, confidence: float, explanation: str = "") -> None:
    """The calibrated confidence, marked "unsure" below the threshold at which one answer in five is wrong."""
    unsure = calibration.unsure(confidence)
    column.metric(
        "Confidence",
        f"{confidence:.1%}",
        delta="unsure" if unsure else None,
        delta_color="off",
        delta_arrow="off",
        help=explanation + UNSURE_HELP,
    )


def show_number(prepared: images.PreprocessedImage) -> None:
    """A number of several digits: what it was read as, and each digit as the model saw it."""
    probabilities = state.predict(state.selected_settings(), prepared.digit_inputs)
    digits = probabilities.argmax(axis=1)
    confidences = probabilities.max(axis=1)
    columns = st.columns(2)
    columns[0].metric("Read as the number", "".join(str(digit) for digit in digits))
    show_confidence(
        columns[1],
        float(np.prod(confidences)),
        "The chance that every digit is right: the product of the digits' confidences. ",
    )
    st.caption("Each digit, cut from the number and brought into MNIST form, with the model's reading of it:")
    for column, image, digit, confidence in zip(
        st.columns(max(len(digits), 6)), prepared.digits, digits, confidences, strict=False
    ):
        unsure = ", unsure" if calibration.unsure(confidence) else ""
        column.image(charts.pixelated(image, 4), caption=f"{digit} ({confidence:.1%}{unsure})")


def show_answer(prepared: images.PreprocessedImage, flag: Flag) -> None:
    """For an upload or a drawing: "not a digit" with the reason, or the digit or number it shows; under
    a digit's answer (or a "not a digit"), ``flag(digit)``, the control to say which digit it really is."""
    scores = state.digit_scores(prepared.digit_inputs)
    why_not = None if scores is None else detector.reason(scores, prepared.digit_inputs, prepared.model_input)
    if why_not is not None:
        st.metric("Answer", "Not a digit")
        st.warning(f"**Not a digit:** {why_not}.")
        with st.expander("What the classifier would answer anyway"):
            digit = show_prediction(prepared.model_input)
        flag(digit)
        return
    if scores is None:
        st.caption(
            "The check for images that are not digits is getting ready (it is trained once, in a few "
            "minutes); until then every image is read as a digit."
        )
    if prepared.is_number:
        show_number(prepared)
    else:
        show_prediction(prepared.model_input, flag=flag)


def random_index(count: int) -> None:
    st.session_state["test_index"] = int(np.random.default_rng().integers(count))


@st.fragment
def test_image() -> None:
    test_images, test_labels = state.test_set()
    left, right = st.columns([1, 2], gap="large")
    with left:
        index = st.number_input(
            f"Test image (0 to {len(test_images) - 1})", 0, len(test_images) - 1, **state.remembered("test_index", 0)
        )
        st.button("Random image", on_click=random_index, args=(len(test_images),), icon=":material/casino:")
        st.image(charts.pixelated(test_images[index], 8), caption=f"Test image #{index}")
    with right:
        show_prediction(test_images[index], int(test_labels[index]))


@st.fragment
def upload() -> None:
    uploaded = st.file_uploader("An image of a digit or a number", help=UPLOAD_HELP, key="upload")
    if uploaded is None:
        st.info(
            "Upload a photo, scan or drawing of one digit, or of a number such as a year or a house number, "
            "dark on light or light on dark."
        )
        return
    try:
        prepared = state.prepared_upload(uploaded.getvalue(), uploaded.name)
    except images.ImageError as error:
        st.error(f"**This file cannot be used.** {ui.literal(error)}")
        return
    steps = dict(STEPS, cropped="Number cropped", final=None) if prepared.is_number else STEPS
    for column, (step, caption) in zip(st.columns(len(STEPS)), steps.items(), strict=True):
        if caption is None:
            continue
        picture = getattr(prepared, step)
        column.image(
            charts.pixelated(picture, 6) if step == "final" else charts.square(picture), caption=caption, width=168
        )
    if prepared.notes:
        st.caption("Preprocessing: " + "; ".join(prepared.notes) + ".")
    show_answer(prepared, functools.partial(ui.flag_wrong_answer, uploaded.getvalue(), uploaded.name, "upload"))


@st.fragment
def draw() -> None:
    left, right = st.columns([1, 2], gap="large")
    with left:
        # The canvas's toolbar floats above it: room for it below the tabs.
        st.space("medium")
        drawing = st_canvas(
            stroke_width=20,
            stroke_color="#ffffff",
            background_color="#000000",
            width=CANVAS_SIZE[0],
            height=CANVAS_SIZE[1],
            return_image_data=True,
            key="canvas",
        )
        st.space("small")
        st.caption("Draw with the mouse, a pen or a finger. The bin in the toolbar above the box clears it.")
    with right:
        # The canvas's PNG as the browser sent it: decoded (as PNG only) by the engine, not here.
        try:
            drawing_png = drawing.image_bytes
        except (ValueError, TypeError, AttributeError):  # not a base64 data URL
            drawing_png = None
        try:
            prepared = state.engine().prepare_drawing(drawing_png, CANVAS_SIZE) if drawing_png else None
        except images.ImageError:
            prepared = None
        if prepared is None:
            st.info("Draw a digit (or a number of a few digits) in the black box; the prediction updates as you draw.")
            return
        if not prepared.is_number:
            st.image(charts.pixelated(prepared.final, 4), caption="28x28 input")
        show_answer(prepared, functools.partial(ui.flag_wrong_answer, drawing_png, "drawing", "drawing"))


st.title("Predict")
ui.require_run()
# Only the open tab runs: switching tabs reruns the page, which stays fast and remembers the tab.
views = {"Test image": test_image, "Upload an image": upload, "Draw a digit": draw}
tabs = st.tabs(list(views), **state.remembered("predict_tab", "Test image"))
for tab, view in zip(tabs, views.values(), strict=True):
    if tab.open:
        with tab:
            view()
