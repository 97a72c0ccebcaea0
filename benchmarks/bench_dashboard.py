"""How fast the dashboard answers, and how much memory its server needs while training.

Three measurements, each against a real ``streamlit run`` driven by headless Chromium, plus one in
this process:

1. Clean-up after each script run. Streamlit calls ``keras.backend.clear_session()`` and
   ``gc.collect(2)`` after every run, fragment runs included. Timed here with TensorFlow and a model
   loaded, before and after ``gc.freeze()`` (which ``dashboard/state.py`` calls).
2. With a cached model: seconds from ``streamlit run`` to the first page showing the model's test
   accuracy; page switches; a new test index; an upload's prediction (in the browser, and the
   preprocessing plus prediction alone).
3. With an empty cache: the server's peak resident memory (VmHWM) while the first visit trains the
   default model, and then while a one-epoch convolutional network is trained from the Training page.

    MNIST_DATA=/path/to/mnist.npz python -m benchmarks.bench_dashboard [--repeats 10] [--skip-cnn]

Needs Chromium (``$CHROMIUM`` or ``chromium`` on the PATH). Results: printed, and written to
``benchmarks/results/dashboard.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from reliability.browser import CHROMIUM_ARGS

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "benchmarks" / "results" / "dashboard.json"
PAGES = {"Overview": "MNIST digit classifier", "Training": "Training", "Evaluation": "Evaluation", "Model": "Model"}


def median_ms(samples: list[float]) -> float:
    return round(1000 * statistics.median(samples), 1)


def cleanup_cost(repeats: int) -> dict:
    """Milliseconds of Streamlit's post-run clean-up with TensorFlow loaded, without and with gc.freeze()."""
    import keras

    import mnist_model

    run = mnist_model.train(mnist_model.TrainingSettings())
    mnist_model.Predictor(run.model)

    def clean_up() -> float:
        started = time.perf_counter()
        keras.backend.clear_session()
        gc.collect(2)
        return time.perf_counter() - started

    before = [clean_up() for _ in range(repeats)]
    gc.freeze()
    after = [clean_up() for _ in range(repeats)]
    gc.unfreeze()
    return {"cleanup_ms_before_freeze": median_ms(before), "cleanup_ms_after_freeze": median_ms(after)}


def upload_compute(repeats: int, uploads: list[Path]) -> tuple[dict, list[int]]:
    """Milliseconds to preprocess an upload and predict its digit (no browser), and each upload's digit."""
    import mnist_model
    from mnist_model import images

    predictor = mnist_model.Predictor(mnist_model.train(mnist_model.TrainingSettings()).model)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.predict_digit(images.preprocess_file(uploads[0].read_bytes()).model_input)
        samples.append(time.perf_counter() - started)
    digits = [predictor.predict_digit(images.preprocess_file(path.read_bytes()).model_input)[0] for path in uploads]
    return {"upload_preprocess_and_predict_ms": median_ms(samples)}, digits


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def streamlit_server(artifacts: Path) -> Iterator[tuple[str, subprocess.Popen, float]]:
    """A running dashboard: its URL, its process and the perf_counter time it was started at."""
    port = free_port()
    environment = {**os.environ, "MNIST_ARTIFACTS": str(artifacts), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT, env=environment, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError("streamlit exited during start-up") from None
                time.sleep(0.05)
        yield url, process, started
    finally:
        process.terminate()
        process.wait(timeout=15)


def peak_memory_mb(process: subprocess.Popen) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc status")


@contextmanager
def browser_page() -> Iterator:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("Chromium is needed: apt-get install chromium, or set $CHROMIUM.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 900})
        browser.close()


def wait_idle(page) -> None:
    """Wait until the app has no script run in progress (Streamlit's status widget is gone)."""
    page.wait_for_function("!document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)


def timed(action: Callable[[], None], done: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    done()
    return time.perf_counter() - started


def metric(page, label: str):
    return page.locator('[data-testid="stMetric"]', has_text=label).locator('[data-testid="stMetricValue"]')


def interaction_times(repeats: int, artifacts: Path, uploads_and_digits: list[tuple[Path, int]]) -> dict:
    from playwright.sync_api import expect

    results: dict = {}
    with streamlit_server(artifacts) as (url, _, started), browser_page() as page:
        results["server_healthy_s"] = round(time.perf_counter() - started, 2)
        page.goto(url)
        expect(metric(page, "Test accuracy")).to_be_visible(timeout=60_000)
        results["first_page_with_model_s"] = round(time.perf_counter() - started, 2)
        wait_idle(page)

        switches = []
        for _ in range(repeats):
            for title, heading in PAGES.items():
                link = page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title)
                switches.append(
                    timed(
                        link.click,
                        lambda heading=heading: (
                            expect(page.get_by_role("heading", level=1)).to_have_text(heading),
                            wait_idle(page),
                        ),
                    )
                )
        results["page_switch_ms"] = median_ms(switches)

        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Predict").click()
        field = page.get_by_label("Test image (0 to 9999)")
        expect(field).to_be_visible(timeout=30_000)
        wait_idle(page)
        indices = []
        for index in range(1, repeats + 1):

            def enter(index: int = index) -> None:
                field.fill(str(index * 97))
                field.press("Enter")

            indices.append(
                timed(
                    enter,
                    lambda index=index: (
                        page.get_by_text(f"Test image #{index * 97}").wait_for(),
                        wait_idle(page),
                    ),
                )
            )
        results["new_test_index_ms"] = median_ms(indices)

        page.get_by_role("tab", name="Upload an image").click()
        uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
        wait_idle(page)
        uploads = []
        for attempt in range(repeats):
            # Alternate two digits, so that each upload changes the digit on screen.
            path, digit = uploads_and_digits[attempt % 2]
            uploads.append(
                timed(
                    lambda path=path: uploader.set_input_files(path),
                    lambda digit=digit: (
                        expect(metric(page, "Predicted digit")).to_have_text(str(digit)),
                        wait_idle(page),
                    ),
                )
            )
        results["upload_prediction_in_browser_ms"] = median_ms(uploads)
    return results


def training_memory(artifacts: Path, train_cnn: bool) -> dict:
    from playwright.sync_api import expect

    results: dict = {}
    with streamlit_server(artifacts) as (url, process, started), browser_page() as page:
        page.goto(url)
        expect(metric(page, "Test accuracy")).to_be_visible(timeout=600_000)
        results["first_visit_training_s"] = round(time.perf_counter() - started, 1)
        results["peak_rss_mb_default_training"] = peak_memory_mb(process)
        if train_cnn:
            page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Training").click()
            page.locator('[data-testid="stSelectbox"]', has_text="Architecture").click()
            page.get_by_role("option", name="cnn: convolutional network").click()
            slider = page.get_by_role("slider", name="Epochs")
            slider.focus()
            slider.press("Home")
            page.get_by_role("button", name="Train").click()
            cnn_started = time.perf_counter()
            expect(page.get_by_role("heading", name="cnn, 1 epochs")).to_be_visible(timeout=30_000)
            expect(metric(page, "Test accuracy")).to_be_visible(timeout=1_800_000)
            results["cnn_one_epoch_training_s"] = round(time.perf_counter() - cnn_started, 1)
            results["peak_rss_mb_cnn_training"] = peak_memory_mb(process)
    return results


def write_uploads(folder: Path) -> list[Path]:
    """Two MNIST test images as people photograph digits: eight times larger, dark ink on white."""
    from PIL import Image

    import mnist_model

    paths = []
    for index in (0, 1):
        path = folder / f"digit-{index}.png"
        digit = mnist_model.load_mnist().test_images[index]
        Image.fromarray(255 - digit).resize((224, 224), Image.Resampling.NEAREST).save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="samples per timing (median reported)")
    parser.add_argument("--skip-cnn", action="store_true", help="skip the memory of a one-epoch cnn training")
    arguments = parser.parse_args()
    if not os.environ.get("MNIST_DATA"):
        sys.exit("Set MNIST_DATA to mnist.npz or a folder of IDX files.")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    results: dict = {}
    with tempfile.TemporaryDirectory() as cached, tempfile.TemporaryDirectory() as empty:
        os.environ["MNIST_ARTIFACTS"] = cached
        uploads = write_uploads(Path(cached))
        results.update(cleanup_cost(arguments.repeats))  # Also trains the default model into the cache.
        compute, digits = upload_compute(arguments.repeats, uploads)
        results.update(compute)
        results.update(interaction_times(arguments.repeats, Path(cached), list(zip(uploads, digits, strict=True))))
        results.update(training_memory(Path(empty), train_cnn=not arguments.skip_cnn))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
