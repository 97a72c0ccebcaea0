"""The dashboard's pages under Streamlit's AppTest: each renders, shows what it should, and answers its inputs.

The pages run in this process against the work engine on a local Ray instance started for the
module, with a small run trained once on the real MNIST copy (three epochs of the dense network)
into a temporary artifacts folder. What a page shows is checked against values computed here
directly with ``mnist_model``, from the same cached run loaded in this process.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

import mnist_model
import mnist_model.engine
from dashboard import formats, state
from mnist_model import activations, attribution, calibration, images
from mnist_model.evaluation import compare, evaluate
from mnist_model.predict import Predictor
from mnist_model.training import TrainedRun, train

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
# Settings no other test module trains, so the process-wide job for them is this module's alone.
SETTINGS = mnist_model.TrainingSettings(epochs=3, seed=11)
OTHER_SETTINGS = mnist_model.TrainingSettings(epochs=1, seed=11)
PAGES = ["overview", "training", "evaluation", "compare", "model", "predict"]


@pytest.fixture(scope="module")
def trained(mnist_path: Path, tmp_path_factory: pytest.TempPathFactory, trained_detector) -> TrainedRun:
    """The run the pages show, trained once by the engine into a fresh artifacts folder (with a second run
    to compare), then loaded from that cache in this process for reference values."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MNIST_DATA", str(mnist_path))
        patch.setenv("MNIST_ARTIFACTS", str(tmp_path_factory.mktemp("dashboard-artifacts")))
        st.cache_resource.clear()
        st.cache_data.clear()
        connection = state.connector()
        assert connection._thread.is_alive()
        deadline = time.monotonic() + 120
        while connection.engine is None and connection.error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert connection.engine is not None, connection.error
        for settings in (OTHER_SETTINGS, SETTINGS):
            wait_until_done(connection.engine, settings)
        yield train(SETTINGS)
    st.cache_resource.clear()
    st.cache_data.clear()


def wait_until_done(engine, settings: mnist_model.TrainingSettings, timeout: float = 300):
    status = engine.submit(settings)
    deadline = time.monotonic() + timeout
    while status.active and time.monotonic() < deadline:
        time.sleep(0.2)
        status = engine.job(settings)
    assert status.state == "done", status
    return status


@pytest.fixture
def app(trained: TrainedRun) -> AppTest:
    """A fresh session on the Overview page, showing the module's run."""
    app = AppTest.from_file(APP, default_timeout=60)
    app.session_state["selected_settings"] = SETTINGS
    app.session_state["model_chosen"] = True
    return app.run()


def open_page(app: AppTest, name: str) -> AppTest:
    app.switch_page(f"views/{name}.py").run()
    assert not app.exception, [item.value for item in app.exception]
    return app


def metric(app: AppTest, label: str) -> str:
    values = [item.value for item in app.metric if item.label == label]
    assert len(values) == 1, f"expected one metric {label!r}, found {len(values)}"
    return values[0]


def png_of_test_image(index: int) -> bytes:
    """A test image as a user would upload it: eight times larger, dark ink on white paper."""
    picture = Image.fromarray(255 - mnist_model.load_mnist().test_images[index]).resize((224, 224), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_without_exception_or_error(app: AppTest, name: str) -> None:
    open_page(app, name)
    assert app.title[0].value
    assert not app.error, [item.value for item in app.error]


def test_overview_shows_the_runs_test_metrics_samples_and_balance(app: AppTest, trained) -> None:
    assert metric(app, "Test accuracy") == f"{trained.test_accuracy:.2%}"
    assert metric(app, "Test loss") == f"{trained.test_loss:.4f}"
    assert len(app.image) == 1
    assert len(app.get("plotly_chart")) == 1


def test_reshuffle_draws_new_sample_images(app: AppTest) -> None:
    seed = app.session_state["sample_seed"]
    next(button for button in app.button if button.label == "Reshuffle").click().run()
    assert app.session_state["sample_seed"] != seed
    assert not app.exception


def test_evaluation_counts_mistakes_like_mnist_model(app: AppTest, trained) -> None:
    data = mnist_model.load_mnist()
    reference = evaluate(trained.model, data.test_images, data.test_labels)
    open_page(app, "evaluation")
    assert metric(app, "Misclassified") == f"{len(reference.misclassified):,} of 10,000"
    assert len(app.dataframe[0].value) == 10
    off_diagonal = reference.confusion - np.diag(np.diag(reference.confusion))
    true_digit, predicted_digit = np.unravel_index(np.argmax(off_diagonal), off_diagonal.shape)
    app.selectbox(key="_widget_gallery_true").select(int(true_digit))
    app.selectbox(key="_widget_gallery_predicted").select(int(predicted_digit)).run()
    count = len(reference.mistakes(int(true_digit), int(predicted_digit)))
    assert any(caption.value.startswith(f"{count:,} images") for caption in app.caption)


def test_evaluation_shows_calibration_before_and_after(app: AppTest, trained) -> None:
    data = mnist_model.load_mnist()
    before, after = evaluate(trained.model, data.test_images, data.test_labels).reliability(trained.temperature)
    open_page(app, "evaluation")
    assert metric(app, "Calibration error before") == f"{before.error:.2%}"
    assert metric(app, "Calibration error after") == f"{after.error:.2%}"
    assert metric(app, "Temperature") == f"{trained.temperature:.3g}"
    assert after.error < 0.01  # calibrated on held-out images, within a point on the test set
    assert any("marked unsure" in caption.value for caption in app.caption)


def test_evaluation_explains_a_diagonal_choice(app: AppTest) -> None:
    open_page(app, "evaluation")
    app.selectbox(key="_widget_gallery_true").select(3)
    app.selectbox(key="_widget_gallery_predicted").select(3).run()
    assert any("correct prediction" in item.value for item in app.info)


def test_model_page_lists_every_layer_and_the_parameter_count(app: AppTest, trained) -> None:
    open_page(app, "model")
    assert len(app.dataframe[0].value) == len(trained.model.layers)
    assert metric(app, "Parameters") == f"{trained.model.count_params():,}"
    assert [button.label for button in app.download_button] == ["Model (.keras)", "Test predictions (.csv)"]


def test_training_page_lists_both_cached_runs(app: AppTest) -> None:
    open_page(app, "training")
    assert len(app.dataframe[0].value) == len(mnist_model.list_runs())
    assert len(mnist_model.list_runs()) >= 2


def test_training_form_shows_the_new_run_and_keeps_the_model_in_use(app: AppTest) -> None:
    open_page(app, "training")
    app.slider[0].set_value(1)
    next(button for button in app.button if button.label == "Train").click().run()
    assert not app.exception
    # The chosen settings are cached already: the page shows that run and offers it, without switching to it.
    assert app.session_state["watched_settings"] == OTHER_SETTINGS
    assert app.session_state["selected_settings"] == SETTINGS
    next(button for button in app.button if button.label == "Use this model").click().run()
    assert app.session_state["selected_settings"] == OTHER_SETTINGS


def test_predict_shows_what_the_model_predicts_for_a_test_index(app: AppTest, trained) -> None:
    data = mnist_model.load_mnist()
    predictor = Predictor(trained.model)
    open_page(app, "predict")
    for index in (0, 1234, 9999):
        app.number_input[0].set_value(index).run()
        digit, _, _ = predictor.predict_digit(data.test_images[index])
        assert metric(app, "Predicted digit") == str(digit)
        assert metric(app, "True label") == str(data.test_labels[index])


def chart_titles(app: AppTest) -> list[list[str]]:
    """Each Plotly chart's subplot titles, in page order."""
    specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return [[annotation["text"] for annotation in spec["layout"].get("annotations", [])] for spec in specs]


def test_predict_shows_where_the_model_looked_with_the_models_own_attribution(app: AppTest, trained) -> None:
    image = mnist_model.load_mnist().test_images[1234]
    reference = attribution.explain(trained.model, image)
    open_page(app, "predict")
    app.number_input[0].set_value(1234).run()
    assert any(item.value == f"**Where the model looked for its {reference.digit}**" for item in app.markdown)
    assert ["Integrated gradients", "Gradient"] in chart_titles(app)  # the dense network: no Grad-CAM
    black, this = formats.percent(reference.baseline_probability), formats.percent(reference.probability)
    rise = f"from {black} for a black image to {this}"
    assert any(rise in caption.value for caption in app.caption), [caption.value for caption in app.caption]
    # Inside the network: every computing layer of the dense network, with its values.
    layers = activations.activations(trained.model, image)
    for activation, caption in zip(layers, ["dense_1", "dense_2", "probabilities"], strict=True):
        last = activation.name == "probabilities"
        assert any(item.value == formats.activation_caption(activation, last=last) for item in app.caption), caption


def test_evaluation_explains_its_most_confident_mistake_for_both_digits(app: AppTest, trained) -> None:
    data = mnist_model.load_mnist()
    index = int(evaluate(trained.model, data.test_images, data.test_labels).mistakes()[0])
    predicted = int(Predictor(trained.model).predict_digit(data.test_images[index])[0])
    true = int(data.test_labels[index])
    explained = [attribution.explain(trained.model, data.test_images[index], digit) for digit in (predicted, true)]
    open_page(app, "evaluation")
    assert app.selectbox(key="why_index").value == index
    assert [
        f"For {predicted}, its answer ({explained[0].probability:.0%})",
        f"For {true}, the truth ({explained[1].probability:.0%})",
    ] in chart_titles(app)


def test_compare_counts_what_one_run_fixed_and_broke_against_the_other_as_mnist_model_does(
    app: AppTest, trained
) -> None:
    data = mnist_model.load_mnist()
    other = train(OTHER_SETTINGS)
    reference = compare(
        evaluate(trained.model, data.test_images, data.test_labels),
        evaluate(other.model, data.test_images, data.test_labels),
    )
    open_page(app, "compare")
    assert app.selectbox(key="_widget_compare_a").value == trained.key  # the model in use
    app.selectbox(key="_widget_compare_b").select(other.key).run()
    assert metric(app, "Fixed by B") == f"{len(reference.fixed):,}"
    assert metric(app, "Broken by B") == f"{len(reference.broken):,}"
    assert any(caption.value.startswith(f"{len(reference.fixed):,} images") for caption in app.caption)
    app.segmented_control(key="_widget_compare_kind").set_value("broke").run()
    assert any(caption.value.startswith(f"{len(reference.broken):,} images") for caption in app.caption)
    assert not app.exception


def test_an_answer_below_the_threshold_is_marked_unsure_and_a_sure_one_is_not(app: AppTest, trained) -> None:
    data = mnist_model.load_mnist()
    confidence = evaluate(trained.model, data.test_images, data.test_labels).confidence
    open_page(app, "predict")
    for index in (int(np.argmin(confidence)), int(np.argmax(confidence))):
        app.number_input[0].set_value(index).run()
        [shown] = [item for item in app.metric if item.label == "Confidence"]
        assert shown.value == f"{confidence[index]:.1%}"
        assert (shown.delta or None) == ("unsure" if confidence[index] < calibration.UNSURE_BELOW else None)
    assert confidence.min() < calibration.UNSURE_BELOW <= confidence.max()


def test_test_index_survives_a_page_switch(app: AppTest) -> None:
    open_page(app, "predict")
    app.number_input[0].set_value(4321).run()
    open_page(app, "overview")
    open_page(app, "predict")
    assert app.number_input[0].value == 4321


def test_random_button_picks_an_index_in_range(app: AppTest) -> None:
    open_page(app, "predict")
    next(button for button in app.button if button.label == "Random image").click().run()
    assert 0 <= app.number_input[0].value < 10000
    assert app.session_state["test_index"] == app.number_input[0].value


def test_selected_run_survives_a_page_switch(app: AppTest) -> None:
    # AppTest (Streamlit 1.67) drops the sidebar from its tree on reruns of an st.navigation app, so
    # the choice is made on the first run and checked through the pages that use it.
    app.sidebar.selectbox[0].select(OTHER_SETTINGS).run()
    open_page(app, "model")
    open_page(app, "training")
    assert app.session_state["selected_settings"] == OTHER_SETTINGS
    assert app.subheader[0].value == formats.short_settings(OTHER_SETTINGS)


def test_upload_shows_the_steps_and_the_models_prediction(app: AppTest, trained) -> None:
    upload = png_of_test_image(7)
    expected, _, _ = Predictor(trained.model).predict_digit(images.preprocess_file(upload).model_input)
    app.session_state["predict_tab"] = "Upload an image"
    open_page(app, "predict")
    app.file_uploader[0].upload("seven.png", upload, "image/png").run()
    assert not app.error, [item.value for item in app.error]
    assert metric(app, "Predicted digit") == str(expected)
    assert len(app.image) == 4


def test_before_the_detector_is_ready_an_upload_is_read_as_a_digit_and_the_page_says_so(
    app: AppTest, trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a freshly started server, whose detector is still being trained.
    monkeypatch.setattr(mnist_model.engine.Engine, "digit_scores", lambda self, inputs: None)
    app.session_state["predict_tab"] = "Upload an image"
    open_page(app, "predict")
    app.file_uploader[0].upload("seven.png", png_of_test_image(7), "image/png").run()
    assert not app.exception and not app.error
    assert metric(app, "Predicted digit")
    assert any("getting ready" in item.value for item in app.caption)


def test_an_upload_that_is_no_digit_is_answered_so_with_a_reason(app: AppTest, trained) -> None:
    engine = state.engine()
    probe = np.zeros((1, 28, 28), dtype=np.float32)
    # The first request starts the detector's training (or finds the one another test trained).
    deadline = time.monotonic() + 300
    while engine.digit_scores(probe) is None and time.monotonic() < deadline:
        time.sleep(1)
    things = Image.new("L", (300, 200), 235)
    ImageDraw.Draw(things).ellipse((40, 40, 170, 150), fill=40)
    ImageDraw.Draw(things).rectangle((120, 90, 260, 170), fill=90)
    buffer = io.BytesIO()
    things.save(buffer, "PNG")
    app.session_state["predict_tab"] = "Upload an image"
    open_page(app, "predict")
    app.file_uploader[0].upload("things.png", buffer.getvalue(), "image/png").run()
    assert not app.exception and not app.error
    assert metric(app, "Answer") == "Not a digit"
    assert any("does not look like" in item.value for item in app.warning)


def test_an_uploaded_number_is_read_digit_by_digit(app: AppTest, trained) -> None:
    data = mnist_model.load_mnist()
    # Four test images side by side, light on dark, as one picture of a number.
    indices = [int(np.flatnonzero(data.test_labels == digit)[0]) for digit in (2, 0, 2, 6)]
    row = np.concatenate([np.pad(data.test_images[index], ((6, 6), (2, 2))) for index in indices], axis=1)
    buffer = io.BytesIO()
    Image.fromarray(row).resize((row.shape[1] * 4, row.shape[0] * 4), Image.Resampling.BICUBIC).save(buffer, "PNG")
    prepared = images.preprocess_file(buffer.getvalue())
    assert prepared.is_number and len(prepared.digits) == 4
    expected = "".join(str(d) for d in Predictor(trained.model).predict(prepared.digit_inputs).argmax(1))
    app.session_state["predict_tab"] = "Upload an image"
    open_page(app, "predict")
    app.file_uploader[0].upload("2026.png", buffer.getvalue(), "image/png").run()
    assert not app.error and not app.exception
    assert metric(app, "Read as the number") == expected
    # As uploaded, grey, the number cropped, and the four digits.
    assert len(app.image) == 3 + 4


@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.png", b"this is a text file, not a picture"), ("empty.png", b""), ("cut.png", b"\x89PNG\r\n\x1a\n\0\0")],
)
def test_a_refused_upload_shows_a_message_and_the_page_keeps_working(app: AppTest, name: str, content: bytes) -> None:
    app.session_state["predict_tab"] = "Upload an image"
    open_page(app, "predict")
    app.file_uploader[0].upload(name, content, "image/png").run()
    assert not app.exception
    assert any("cannot be used" in item.value for item in app.error)
    app.file_uploader[0].set_value(("seven.png", png_of_test_image(7), "image/png")).run()
    assert not app.error
    assert metric(app, "Predicted digit")


def test_a_stopped_training_is_information_and_the_model_in_use_stays(app: AppTest) -> None:
    engine = state.engine()
    settings = mnist_model.TrainingSettings(epochs=200, seed=12)
    status = engine.submit(settings, owner="another session")
    with pytest.raises(mnist_model.engine.EngineError, match="Only the session that started"):
        engine.stop(status.job_id, "this session")
    engine.stop(status.job_id, "another session")
    deadline = time.monotonic() + 60
    while engine.job(settings).active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert engine.job(settings).state == "stopped"
    app.session_state["watched_settings"] = settings
    open_page(app, "training")
    assert not app.error, [item.value for item in app.error]
    assert any("stopped" in item.value.lower() and "did not change" in item.value for item in app.info)
    assert app.session_state["selected_settings"] == SETTINGS
    open_page(app, "evaluation")
    assert metric(app, "Test accuracy")


def test_training_settings_each_explain_what_they_change(app: AppTest) -> None:
    open_page(app, "training")
    helps = {widget.label: widget.help for widget in [*app.slider, *app.select_slider, *app.checkbox]}
    assert helps["Epochs"] == formats.EPOCHS_HELP
    assert helps["Batch size"] == formats.BATCH_SIZE_HELP
    assert helps["Learning rate"] == formats.LEARNING_RATE_HELP
    assert helps["Augment"] == formats.AUGMENTATION_HELP


def test_training_page_explains_validation_above_training_accuracy(app: AppTest, trained) -> None:
    open_page(app, "training")
    last = trained.history[-1]
    explained = any(
        "validation accuracy above training accuracy" in caption.value.lower() and "augmented" in caption.value
        for caption in app.caption
    )
    assert explained == (last.val_accuracy > last.accuracy)


def test_cached_runs_show_readable_dates(app: AppTest) -> None:
    open_page(app, "training")
    trained_column = app.dataframe[0].value["trained"]
    assert all("UTC" in value and "T" not in value.split(",")[0] for value in trained_column), list(trained_column)


def test_per_digit_scores_share_one_number_format(app: AppTest) -> None:
    open_page(app, "evaluation")
    table = app.dataframe[0].value
    shares = [value for name in ("precision", "recall", "f1") for value in table[name]]
    assert all(re.fullmatch(r"(\d{1,3}\.\d%|<0\.1%|>99\.9%)", value) for value in shares), shares


def test_a_refused_file_of_another_type_is_named_in_the_message(app: AppTest) -> None:
    app.session_state["predict_tab"] = "Upload an image"
    open_page(app, "predict")
    app.file_uploader[0].upload("seven.png", png_of_test_image(7), "image/png").run()
    app.file_uploader[0].set_value(("list.txt", b"eggs, milk, flour", "text/plain")).run()
    assert not app.exception
    messages = [item.value for item in app.error]
    assert len(messages) == 1 and "list.txt" in messages[0].replace("\\", ""), messages
