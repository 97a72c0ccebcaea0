"""How fast the dashboard answers, how light its web process stays, and how it holds up under many sessions.

Every figure comes from real ``streamlit run`` servers (:class:`reliability.processes.Dashboard`, each
starting its own local Ray instance at its first page view) driven by headless Chromium. Sections,
each selectable with ``--only``:

first-page  a fresh server on a pre-filled artifacts folder, each repetition: seconds from
            ``streamlit run`` to the Overview showing the cached model's test accuracy; to the
            server's log line "connected to the model engine"; to a first prediction on Predict.
switch      on a warmed server: a page switch from the sidebar, until the new page's last section shows.
index       on a warmed server: a new test index typed, until its image and prediction show.
upload      on a warmed server: an image file uploaded, until its predicted digit shows.
my-digits   on a warmed server with 50 images saved to my digits: a switch to the My digits page, after its
            first computation, until its last section shows (every cached run scored, the gallery drawn).
map         on a warmed server, the run's maps of the test set removed from the store first: the first
            PCA and t-SNE maps (computed by the engine, seconds until drawn, and the engine's own
            compute time), then a switch from the Overview to the Map page and a switch between the
            two cached maps, each until the map of 10,000 points has drawn.
memory      the web process's resident memory, steady, after every page and a prediction, and
            whether any ``libtensorflow*.so`` is mapped into it.
starts      fresh servers; every page opened within 5 s of the health check answering and watched
            for 10 s: pages showing an exception, tracebacks in the server log.
training-8  an empty artifacts folder, so the first visit trains the default model: eight sessions
            watching it against one session, from the first page opened until "Test accuracy"
            shows, with the training time the run itself recorded.
queue       five sessions each pressing Train with five different epoch counts, as fast as a person
            could: jobs running and queued at most (polled from the engine), refusals shown, the
            server's peak memory, exceptions on the pages.

    MNIST_DATA=/path/to/mnist.npz python -m benchmarks.bench_dashboard [--only SECTION ...]
        [--repeats 10] [--first-page-repeats 5] [--starts 20] [--training-repeats 1] [--artifacts DIR]

Needs Chromium (``$CHROMIUM`` or ``chromium`` on the PATH). The servers serve the dense network (see
``suite_environment``), which is trained once at the start with ``python -m mnist_model train
--architecture mlp`` (into ``--artifacts DIR``, when given, so that the next run loads it instead).
Results: a table on standard output, every sample in ``benchmarks/results/dashboard.json``, each
server's log in ``benchmarks/results/dashboard-logs/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

from mnist_model import artifacts, mydigits
from mnist_model.data import load_mnist
from mnist_model.settings import TrainingSettings
from reliability.browser import chromium
from reliability.processes import Dashboard, resident_mb

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "benchmarks" / "results" / "dashboard.json"
LOGS = PROJECT / "benchmarks" / "results" / "dashboard-logs"
SECTIONS = ("first-page", "switch", "index", "upload", "my-digits", "map", "memory", "starts", "training-8", "queue")
WARMED = ("switch", "index", "upload", "my-digits", "map", "memory")
# Images saved to my digits for the my-digits section.
MY_DIGITS_COUNT = 50
VIEWPORT = {"width": 1400, "height": 900}

# Every page by its path and its title (the page's h1).
PAGES = {
    "/": "MNIST digit classifier",
    "/training": "Training",
    "/evaluation": "Evaluation",
    "/model": "Model",
    "/predict": "Predict",
}
# The pages a switch is timed on, by their sidebar link, with the heading of their last section: a
# page counts as shown when that has arrived, not merely its title.
SWITCHES = {
    "Overview": ("MNIST digit classifier", "Class balance"),
    "Training": ("Training", "Cached runs"),
    "Evaluation": ("Evaluation", "Misclassified test images"),
    "Model": ("Model", "Downloads"),
}
# The server's log line once the web process has connected to its engine (dashboard/connection.py).
CONNECTED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO dashboard\.connection: connected to the model engine at (\S+)",
    re.MULTILINE,
)
# The messages the Training page shows when the engine refuses a submission (mnist_model/workers.py).
REFUSALS = ("You already have a training job waiting or running", "The training queue is full")
ENGINE_STARTING = "Starting the model engine"

# Targets: (comparison, bound). Figures without one are reported for context.
TARGETS = {
    "first_page_s": ("<=", 3.0),
    "page_switch_ms": ("<=", 250),
    "new_test_index_ms": ("<=", 150),
    "upload_prediction_ms": ("<=", 200),
    "my_digits_view_ms": ("<=", 500),
    "map_tsne_compute_s": ("<=", 10.0),
    "map_view_ms": ("<=", 500),
    "map_redraw_ms": ("<=", 1000),
    "training_ratio": ("<=", 1.5),
    "web_process_mb": ("<=", 400),
    "tensorflow_libraries_mapped": ("==", 0),
    "pages_with_exception": ("==", 0),
    "log_tracebacks": ("==", 0),
    "queue_exceptions": ("==", 0),
}


# Figures and the table


@dataclass
class Figure:
    """One line of the results table: a median of samples, or a single count."""

    key: str
    label: str
    samples: list[float]
    unit: str
    count_only: bool = False  # a total or a single reading, not a median
    target: tuple[str, float] | None = None
    counted_over: int | None = None  # for a total: how many trials (pages, presses, starts) it counts

    @property
    def value(self) -> float | None:
        if not self.samples:
            return None
        return self.samples[0] if self.count_only else statistics.median(self.samples)

    @property
    def met(self) -> bool | None:
        target = self.target or TARGETS.get(self.key)
        if target is None or self.value is None:
            return None
        comparison, bound = target
        return self.value <= bound if comparison == "<=" else self.value == bound

    def row(self) -> dict:
        target = self.target or TARGETS.get(self.key)
        return {
            "figure": self.label,
            "key": self.key,
            "value": self.value,
            "unit": self.unit,
            "kind": "value" if self.count_only else "median",
            "n": self.counted_over if self.count_only and self.counted_over else len(self.samples),
            "samples": self.samples,
            "target": f"{target[0]} {target[1]:g} {self.unit}".strip() if target else None,
            "met": self.met,
        }


def print_table(figures: list[Figure]) -> None:
    rows = [("figure", "value", "n", "target", "met")]
    for figure in figures:
        row = figure.row()
        value = "n/a" if row["value"] is None else f"{row['value']:g} {row['unit']}".strip()
        if row["kind"] == "median" and row["value"] is not None:
            value = f"{row['value']:.{1 if row['unit'] == 'ms' else 2}f} {row['unit']}"
        met = {True: "yes", False: "NO", None: ""}[row["met"]]
        count = f"{row['n']} (median)" if row["kind"] == "median" else f"of {row['n']}" if figure.counted_over else ""
        rows.append((row["figure"], value, count, row["target"] or "", met))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for number, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Servers


@dataclass
class Server:
    """A dashboard server being measured, with the moments it was launched at."""

    dashboard: Dashboard
    launched: float  # time.perf_counter() just before `streamlit run`
    launched_wall: float  # time.time() at the same moment, to compare with the log's time stamps
    healthy_s: float  # seconds from launch until the health check answered

    @property
    def url(self) -> str:
        return self.dashboard.url

    def since_launch(self) -> float:
        return time.perf_counter() - self.launched

    def engine_connection(self, timeout: float) -> tuple[float, str] | None:
        """Seconds from launch until the log says the engine is connected, and the engine's address."""
        deadline = time.monotonic() + timeout
        while True:
            match = CONNECTED.search(self.dashboard.log_text())
            if match:
                logged = datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                return logged - self.launched_wall, match[2]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)


@contextmanager
def serve(artifacts_folder: Path, log_name: str) -> Iterator[Server]:
    """A dashboard on ``artifacts_folder``, yielded as soon as its health check answers.

    Dashboard.start checks health twice a second; here it runs on a thread while this one checks
    every 20 ms, so the figures measured from launch do not include up to half a second of polling.
    """
    dashboard = Dashboard(artifacts_folder, LOGS / log_name)
    failures: list[BaseException] = []

    def start() -> None:
        try:
            dashboard.start()
        except BaseException as error:  # Reported on the measuring thread.
            failures.append(error)

    starter = threading.Thread(target=start, name="dashboard-start", daemon=True)
    launched_wall, launched = time.time(), time.perf_counter()
    starter.start()
    try:
        while not dashboard.healthy():
            if failures:
                raise failures[0]
            time.sleep(0.02)
        yield Server(dashboard, launched, launched_wall, time.perf_counter() - launched)
    finally:
        starter.join()
        dashboard.stop()


def peak_mb(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def tensorflow_libraries(pid: int) -> list[str]:
    """The libtensorflow*.so files mapped into a process."""
    mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "/" in line}
    return sorted(path for path in mapped if Path(path).name.startswith("libtensorflow"))


def prefill(folder: Path) -> float:
    """Train the dense network, which the benchmark's servers serve (see suite_environment), into
    ``folder`` from the command line; returns the seconds it took."""
    started = time.perf_counter()
    environment = {**os.environ, "MNIST_ARTIFACTS": str(folder), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(
        [sys.executable, "-m", "mnist_model", "train", "--architecture", "mlp"],
        cwd=PROJECT,
        env=environment,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


# Browser helpers


def new_page(browser: Browser) -> Page:
    """A page in a browser context of its own: a separate Streamlit session."""
    return browser.new_context(viewport=VIEWPORT).new_page()


def main_area(page: Page) -> Locator:
    return page.locator('[data-testid="stMain"]')


def metric(page: Page, label: str) -> Locator:
    return main_area(page).locator('[data-testid="stMetric"]', has_text=label).locator('[data-testid="stMetricValue"]')


def nav_link(page: Page, title: str) -> Locator:
    return page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title)


def exceptions(page: Page) -> int:
    return page.locator('[data-testid="stException"]').count()


def wait_idle(page: Page, timeout: float = 60) -> None:
    """Wait until no script run is shown in progress (Streamlit's status widget is gone).

    Streamlit shows the widget only once a run has lasted 500 ms, so this is a last check after the
    content a step waits for, never the only one.
    """
    page.wait_for_function("!document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout * 1000)


# Conditions checked in the page on every animation frame (``wait_for_function`` with ``raf``), so a
# timing ends on the frame that shows the result. Playwright's ``expect`` retries after 100, 250, 500
# and 1000 ms instead, which would add up to a quarter of a second to a timing this short.
ON_SCREEN = """([kind, first, second]) => {
    const main = document.querySelector('[data-testid=stMain]');
    if (!main || document.querySelector('[data-testid=stStatusWidget]')) return false;
    const metric = (label) => {
        for (const item of main.querySelectorAll('[data-testid=stMetric]')) {
            const name = item.querySelector('[data-testid=stMetricLabel]');
            if (name && name.innerText.trim() === label) {
                const value = item.querySelector('[data-testid=stMetricValue]');
                return value ? value.innerText.trim() : null;
            }
        }
        return null;
    };
    if (kind === 'page') {
        const title = main.querySelector('h1');
        return !!title && title.innerText.trim() === first
            && [...main.querySelectorAll('h2, h3')].some((heading) => heading.innerText.trim() === second);
    }
    if (kind === 'index') {
        const captions = [...main.querySelectorAll('[data-testid=stImageCaption]')];
        return captions.some((caption) => caption.innerText.trim() === first)
            && metric('True label') === second && metric('Predicted digit') !== null;
    }
    return metric('Predicted digit') === first;
}"""


def wait_on_screen(page: Page, kind: str, first: str, second: str | None = None, timeout: float = 60) -> None:
    """Wait, frame by frame, until the page shows: a page's title and last section ("page"), a test image's
    caption and true label with a prediction ("index"), or a predicted digit ("digit"); and no run is shown."""
    page.wait_for_function(ON_SCREEN, arg=[kind, first, second], polling="raf", timeout=timeout * 1000)


def timed(action: Callable[[], None], done: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    done()
    return time.perf_counter() - started


def show_page(page: Page, title: str, timeout: float = 30) -> None:
    """Click a sidebar link and wait until that page's title and last section show, and the run ends."""
    heading, last_section = SWITCHES[title]
    nav_link(page, title).click()
    wait_on_screen(page, "page", heading, last_section, timeout)


class PageFailed(RuntimeError):
    """A page showed an exception or an error instead of what a step waited for."""


def wait_shown(page: Page, target: Locator, timeout: float) -> None:
    """Wait until ``target`` is visible; raise PageFailed at once if the page shows an exception or an error."""
    problems = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    deadline = time.monotonic() + timeout
    while True:
        if target.count() and target.first.is_visible():
            return
        if problems.count():
            raise PageFailed(f"{page.url} shows: {problems.first.inner_text().strip()[:400]}")
        if time.monotonic() > deadline:
            raise PageFailed(f"{page.url} did not show {target} within {timeout:.0f} s")
        time.sleep(0.05)


# 1. From `streamlit run` to the first page


def first_page(browser: Browser, cached: Path, repeats: int) -> tuple[list[Figure], dict]:
    samples: dict[str, list[float]] = {"healthy": [], "accuracy": [], "connected": [], "prediction": []}
    failures = []
    for repeat in range(repeats):
        with serve(cached, f"first-page-{repeat}.log") as server:
            page = new_page(browser)
            try:
                page.goto(server.url)
                wait_shown(page, metric(page, "Test accuracy"), timeout=120)
                accuracy = server.since_launch()
                nav_link(page, "Predict").click()
                wait_shown(page, metric(page, "Predicted digit"), timeout=300)
                prediction = server.since_launch()
            except PageFailed as error:
                failures.append(f"repetition {repeat}: {error}")
                progress(f"first page {repeat + 1}/{repeats} failed: {error}")
                continue
            finally:
                page.context.close()
            samples["accuracy"].append(accuracy)
            samples["prediction"].append(prediction)
            connection = server.engine_connection(timeout=60)
            if connection is not None:
                samples["connected"].append(connection[0])
            samples["healthy"].append(server.healthy_s)
        progress(f"first page {repeat + 1}/{repeats}: accuracy at {accuracy:.2f} s, prediction at {prediction:.2f} s")
    rounded: dict = {name: [round(value, 3) for value in values] for name, values in samples.items()}
    rounded["failures"] = failures
    figures = [
        Figure("first_page_s", "streamlit run -> Overview shows test accuracy", rounded["accuracy"], "s"),
        Figure("health_s", "streamlit run -> health check answers", rounded["healthy"], "s"),
        Figure("engine_connected_s", "streamlit run -> engine connected (log)", rounded["connected"], "s"),
        Figure("first_prediction_s", "streamlit run -> first prediction on /predict", rounded["prediction"], "s"),
        Figure("first_page_failures", "first-page repetitions failed", [len(failures)], "", True, ("==", 0), repeats),
    ]
    return figures, rounded


# 2 and 4. A warmed server: page switches, test indices, uploads, the web process's memory


def write_uploads(folder: Path, count: int, images) -> list[tuple[Path, int]]:
    """``count`` distinct PNG files of two test digits, photographed style: 8x larger, dark on white.

    Files alternate between the two digits, and each carries a different text chunk, so no two have
    the same bytes and the page's cache of prepared uploads never answers in place of the engine.
    Returns each file with the index of the digit it shows (0 or 1 of ``images``).
    """
    from PIL import Image, PngImagePlugin

    paths = []
    for number in range(count):
        which = number % 2
        metadata = PngImagePlugin.PngInfo()
        metadata.add_text("Comment", f"upload {number}")
        path = folder / f"digit-{number}.png"
        Image.fromarray(255 - images[which]).resize((224, 224), Image.Resampling.NEAREST).save(path, pnginfo=metadata)
        paths.append((path, which))
    return paths


def upload_and_read(page: Page, path: Path, expected: str | None) -> str:
    """Upload ``path`` and return the predicted digit once it shows (``expected``, when given)."""
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(path)
    value = metric(page, "Predicted digit")
    if expected is None:
        expect(main_area(page).get_by_text("28x28 input")).to_be_visible(timeout=120_000)
        expect(value).to_be_visible(timeout=120_000)
        wait_idle(page)
    else:
        wait_on_screen(page, "digit", expected, timeout=120)
    return value.inner_text().strip()


def read_upload(browser: Browser, url: str, path: Path) -> str:
    """The digit a new session's Predict page reads in an uploaded ``path``."""
    page = new_page(browser)
    try:
        page.goto(f"{url}/predict")
        page.get_by_role("tab", name="Upload an image").click()
        return upload_and_read(page, path, None)
    finally:
        page.context.close()


def warmed_server(browser: Browser, cached: Path, selected: set[str], repeats: int) -> tuple[list[Figure], dict]:
    data = load_mnist()
    figures: list[Figure] = []
    details: dict = {}
    # The server's my digits: a folder of this run's own, which the server inherits from this environment.
    os.environ["MNIST_MY_DIGITS"] = tempfile.mkdtemp(prefix="bench-my-digits-")
    with serve(cached, "warmed.log") as server, tempfile.TemporaryDirectory() as uploads_folder:
        page = new_page(browser)
        page.goto(server.url)
        wait_shown(page, metric(page, "Test accuracy"), timeout=120)
        # Warm up: every page once (loading TensorFlow, the model and the evaluation in the engine),
        # then a prediction.
        for title in SWITCHES:
            show_page(page, title, timeout=300)
        nav_link(page, "Predict").click()
        wait_shown(page, metric(page, "Predicted digit"), timeout=300)
        wait_idle(page)

        if "memory" in selected:
            time.sleep(3)
            readings = []
            for _ in range(5):
                readings.append(resident_mb(server.dashboard.pid))
                time.sleep(1)
            libraries = tensorflow_libraries(server.dashboard.pid)
            details["memory"] = {
                "resident_mb_readings": [round(value, 1) for value in readings],
                "peak_mb": round(peak_mb(server.dashboard.pid), 1),
                "tensorflow_libraries": libraries,
            }
            figures.append(
                Figure(
                    "web_process_mb",
                    "web process resident memory, steady",
                    [round(value, 1) for value in readings],
                    "MB",
                )
            )
            figures.append(
                Figure(
                    "tensorflow_libraries_mapped", "libtensorflow*.so mapped in web process", [len(libraries)], "", True
                )
            )
            progress(f"memory: {statistics.median(readings):.0f} MB, TensorFlow libraries mapped: {len(libraries)}")

        if "switch" in selected:
            switches = []
            for _ in range(repeats):
                for title in SWITCHES:
                    switches.append(timed(lambda title=title: show_page(page, title), lambda: None))
            details["page_switch_ms"] = [round(1000 * value, 1) for value in switches]
            figures.append(
                Figure("page_switch_ms", "page switch (4 pages, to last section)", details["page_switch_ms"], "ms")
            )
            progress(f"page switch: median {1000 * statistics.median(switches):.0f} ms")

        if "index" in selected:
            nav_link(page, "Predict").click()
            page.get_by_role("tab", name="Test image").click()
            field = page.get_by_label("Test image (0 to 9999)")
            expect(field).to_be_visible(timeout=30_000)
            wait_idle(page)
            indices = []
            index, previous_label = 0, int(data.test_labels[0])
            for _ in range(repeats):
                # The next index whose label differs from the one on screen, so the label shown changes too.
                index = (index + 97) % len(data.test_labels)
                while int(data.test_labels[index]) == previous_label:
                    index += 1
                label = int(data.test_labels[index])
                previous_label = label

                def enter(index: int = index) -> None:
                    field.fill(str(index))
                    field.press("Enter")

                def shown(index: int = index, label: int = label) -> None:
                    wait_on_screen(page, "index", f"Test image #{index}", str(label))

                indices.append(timed(enter, shown))
            details["new_test_index_ms"] = [round(1000 * value, 1) for value in indices]
            figures.append(
                Figure("new_test_index_ms", "new test index predicted on screen", details["new_test_index_ms"], "ms")
            )
            progress(f"new test index: median {1000 * statistics.median(indices):.0f} ms")

        if "upload" in selected:
            nav_link(page, "Predict").click()
            page.get_by_role("tab", name="Upload an image").click()
            expect(page.locator('[data-testid="stFileUploaderDropzoneInput"]')).to_be_attached(timeout=30_000)
            wait_idle(page)
            files = write_uploads(Path(uploads_folder), repeats + 2, data.test_images[:2])
            # Untimed: the digit the model reads in each of the two images, each in a session of its own
            # (in one session the first answer stays on screen until the second replaces it).
            digits = [read_upload(browser, server.url, path) for path, _ in files[:2]]
            if digits[0] == digits[1]:
                raise RuntimeError(f"the two upload images are both read as {digits[0]}; pick other images")
            uploads = [
                timed(lambda path=path, which=which: upload_and_read(page, path, digits[which]), lambda: None)
                for path, which in files[2:]
            ]
            details["upload_prediction_ms"] = [round(1000 * value, 1) for value in uploads]
            details["upload_digits_read"] = digits
            figures.append(
                Figure("upload_prediction_ms", "upload predicted on screen", details["upload_prediction_ms"], "ms")
            )
            progress(f"upload: median {1000 * statistics.median(uploads):.0f} ms")

        if "my-digits" in selected:
            views = my_digits_views(page, Path(uploads_folder), data, repeats)
            details["my_digits_view_ms"] = [round(1000 * value, 1) for value in views]
            figures.append(
                Figure(
                    "my_digits_view_ms",
                    f"switch to My digits ({MY_DIGITS_COUNT} images, every run scored)",
                    details["my_digits_view_ms"],
                    "ms",
                )
            )
            progress(f"my digits: median {1000 * statistics.median(views):.0f} ms")

        if "map" in selected:
            figures += map_views(page, cached, repeats, details)

        details["exceptions_on_page"] = exceptions(page)
        details["log_tracebacks"] = server.dashboard.tracebacks()
        if "memory" in selected:
            details["memory"]["resident_mb_after_interactions"] = round(resident_mb(server.dashboard.pid), 1)
            details["memory"]["peak_mb_after_interactions"] = round(peak_mb(server.dashboard.pid), 1)
        page.context.close()
    return figures, details


def my_digits_views(page: Page, folder: Path, data, repeats: int) -> list[float]:
    """Save ``MY_DIGITS_COUNT`` test digits (photographed style) to the server's my digits, open the page once
    (the first computation: the engine prepares the images and every run predicts them), then time
    switches to it from the Overview until its last section shows."""
    from PIL import Image

    target = Path(os.environ["MNIST_MY_DIGITS"])
    for index in range(MY_DIGITS_COUNT):
        path = folder / f"my-digit-{index}.png"
        Image.fromarray(255 - data.test_images[index]).resize((224, 224), Image.Resampling.NEAREST).save(path)
        label = int(data.test_labels[index])
        mydigits.add(target, path.read_bytes(), name=path.name, label=label, source="upload")
    nav_link(page, "My digits").click()
    wait_on_screen(page, "page", "My digits", "Download or delete", timeout=300)
    views = []
    for _ in range(repeats):
        show_page(page, "Overview")
        views.append(
            timed(
                lambda: nav_link(page, "My digits").click(),
                lambda: wait_on_screen(page, "page", "My digits", "Download or delete"),
            )
        )
    return views


# The map of the test set, drawn: all 10,000 points plotted and the caption of the method shown.
MAP_DRAWN = """([caption]) => {
    const main = document.querySelector('[data-testid=stMain]');
    if (!main || document.querySelector('[data-testid=stStatusWidget]')) return false;
    const plot = main.querySelector('.js-plotly-plot');
    if (!plot || !plot._fullData || !plot.querySelector('.main-svg')) return false;
    const points = plot._fullData.filter((trace) => trace.visible === true && trace.customdata)
        .reduce((count, trace) => count + trace._length, 0);
    const captions = [...main.querySelectorAll('[data-testid=stCaptionContainer]')];
    return points === 10000 && captions.some((item) => item.innerText.includes(caption));
}"""
MAP_CAPTIONS = {"PCA": "PCA's two axes", "t-SNE": "t-SNE puts images"}


def map_views(page: Page, cached: Path, repeats: int, details: dict) -> list[Figure]:
    """The Map page on a store without maps: the first PCA and t-SNE maps, then switches to the page and
    between the two maps, each until the map has drawn. Records its samples in ``details``."""
    for kept in artifacts.runs_dir(cached).glob("*/projection-*"):
        kept.unlink()

    def drawn(method: str, timeout: float = 30) -> None:
        page.wait_for_function(MAP_DRAWN, arg=[MAP_CAPTIONS[method]], polling="raf", timeout=timeout * 1000)

    def choose(method: str) -> float:
        return timed(lambda: page.get_by_text(method, exact=True).click(), lambda: drawn(method, 300))

    first_pca = timed(lambda: nav_link(page, "Map").click(), lambda: drawn("PCA", 300))
    first_tsne = choose("t-SNE")
    computed = {
        path.stem.removeprefix("projection-"): json.loads(path.read_text())["seconds"]
        for path in artifacts.runs_dir(cached).glob("*/projection-*.json")
    }
    views, redraws = [], []
    for _ in range(repeats):
        show_page(page, "Overview")
        views.append(timed(lambda: nav_link(page, "Map").click(), lambda: drawn("t-SNE")))
        redraws += [choose("PCA"), choose("t-SNE")]
    details["map"] = {
        "first_pca_s": round(first_pca, 2),
        "first_tsne_s": round(first_tsne, 2),
        "engine_compute_s": {method: round(seconds, 2) for method, seconds in computed.items()},
        "view_ms": [round(1000 * value, 1) for value in views],
        "redraw_ms": [round(1000 * value, 1) for value in redraws],
    }
    progress(
        f"map: first PCA {first_pca:.1f} s, first t-SNE {first_tsne:.1f} s (engine: {computed}), view median "
        f"{1000 * statistics.median(views):.0f} ms, redraw median {1000 * statistics.median(redraws):.0f} ms"
    )
    return [
        Figure("map_first_pca_s", "first PCA map of the test set, until drawn", [round(first_pca, 2)], "s"),
        Figure("map_first_tsne_s", "first t-SNE map of the test set, until drawn", [round(first_tsne, 2)], "s"),
        Figure("map_tsne_compute_s", "t-SNE map computed in the engine", [round(computed.get("tsne", -1), 2)], "s"),
        Figure("map_view_ms", "switch to the Map page (cached t-SNE map), drawn", details["map"]["view_ms"], "ms"),
        Figure("map_redraw_ms", "switch between the cached PCA and t-SNE maps", details["map"]["redraw_ms"], "ms"),
    ]


# 5. Fresh starts with every page opened at once


def starts(browser: Browser, cached: Path, count: int) -> tuple[list[Figure], dict]:
    records = []
    for number in range(count):
        # Browser sessions are ready before the server starts, so opening a page is only navigating.
        pages = [new_page(browser) for _ in PAGES]
        with serve(cached, f"start-{number:02}.log") as server:
            healthy = time.perf_counter()
            for path, page in zip(PAGES, pages, strict=True):
                page.goto(server.url + path, wait_until="commit", timeout=30_000)
            opened_within = time.perf_counter() - healthy
            watched_until = time.perf_counter() + 10
            showed_exception = [False] * len(pages)
            while time.perf_counter() < watched_until:
                for position, page in enumerate(pages):
                    showed_exception[position] |= exceptions(page) > 0
                time.sleep(0.5)
            titles = []
            for page in pages:
                heading = main_area(page).get_by_role("heading", level=1)
                titles.append(heading.first.inner_text().strip() if heading.count() else "")
            still_starting = sum(main_area(page).get_by_text(ENGINE_STARTING).count() > 0 for page in pages)
            record = {
                "opened_within_s": round(opened_within, 2),
                "healthy_s": round(server.healthy_s, 2),
                "pages_with_exception": [path for path, shown in zip(PAGES, showed_exception, strict=True) if shown],
                "pages_without_title": [
                    path for path, title in zip(PAGES, titles, strict=True) if title != PAGES[path]
                ],
                "pages_still_starting_engine": still_starting,
                "log_tracebacks": server.dashboard.tracebacks(),
            }
            connection = server.engine_connection(timeout=0)
            record["engine_connected_after_launch_s"] = round(connection[0], 2) if connection else None
            for page in pages:
                page.context.close()
        records.append(record)
        progress(
            f"start {number + 1}/{count}: {len(record['pages_with_exception'])} pages with an exception, "
            f"{record['log_tracebacks']} tracebacks, {record['pages_still_starting_engine']} still starting"
        )
    figures = [
        Figure(
            "pages_with_exception",
            f"pages showing an exception ({count} starts x {len(PAGES)} pages)",
            [sum(len(record["pages_with_exception"]) for record in records)],
            "",
            True,
            counted_over=count * len(PAGES),
        ),
        Figure(
            "log_tracebacks",
            "tracebacks in the server logs",
            [sum(r["log_tracebacks"] for r in records)],
            "",
            True,
            counted_over=count,
        ),
        Figure(
            "pages_stuck",
            "pages without their title or still starting after 10 s",
            [sum(len(r["pages_without_title"]) + r["pages_still_starting_engine"] for r in records)],
            "",
            True,
            counted_over=count * len(PAGES),
        ),
        Figure(
            "starts_opened_within_s",
            "all 5 pages opened within (after health)",
            [r["opened_within_s"] for r in records],
            "s",
        ),
    ]
    return figures, {"starts": records}


# 3. The first visit's training, watched by eight sessions and by one


def watched_training(browser: Browser, sessions: int, name: str) -> dict:
    """A fresh server on an empty folder and ``sessions`` pages on its Overview: when each shows the model."""
    with tempfile.TemporaryDirectory(prefix="bench-empty-") as empty:
        with serve(Path(empty), f"{name}.log") as server:
            pages = [new_page(browser) for _ in range(sessions)]
            opened = time.perf_counter()
            for page in pages:
                page.goto(server.url, wait_until="commit")
            shown: list[float | None] = [None] * sessions
            deadline = opened + 900
            while None in shown and time.perf_counter() < deadline:
                for position, page in enumerate(pages):
                    if shown[position] is None and metric(page, "Test accuracy").count():
                        shown[position] = time.perf_counter() - opened
                time.sleep(0.1)
            if None in shown:
                raise RuntimeError(f"{shown.count(None)} of {sessions} pages never showed a test accuracy")
            on_screen = [metric(page, "Training time").first.inner_text().strip() for page in pages]
            page_exceptions = sum(exceptions(page) for page in pages)
            for page in pages:
                page.context.close()
            connection = server.engine_connection(timeout=0)
            record = {
                "sessions": sessions,
                "until_last_page_s": round(max(shown), 2),
                "per_page_s": [round(value, 2) for value in shown],
                "engine_connected_after_launch_s": round(connection[0], 2) if connection else None,
                "training_time_on_screen": sorted(set(on_screen)),
                "training_runs_in_log": len(server.dashboard.training_runs()),
                "exceptions_on_pages": page_exceptions,
                "log_tracebacks": server.dashboard.tracebacks(),
            }
        default = next(run for run in artifacts.list_runs(Path(empty)) if run.settings == TrainingSettings())
        record["recorded_train_seconds"] = round(default.train_seconds, 2)
    progress(
        f"training watched by {sessions}: last page at {record['until_last_page_s']:.1f} s, "
        f"recorded training {record['recorded_train_seconds']:.1f} s"
    )
    return record


def training(browser: Browser, repeats: int) -> tuple[list[Figure], dict]:
    alone = [watched_training(browser, 1, f"training-1-{repeat}") for repeat in range(repeats)]
    eight = [watched_training(browser, 8, f"training-8-{repeat}") for repeat in range(repeats)]
    one_s = [record["until_last_page_s"] for record in alone]
    eight_s = [record["until_last_page_s"] for record in eight]
    figures = [
        Figure("training_8_sessions_s", "first open -> Test accuracy, 8 sessions (last page)", eight_s, "s"),
        Figure("training_1_session_s", "first open -> Test accuracy, 1 session", one_s, "s"),
        Figure(
            "training_ratio",
            "8 sessions / 1 session",
            [round(statistics.median(eight_s) / statistics.median(one_s), 2)],
            "x",
            True,
        ),
        Figure(
            "train_seconds_8_sessions",
            "training time recorded by the run, 8 sessions",
            [record["recorded_train_seconds"] for record in eight],
            "s",
        ),
        Figure(
            "train_seconds_1_session",
            "training time recorded by the run, 1 session",
            [record["recorded_train_seconds"] for record in alone],
            "s",
        ),
    ]
    return figures, {"one_session": alone, "eight_sessions": eight}


# 6. Five sessions pressing Train five times each


def train_button(page: Page) -> Locator:
    return main_area(page).locator('[data-testid="stFormSubmitButton"] button')


def set_epochs(page: Page, epochs: int) -> None:
    """Move the Training form's Epochs slider to ``epochs`` with the keyboard, as a person would."""
    slider = main_area(page).get_by_role("slider", name="Epochs")
    for _ in range(3):
        slider.focus()
        highest = int(slider.get_attribute("max") or 30)
        if epochs - 1 <= highest - epochs:
            slider.press("Home")
            steps, key = epochs - 1, "ArrowRight"
        else:
            slider.press("End")
            steps, key = highest - epochs, "ArrowLeft"
        for _ in range(steps):
            slider.press(key)
        if slider.input_value() == str(epochs):
            return
    raise RuntimeError(f"the Epochs slider did not stay at {epochs}")


def submission_outcome(page: Page, epochs: int) -> str:
    """What the page answered to a Train press for ``epochs``: "accepted", "refused: ..." or "other: ...".

    The page names the settings just submitted (accepted or not) below the form and any refusal above
    them, so once that caption is on screen the warning shown (or not) belongs to this press.
    """
    caption = main_area(page).locator('[data-testid="stCaptionContainer"]', has_text=f"mlp, {epochs} epoch")
    expect(caption.first).to_be_visible(timeout=60_000)
    warnings = main_area(page).locator('[data-testid="stAlertContentWarning"]').all_inner_texts()
    if not warnings:
        return "accepted"
    text = " ".join(warnings).strip()
    return f"refused: {text}" if any(refusal in text for refusal in REFUSALS) else f"other: {text}"


class EnginePoller:
    """Polls the engine from a second driver: most jobs running and queued at once, jobs seen, server memory."""

    def __init__(self, address: str, server_pid: int):
        from mnist_model.engine import Engine  # Imports Ray, which only this section needs.

        self.engine = Engine.connect(address)
        self.server_pid = server_pid
        self.most_running = 0
        self.most_queued = 0
        self.jobs_seen: dict[str, str] = {}  # job id -> owner
        self.polls = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-poller", daemon=True)

    def __enter__(self) -> EnginePoller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        import ray

        ray.shutdown()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self.engine.jobs()
            except Exception as error:  # Recorded and reported, the poll goes on.
                self.errors.append(str(error))
            else:
                self.polls += 1
                self.most_running = max(self.most_running, sum(job.state == "running" for job in jobs))
                self.most_queued = max(self.most_queued, sum(job.state == "queued" for job in jobs))
                for job in jobs:
                    if job.job_id:
                        self.jobs_seen[job.job_id] = job.owner or ""
            self._stop.wait(0.2)


def queue(
    browser: Browser, cached: Path, scratch: Path, sessions: int = 5, presses: int = 5
) -> tuple[list[Figure], dict]:
    # A copy of the cached folder: the runs this section finishes must not change the others' folder.
    folder = scratch / "queue-artifacts"
    shutil.copytree(cached, folder)
    # Distinct epoch counts for every press of every session; 10 is the cached default, which would
    # be answered from the store instead of queued.
    counts = [epochs for epochs in range(1, 31) if epochs != TrainingSettings().epochs]
    plan = [[counts[session * presses + press] for press in range(presses)] for session in range(sessions)]
    with serve(folder, "queue.log") as server:
        pages = [new_page(browser) for _ in range(sessions)]
        for page in pages:
            page.goto(f"{server.url}/training")
        for page in pages:
            expect(train_button(page)).to_be_visible(timeout=180_000)
            wait_idle(page)
        connection = server.engine_connection(timeout=60)
        if connection is None:
            raise RuntimeError("the server never logged its connection to the engine")
        outcomes: list[list[str]] = [[] for _ in range(sessions)]
        with EnginePoller(connection[1], server.dashboard.pid) as poller:
            limits = poller.engine.stats()
            started = time.perf_counter()
            answered_s = []  # from each press until the page shows its outcome
            for press in range(presses):
                pressed = []
                for session, page in enumerate(pages):
                    set_epochs(page, plan[session][press])
                    train_button(page).click()
                    pressed.append(time.perf_counter())
                for session, page in enumerate(pages):
                    outcomes[session].append(submission_outcome(page, plan[session][press]))
                    answered_s.append(round(time.perf_counter() - pressed[session], 2))
            submitting_s = time.perf_counter() - started
            time.sleep(5)  # Go on polling a moment after the last press.
            page_exceptions = sum(exceptions(page) for page in pages)
            peak = peak_mb(server.dashboard.pid)
        for page in pages:
            page.context.close()
        tracebacks = server.dashboard.tracebacks()
    flat = [outcome for session in outcomes for outcome in session]
    refused = sum(outcome.startswith("refused") for outcome in flat)
    from mnist_model.engine import engine_config

    queue_limit = engine_config().queue_limit
    details = {
        "plan_epochs": plan,
        "outcomes": outcomes,
        "submitting_s": round(submitting_s, 1),
        "press_answered_s": answered_s,
        "engine_polls": poller.polls,
        "engine_poll_errors": poller.errors[:5],
        "jobs_seen": len(poller.jobs_seen),
        "max_running_allowed": limits["max_running"],
        "queue_limit": queue_limit,
        "other_outcomes": [outcome for outcome in flat if outcome.startswith("other")],
        "log_tracebacks": tracebacks,
    }
    progress(f"queue: {flat.count('accepted')} presses accepted, {refused} refused, in {submitting_s:.0f} s")
    figures = [
        Figure(
            "queue_most_running",
            "queue: most jobs running at once",
            [poller.most_running],
            "",
            True,
            ("<=", limits["max_running"]),
        ),
        Figure(
            "queue_most_queued", "queue: most jobs queued at once", [poller.most_queued], "", True, ("<=", queue_limit)
        ),
        Figure("queue_accepted", "queue: presses accepted", [flat.count("accepted")], "", True, None, len(flat)),
        Figure("queue_refused_shown", "queue: presses refused with a message", [refused], "", True, None, len(flat)),
        Figure("queue_press_answered_s", "queue: Train press -> outcome on screen (upper bound)", answered_s, "s"),
        Figure("queue_peak_mb", "queue: web process peak memory", [round(peak, 1)], "MB", True),
        Figure(
            "queue_exceptions",
            "queue: exceptions on pages + log tracebacks",
            [page_exceptions + tracebacks],
            "",
            True,
            counted_over=sessions,
        ),
    ]
    return figures, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections (default: all)")
    parser.add_argument("--repeats", type=int, default=10, help="samples per interaction timing (median reported)")
    parser.add_argument("--first-page-repeats", type=int, default=5, help="fresh servers timed to the first page")
    parser.add_argument("--starts", type=int, default=20, help="fresh server starts with every page opened")
    parser.add_argument("--training-repeats", type=int, default=1, help="first-visit trainings per session count")
    parser.add_argument(
        "--artifacts",
        type=Path,
        help="a folder to keep the pre-filled artifacts in between runs (default: a fresh temporary one)",
    )
    arguments = parser.parse_args()
    if not os.environ.get("MNIST_DATA"):
        sys.exit("Set MNIST_DATA to mnist.npz or a folder of IDX files.")
    selected = set(arguments.only or SECTIONS)
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)

    figures: list[Figure] = []
    details: dict = {"sections": sorted(selected), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    errors: dict[str, str] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as scratch_folder, chromium() as browser:
        scratch = Path(scratch_folder)
        cached = arguments.artifacts.resolve() if arguments.artifacts else scratch / "cached"
        if selected - {"training-8"}:
            progress(f"training the default model into {cached} (or loading it from there)")
            details["prefill_s"] = round(prefill(cached), 1)
            progress(f"trained in {details['prefill_s']:.0f} s")
        sections = {
            "first-page": lambda: first_page(browser, cached, arguments.first_page_repeats),
            "warmed": lambda: warmed_server(browser, cached, selected, arguments.repeats),
            "training-8": lambda: training(browser, arguments.training_repeats),
            "starts": lambda: starts(browser, cached, arguments.starts),
            "queue": lambda: queue(browser, cached, scratch),
        }
        for name, run in sections.items():
            if name not in selected and not (name == "warmed" and selected & set(WARMED)):
                continue
            try:
                section_figures, details[name] = run()
            except Exception as error:  # One failed section is reported; the others still run.
                errors[name] = f"{type(error).__name__}: {str(error)[:1500]}"
                progress(f"section {name} failed: {errors[name]}")
                continue
            figures += section_figures
    details["total_s"] = round(time.perf_counter() - began, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = {"figures": [figure.row() for figure in figures], "errors": errors, **details}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(figures)
    for name, error in errors.items():
        print(f"\nsection {name} FAILED: {error}")
    where = f"samples: {RESULTS.relative_to(PROJECT)}; logs: {LOGS.relative_to(PROJECT)}/"
    print(f"\n{details['total_s']:.0f} s in all; {where}")


if __name__ == "__main__":
    main()
