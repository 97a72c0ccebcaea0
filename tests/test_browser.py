"""The dashboard in a real browser: `streamlit run` on a local port, driven by headless Chromium.

One server is started for the module with an empty artifacts folder, so its first visitor sees the
default model trained once, with progress. Each test then opens a page in a session of its own,
straight from its URL, and checks what it shows against ``mnist_model`` run here: the test metrics,
a cell of the confusion matrix, the digit for a test index, an upload, a number, something that is
not a digit, a drawing, a file that is not an image, an upload flagged with its right digit and
scored on My digits, the map of the test set and a point clicked on it. Each page's screenshot goes to
``test-output/screenshots/``.

Needs Chromium (``$CHROMIUM``, or ``chromium`` on the PATH, as Debian's package installs it; see the
``browser`` fixture) and the ``playwright`` package; nothing is downloaded.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Locator, Page, expect

import mnist_model
from dashboard import formats
from mnist_model import artifacts as store
from mnist_model import attribution, images, mydigits
from mnist_model.evaluation import evaluate
from mnist_model.predict import Predictor
from mnist_model.training import TrainedRun, train
from reliability.processes import Dashboard, websocket_handshake

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
# The first visit trains the default model (seconds on a laptop, several minutes on a slow runner).
FIRST_TRAINING_SECONDS = 900
PAGE_SECONDS = 30


@pytest.fixture(scope="module")
def server(mnist_path: Path, tmp_path_factory: pytest.TempPathFactory, trained_detector) -> Iterator[tuple[str, Path]]:
    """The dashboard's URL and its (initially empty) artifacts folder."""
    artifacts = tmp_path_factory.mktemp("browser-artifacts")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    environment = {"MNIST_DATA": str(mnist_path), "MNIST_MY_DIGITS": str(artifacts / "my-digits")}
    with Dashboard(artifacts, SCREENSHOTS.parent / "streamlit-server.log", **environment) as dashboard:
        yield dashboard.url, artifacts
        # A server that died takes every later test of the module with it: say why, once.
        assert dashboard.healthy(), f"the dashboard server stopped; the end of its log:\n{dashboard.log_text()[-3000:]}"
        assert dashboard.tracebacks() == 0, dashboard.log_text()[-3000:]


def metric_value(page: Page, label: str) -> Locator:
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)
    )
    return metric.locator('[data-testid="stMetricValue"]')


def open_page(page: Page, title: str, heading: str | None = None) -> None:
    """Click a page in the sidebar and wait for its heading (the page title unless given)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(heading or title, timeout=PAGE_SECONDS * 1000)


def settled(page: Page) -> None:
    """Wait until the script run is over, no placeholder is left (Streamlit shows one while a chart's
    code loads) and every Plotly chart has drawn, then for two more frames."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=PAGE_SECONDS * 1000)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=PAGE_SECONDS * 1000)
    charts = page.get_by_test_id("stPlotlyChart")
    for chart in (charts.nth(index) for index in range(charts.count())):
        if chart.is_visible():  # not in a closed expander or another tab
            expect(chart.locator(".main-svg").first).to_be_visible(timeout=PAGE_SECONDS * 1000)
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def screenshot(page: Page, name: str) -> None:
    """The whole page: the viewport is stretched to the height of the app's scrolling main area."""
    settled(page)
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(max(height, 900), 3000)})
    settled(page)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")
    page.set_viewport_size({"width": 1400, "height": 900})


def upload_file(tmp_path: Path, test_index: int) -> Path:
    """A MNIST test image as people photograph digits: eight times larger, dark ink on white."""
    path = tmp_path / f"digit-{test_index}.png"
    digit = mnist_model.load_mnist().test_images[test_index]
    Image.fromarray(255 - digit).resize((224, 224), Image.Resampling.NEAREST).save(path)
    return path


@pytest.fixture(scope="module")
def run(server, browser: Browser) -> TrainedRun:
    """The default model, trained by the server for its first visitor (the module's first test), then
    loaded here from the server's cache."""
    url, artifacts = server
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    expect(metric_value(page, "Test accuracy")).to_have_text(re.compile(r"%$"), timeout=FIRST_TRAINING_SECONDS * 1000)
    page.close()
    return train(mnist_model.TrainingSettings(), artifacts_dir=artifacts)


@pytest.fixture(scope="module")
def predictor(run: TrainedRun) -> Predictor:
    return Predictor(run.model)


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[str, str], Page]]:
    """Opens a new session straight on a URL and waits for the page's heading; closed after the test."""
    opened: list[Page] = []

    def open_at(url: str, heading: str) -> Page:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        opened.append(page)
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading, timeout=PAGE_SECONDS * 1000)
        return page

    yield open_at
    for page in opened:
        page.close()


def test_the_first_visit_trains_the_default_model_and_shows_its_test_accuracy(server, new_page, run) -> None:
    url, _ = server
    assert run.from_cache, "the server should have cached the run it trained"
    page = new_page(url, "MNIST digit classifier")
    expect(metric_value(page, "Test accuracy")).to_have_text(f"{run.test_accuracy:.2%}", timeout=PAGE_SECONDS * 1000)
    screenshot(page, "overview")


def test_the_training_page_lists_the_cached_runs(server, new_page, run) -> None:
    page = new_page(f"{server[0]}/training", "Training")
    expect(page.get_by_text("Cached runs")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    screenshot(page, "training")


def test_a_click_on_the_confusion_matrix_shows_that_cells_images(server, new_page, run, mnist) -> None:
    page = new_page(f"{server[0]}/evaluation", "Evaluation")
    expect(page.get_by_text("Misclassified test images")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    screenshot(page, "evaluation")
    confusion = evaluate(run.model, mnist.test_images, mnist.test_labels).confusion
    matrix = page.locator('[data-testid="stPlotlyChart"]').first
    column = matrix.locator(".xtick text", has_text="3")
    row = matrix.locator(".ytick text", has_text="5")
    expect(column).to_be_visible()
    column, row = column.bounding_box(), row.bounding_box()
    page.mouse.click(column["x"] + column["width"] / 2, row["y"] + row["height"] / 2)
    expect(page.get_by_text(f"{confusion[5, 3]:,} images, most confident")).to_be_visible(timeout=PAGE_SECONDS * 1000)


MAP_SECONDS = 180  # a first t-SNE map of the test set, on a loaded machine


def map_point_count(page: Page, expected: int) -> int:
    """How many test images the map on the page draws (its traces that carry test indices), once that is
    ``expected`` or ``PAGE_SECONDS`` have passed (a chart drawn again takes a moment to update)."""
    count = None
    for _ in range(PAGE_SECONDS * 4):
        count = page.evaluate(
            """() => document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot')._fullData
                .filter(trace => trace.visible === true && trace.customdata)
                .reduce((count, trace) => count + trace._length, 0)"""
        )
        if count == expected:
            break
        page.wait_for_timeout(250)
    return count


def map_pixel(page: Page, x: float, y: float) -> tuple[float, float]:
    """Where on the page the map draws the point (x, y) of its data, with the map scrolled into view."""
    return page.evaluate(
        """([x, y]) => {
            const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
            plot.scrollIntoView({block: "center"});
            const box = plot.getBoundingClientRect(), layout = plot._fullLayout;
            return [box.left + layout._size.l + layout.xaxis.d2p(x), box.top + layout._size.t + layout.yaxis.d2p(y)];
        }""",
        [float(x), float(y)],
    )


def test_the_map_shows_every_test_image_and_a_click_opens_one(server, new_page, run, mnist) -> None:
    url, artifacts = server
    result = evaluate(run.model, mnist.test_images, mnist.test_labels)
    page = new_page(f"{url}/map", "Map of the test set")
    expect(page.get_by_text("PCA's two axes")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    settled(page)
    assert map_point_count(page, 10_000) == 10_000
    page.get_by_text("t-SNE", exact=True).click()
    expect(page.get_by_text("t-SNE puts images")).to_be_visible(timeout=MAP_SECONDS * 1000)
    settled(page)
    assert map_point_count(page, 10_000) == 10_000
    tsne = store.read_projection(artifacts, run.key, "tsne")
    assert tsne is not None, "the t-SNE map should be kept with the run"
    page.get_by_text("Mistakes only").click()
    expect(page.get_by_text("Click a point")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    settled(page)
    assert map_point_count(page, len(result.misclassified)) == len(result.misclassified)
    # A click on the most confident mistake opens it, with the model's answer and where it looked.
    index = int(result.mistakes()[0])
    x, y = map_pixel(page, *tsne.coordinates[index])
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    opened = page.get_by_role("heading", name=re.compile(r"^Test image #\d+$"))
    expect(opened).to_be_visible(timeout=PAGE_SECONDS * 1000)
    chosen = int(opened.inner_text().split("#")[1])
    assert chosen in result.misclassified  # the point under the pointer: this mistake or one drawn over it
    expect(metric_value(page, "Predicted digit")).to_have_text(str(result.predictions[chosen]))
    expect(metric_value(page, "True label")).to_have_text(str(result.labels[chosen]))
    explained = attribution.explain(run.model, mnist.test_images[chosen])
    expect(page.get_by_text(f"Where the model looked for its {explained.digit}")).to_be_visible(
        timeout=PAGE_SECONDS * 1000
    )
    page.get_by_text("Mistakes only").click()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    screenshot(page, "map")


def test_the_model_page_counts_the_parameters_of_the_model_in_use(server, new_page, run) -> None:
    page = new_page(f"{server[0]}/model", "Model")
    expect(metric_value(page, "Parameters")).to_have_text(f"{run.model.count_params():,}", timeout=PAGE_SECONDS * 1000)
    screenshot(page, "model")


def test_a_test_index_shows_the_digit_the_model_predicts_and_survives_a_page_switch(
    server, new_page, predictor: Predictor, mnist
) -> None:
    page = new_page(f"{server[0]}/predict", "Predict")
    index_input = page.get_by_label("Test image (0 to 9999)")
    for index in (1234, 8):
        index_input.fill(str(index))
        index_input.press("Enter")
        expect(page.get_by_text(f"Test image #{index}")).to_be_visible(timeout=PAGE_SECONDS * 1000)
        digit, _, _ = predictor.predict_digit(mnist.test_images[index])
        expect(metric_value(page, "Predicted digit")).to_have_text(str(digit))
    # Where the model looked: the maps of the model in use, with its own figures in the note.
    explained = attribution.explain(predictor.model, mnist.test_images[8])
    expect(page.get_by_text(f"Where the model looked for its {explained.digit}")).to_be_visible(
        timeout=PAGE_SECONDS * 1000
    )
    rise = f"from {formats.percent(explained.baseline_probability)} for a black image to"
    expect(page.get_by_text(rise)).to_be_visible()
    for title in ("Integrated gradients", "Gradient"):
        expect(page.locator(".annotation-text", has_text=title).first).to_be_visible()
    screenshot(page, "predict")
    page.get_by_text("Inside the network").click()
    expect(page.get_by_text(re.compile(r"^dense_1 \(Dense\): 128 units"))).to_be_visible(timeout=PAGE_SECONDS * 1000)
    screenshot(page, "predict-inside")
    open_page(page, "Overview", "MNIST digit classifier")
    open_page(page, "Predict")
    expect(page.get_by_label("Test image (0 to 9999)")).to_have_value("8")


def upload_tab(new_page, url: str) -> tuple[Page, Locator]:
    """A new session on the Predict page's upload tab, and its file input."""
    page = new_page(f"{url}/predict", "Predict")
    page.get_by_role("tab", name="Upload an image").click()
    return page, page.locator('[data-testid="stFileUploaderDropzoneInput"]')


def test_an_upload_is_read_and_a_file_that_is_not_an_image_is_refused(
    server, new_page, predictor: Predictor, tmp_path: Path
) -> None:
    page, uploader = upload_tab(new_page, server[0])
    good = upload_file(tmp_path, 7)
    expected, _, _ = predictor.predict_digit(images.preprocess_file(good.read_bytes()).model_input)
    uploader.set_input_files(good)
    expect(metric_value(page, "Predicted digit")).to_have_text(str(expected), timeout=PAGE_SECONDS * 1000)
    expect(page.get_by_text("28x28 input")).to_be_visible()
    screenshot(page, "predict-upload")
    # A file that is not an image: a clear message, no traceback, and the page keeps working.
    bad = tmp_path / "notes.png"
    bad.write_text("shopping list: eggs, milk")
    uploader.set_input_files(bad)
    expect(page.get_by_text("This file cannot be used.")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    uploader.set_input_files(good)
    expect(metric_value(page, "Predicted digit")).to_have_text(str(expected), timeout=PAGE_SECONDS * 1000)


def test_a_number_is_read_digit_by_digit_and_some_objects_are_not_a_digit(
    server, new_page, predictor: Predictor, mnist, tmp_path: Path
) -> None:
    page, uploader = upload_tab(new_page, server[0])
    first_of = {digit: mnist.test_images[int(np.flatnonzero(mnist.test_labels == digit)[0])] for digit in range(10)}
    row = np.concatenate([np.pad(first_of[int(digit)], ((6, 6), (3, 3))) for digit in "2026"], axis=1)
    number = tmp_path / "2026.png"
    Image.fromarray(255 - row).resize((row.shape[1] * 4, row.shape[0] * 4), Image.Resampling.BICUBIC).save(number)
    prepared = images.preprocess_file(number.read_bytes())
    read = "".join(str(digit) for digit in predictor.predict(prepared.digit_inputs).argmax(axis=1))
    uploader.set_input_files(number)
    expect(metric_value(page, "Read as the number")).to_have_text(read, timeout=PAGE_SECONDS * 1000)
    screenshot(page, "predict-number")
    things = Image.new("L", (300, 200), 235)
    ImageDraw.Draw(things).ellipse((40, 40, 170, 150), fill=40)
    ImageDraw.Draw(things).rectangle((120, 90, 260, 170), fill=90)
    things.save(tmp_path / "things.png")
    uploader.set_input_files(tmp_path / "things.png")
    expect(metric_value(page, "Answer")).to_have_text("Not a digit", timeout=PAGE_SECONDS * 1000)
    screenshot(page, "predict-not-a-digit")


def test_an_upload_flagged_with_its_right_digit_is_scored_on_the_my_digits_page(
    server, new_page, predictor: Predictor, mnist, tmp_path: Path
) -> None:
    url, artifacts = server
    page, uploader = upload_tab(new_page, url)
    flagged = upload_file(tmp_path, 7)
    label = int(mnist.test_labels[7])
    answer, _, _ = predictor.predict_digit(images.preprocess_file(flagged.read_bytes()).model_input)
    uploader.set_input_files(flagged)
    expect(metric_value(page, "Predicted digit")).to_have_text(str(answer), timeout=PAGE_SECONDS * 1000)
    form = page.get_by_test_id("stForm")
    expect(form.get_by_text("Wrong? The right digit is")).to_be_visible()
    form.get_by_role("radio", name=str(label), exact=True).click()
    form.get_by_role("button", name="Save to my digits").click()
    expect(page.get_by_text(f"Saved to my digits as a {label}")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    screenshot(page, "predict-flag")
    [entry] = mydigits.load(artifacts / "my-digits").entries
    assert (entry.label, entry.source, entry.predicted) == (label, "upload", answer)
    # More digits saved meanwhile (as from other sessions), some of them hard: the page scores them all.
    others = [0, 1, 2, 3, 4, 247, 321, 445, 582, 659]
    for index in others:
        mydigits.add(
            artifacts / "my-digits",
            upload_file(tmp_path, index).read_bytes(),
            name=f"digit-{index}.png",
            label=int(mnist.test_labels[index]),
            source="upload",
        )
    indices = [7, *others]
    inputs = np.stack([images.preprocess_file(upload_file(tmp_path, i).read_bytes()).model_input for i in indices])
    right = int(sum(predictor.predict(inputs).argmax(axis=1) == mnist.test_labels[indices]))
    open_page(page, "My digits")
    expect(metric_value(page, "Images saved")).to_have_text(str(len(indices)), timeout=PAGE_SECONDS * 1000)
    expect(metric_value(page, "Read right")).to_have_text(f"{right} of {len(indices)}")
    expect(metric_value(page, "The model in use reads")).to_have_text(formats.percent(right / len(indices)))
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    expect(page.get_by_role("button", name="My digits (.zip)")).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    screenshot(page, "my-digits")


def test_a_stroke_drawn_down_the_canvas_reads_as_a_one(server, new_page, run) -> None:
    page = new_page(f"{server[0]}/predict", "Predict")
    page.get_by_role("tab", name="Draw a digit").click()
    expect(page.get_by_text("Draw a digit (or a number of a few digits) in the black box")).to_be_visible(
        timeout=PAGE_SECONDS * 1000
    )
    canvas = page.locator('[data-testid="stMain"] canvas').last
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for step in range(1, 13):
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.2 + 0.05 * step))
    page.mouse.up()
    expect(metric_value(page, "Predicted digit")).to_have_text("1", timeout=PAGE_SECONDS * 1000)
    expect(page.get_by_text("Where the model looked for its 1")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    screenshot(page, "predict-draw")


def test_a_new_training_shows_everywhere_at_once_and_a_stop_keeps_the_model_in_use(
    server, browser: Browser, run
) -> None:
    url, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/training")
    expect(page.get_by_role("heading", level=1)).to_have_text("Training", timeout=PAGE_SECONDS * 1000)
    expect(page.get_by_text("Cached runs")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    # Fifteen epochs instead of ten: settings nobody has trained.
    epochs = page.locator('[data-testid="stSlider"]').first.get_by_role("slider")
    for _ in range(5):
        epochs.press("ArrowRight")
    page.get_by_role("button", name="Train").click()
    sidebar = page.locator('[data-testid="stSidebar"]')
    # The sidebar shows the job as soon as the page has run, not at its next poll.
    expect(sidebar.get_by_text("(yours)")).to_be_visible(timeout=5_000)
    expect(page.get_by_text("The model in use stays")).to_be_visible()
    page.get_by_role("button", name="Stop training").click()
    expect(page.get_by_text("the model in use did not change")).to_be_visible(timeout=PAGE_SECONDS * 1000)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
    # Every page still shows the model that was in use.
    open_page(page, "Evaluation")
    expect(metric_value(page, "Test accuracy")).to_have_text(re.compile(r"%$"), timeout=PAGE_SECONDS * 1000)
    expect(sidebar.get_by_text(mnist_model.TrainingSettings().describe())).to_be_visible()
    page.close()


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1:{port}", 101), ("localhost:{port}", 101), ("rebound.example", 403), ("rebound.example:{port}", 403)],
)
def test_only_this_machines_own_names_may_open_a_session(server, host: str, status: int) -> None:
    # A page elsewhere whose name resolves to this machine (DNS rebinding) must not get a session.
    url, _ = server
    assert websocket_handshake(url, host.format(port=urllib.parse.urlsplit(url).port)) == status
