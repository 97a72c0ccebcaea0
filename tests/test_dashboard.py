"""The dashboard's pages under Streamlit's AppTest: each renders, shows what it should, and answers its inputs.

The pages run in this process against the work engine on a local Ray instance started for the
module, with a small run trained once on the real MNIST copy (three epochs of the dense network)
into a temporary artifacts folder. What a page shows is checked against values computed here
directly with ``mnist_model``, from the same cached run loaded in this process.
"""

from __future__ import annotations

import base64
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
from mnist_model import activations, attribution, calibration, images, mydigits, projection
from mnist_model.evaluation import compare, evaluate
from mnist_model.predict import Predictor
from mnist_model.training import TrainedRun, train

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
# Settings no other test module trains, so the process-wide job for them is this module's alone.
SETTINGS = mnist_model.TrainingSettings(epochs=3, seed=11)
OTHER_SETTINGS = mnist_model.TrainingSettings(epochs=1, seed=11)
PAGES = ["overview", "training", "evaluation", "map", "compare", "model", "predict", "mydigits"]


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


def plotted(trace: dict, name: str) -> np.ndarray:
    """A trace's array ``name`` from a chart's spec, as Plotly writes it: a list or base64 typed bytes."""
    value = trace.get(name, [])
    if isinstance(value, dict):
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return array.reshape([int(side) for side in str(value.get("shape", len(array))).split(",")])
    return np.asarray(value)


def map_points(app: AppTest) -> np.ndarray:
    """The test indices of the points on the page's map (its first chart), in trace order."""
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    return np.concatenate([plotted(trace, "customdata")[:, 0] for trace in spec["data"] if "customdata" in trace])


def test_the_map_places_every_test_image_by_the_pca_of_its_penultimate_layer(app: AppTest, trained) -> None:
    data = mnist_model.load_mnist()
    reference = projection.project(trained.model, data.test_images, "pca")
    wrong = evaluate(trained.model, data.test_images, data.test_labels).misclassified
    open_page(app, "map")
    assert not app.error, [item.value for item in app.error]
    assert sorted(map_points(app).astype(int)) == list(range(10_000))
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert {trace["type"] for trace in spec["data"]} == {"scattergl"}
    share = reference.explained_variance[0]
    assert spec["layout"]["xaxis"]["title"]["text"] == f"first principal component ({share:.1%} of the variance)"
    assert any("dense_2" in caption.value and "128 values" in caption.value for caption in app.caption)
    assert any("Click a point" in item.value for item in app.info)
    app.toggle(key="map_mistakes").set_value(True).run()
    assert sorted(map_points(app).astype(int)) == sorted(wrong.tolist())


def test_the_t_sne_map_is_computed_by_the_engine_and_kept_with_the_run(app: AppTest, trained) -> None:
    open_page(app, "map")
    app.radio(key="_widget_map_method").set_value("tsne").run()
    assert not app.exception and not app.error
    assert sorted(map_points(app).astype(int)) == list(range(10_000))
    kept = mnist_model.artifacts.read_projection(mnist_model.config.artifacts_dir(), trained.key, "tsne")
    assert kept is not None and kept.coordinates.shape == (10_000, 2)
    assert any("t-SNE puts images" in caption.value for caption in app.caption)


def test_a_point_chosen_on_the_map_shows_its_image_answer_and_attribution(app: AppTest, trained) -> None:
    data = mnist_model.load_mnist()
    index = int(evaluate(trained.model, data.test_images, data.test_labels).mistakes()[0])
    predicted = int(Predictor(trained.model).predict_digit(data.test_images[index])[0])
    explained = attribution.explain(trained.model, data.test_images[index])
    open_page(app, "map")
    app.session_state["map_index"] = index  # what a click on the point sets
    app.run()
    assert any(item.value == f"Test image #{index}" for item in app.subheader)
    assert metric(app, "Predicted digit") == str(predicted)
    assert metric(app, "True label") == str(data.test_labels[index])
    assert any(item.value == f"**Where the model looked for its {explained.digit}**" for item in app.markdown)
    assert ["Integrated gradients", "Gradient"] in chart_titles(app)


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


@pytest.fixture
def my_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder for my digits, this test's own."""
    folder = tmp_path / "my-digits"
    monkeypatch.setenv("MNIST_MY_DIGITS", str(folder))
    return folder


def flag_upload(app: AppTest, name: str, upload: bytes, digit: int | None) -> AppTest:
    """Upload a file on Predict, then say that the right digit is ``digit`` and save it."""
    app.file_uploader[0].upload(name, upload, "image/png").run()
    if digit is not None:
        app.segmented_control(key="flag_upload_digit").set_value(digit)
    next(button for button in app.button if button.label == "Save to my digits").click().run()
    assert not app.exception, [item.value for item in app.exception]
    return app


def test_an_upload_flagged_with_its_right_digit_is_saved_and_every_run_scored_on_it(
    app: AppTest, trained, my_digits: Path
) -> None:
    data = mnist_model.load_mnist()
    uploads = {index: png_of_test_image(index) for index in (7, 0)}
    # The first with its true label; the second labelled wrongly on purpose, so one of them at most is right.
    labels = {7: int(data.test_labels[7]), 0: (int(data.test_labels[0]) + 1) % 10}
    app.session_state["predict_tab"] = "Upload an image"
    open_page(app, "predict")
    for index, upload in uploads.items():
        flag_upload(app, f"test-{index}.png", upload, labels[index])
        assert any(f"Saved to my digits as a **{labels[index]}**" in item.value for item in app.success)
    assert any("on this dashboard's server only" in caption.value for caption in app.caption)
    saved = mydigits.load(my_digits)
    assert [(entry.label, entry.source, entry.name) for entry in saved.entries] == [
        (labels[7], "upload", "test-7.png"),
        (labels[0], "upload", "test-0.png"),
    ]
    assert [(my_digits / entry.file).read_bytes() for entry in saved.entries] == list(uploads.values())
    # Every cached run, scored here in process on the same preprocessing, against the page's table.
    inputs = np.stack([images.preprocess_file(upload).model_input for upload in uploads.values()])
    expected = {}
    for settings in (SETTINGS, OTHER_SETTINGS):
        answers = Predictor(train(settings).model).predict(inputs).argmax(axis=1)
        expected[formats.short_settings(settings)] = int(sum(answers == [labels[7], labels[0]]))
    predicted = Predictor(trained.model).predict(inputs).argmax(axis=1)
    assert [entry.predicted for entry in saved.entries] == [int(digit) for digit in predicted]
    open_page(app, "mydigits")
    assert not app.error, [item.value for item in app.error]
    table = app.dataframe[0].value
    assert len(table) == len(mnist_model.list_runs())
    rows = {row["model"]: row for row in table.to_dict("records")}
    for model, right in expected.items():
        assert rows[model]["right"] == f"{right} of 2"
        assert rows[model]["my digits"] == formats.percent(right / 2)
    assert rows[formats.short_settings(SETTINGS)]["in use"]
    assert [row["default"] for row in rows.values()] == [
        row["model"] == formats.short_settings(mnist_model.TrainingSettings.default()) for row in rows.values()
    ]
    assert len(app.image) == 1  # one gallery of both images
    assert [button.label for button in app.download_button] == ["My digits (.zip)"]


def test_my_digits_explains_an_empty_set_instead_of_an_empty_table(app: AppTest, my_digits: Path) -> None:
    open_page(app, "mydigits")
    assert any("No digits saved yet" in item.value for item in app.info)
    assert not app.dataframe and not app.error


def test_a_save_without_a_digit_or_over_the_bound_says_why_and_saves_nothing(
    app: AppTest, my_digits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.session_state["predict_tab"] = "Upload an image"
    open_page(app, "predict")
    flag_upload(app, "seven.png", png_of_test_image(7), None)
    assert any("Pick the digit the image really shows" in item.value for item in app.warning)
    monkeypatch.setattr(mydigits, "MAX_IMAGES", 0)
    flag_upload(app, "seven.png", png_of_test_image(7), 9)
    assert any("holds at most 0 images" in item.value for item in app.warning), [w.value for w in app.warning]
    assert not app.error
    assert mydigits.load(my_digits).entries == ()


def test_one_image_and_then_all_can_be_deleted_from_my_digits(app: AppTest, my_digits: Path) -> None:
    for index in (1, 2):
        mydigits.add(my_digits, png_of_test_image(index), name=f"{index}.png", label=index, source="upload")
    open_page(app, "mydigits")
    newest = mydigits.load(my_digits).entries[-1]
    assert app.selectbox(key="my_digits_delete").value == newest.file
    next(button for button in app.button if button.label == "Delete this image").click().run()
    assert [entry.name for entry in mydigits.load(my_digits).entries] == ["1.png"]
    next(button for button in app.button if button.label == "Yes, delete all 1 images").click().run()
    assert not app.exception
    assert mydigits.load(my_digits).entries == ()
    assert any("No digits saved yet" in item.value for item in app.info)
