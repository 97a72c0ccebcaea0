"""Load: many sessions at once on an empty cache, many threads on one predictor, and a soak.

The concurrent-sessions check opens the dashboard in eight browser contexts (eight Streamlit
sessions) within a second of each other, on a server whose artifacts folder is empty, and counts
the training runs in the server's log. The soak measures the server's resident memory and threads
before and after hundreds of uploads, and this process's memory over thousands of predictions made
the way the Predict page makes them (``images.preprocess_file`` then a shared ``Predictor``).
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
from playwright.sync_api import Error as PlaywrightError

from reliability import browser
from reliability.corpus import Case
from reliability.processes import Dashboard, resident_mb, thread_count
from reliability.report import SectionResult, percentile

SESSIONS = 8
# With eight sessions open the default model trains in four to eight minutes on two cores; allow fifteen.
TRAINING_TIMEOUT = 900


def concurrent_sessions(dashboard: Dashboard, chromium) -> SectionResult:
    """Eight sessions on an empty cache: one training run, and every session shows the same model."""
    result = SectionResult("Load: eight sessions on an empty cache")
    contexts = [chromium.new_context() for _ in range(SESSIONS)]
    pages = [context.new_page() for context in contexts]
    started = time.monotonic()
    for page in pages:
        page.goto(dashboard.url, wait_until="commit")
    opened = time.monotonic() - started
    shown = []
    for page in pages:
        remaining = max(10.0, TRAINING_TIMEOUT - (time.monotonic() - started))
        accuracy = browser.wait_for_metric(page, "Test accuracy", timeout=remaining)
        # Streamlit draws a page element by element: give the model's caption a moment to follow.
        caption = page.locator('[data-testid="stCaptionContainer"]', has_text="epochs").first
        try:
            caption.wait_for(timeout=10_000)
            model = caption.inner_text()
        except PlaywrightError:
            model = ""
        shown.append((accuracy, model.split(" · ")[0], model.rsplit("trained ", 1)[-1]))
    ready = time.monotonic() - started
    runs = dashboard.training_runs()
    result.check("all eight sessions show a test accuracy", all(accuracy for accuracy, _, _ in shown), str(shown))
    result.check(
        "every session shows the same model, accuracy and training time stamp", len(set(shown)) == 1, str(shown)
    )
    result.check("exactly one training run in the server log", len(runs) == 1, str(runs))
    result.check("no traceback in the server log", dashboard.tracebacks() == 0, dashboard.log_text()[-1500:])
    for context in contexts:
        context.close()
    result.figures["sessions held"] = (
        f"{SESSIONS}, opened within {opened:.1f} s, all showing a model after {ready:.0f} s"
    )
    result.figures["training runs counted in the log"] = str(len(runs))
    result.figures["model and accuracy shown"] = f"{shown[0][1]}: {shown[0][0]}" if shown else "none"
    return result


def predictor_load(predictor, test_images: np.ndarray, threads: int, seconds: float) -> SectionResult:
    """``threads`` threads calling one shared predictor for ``seconds``: errors, throughput, p50/p99."""
    result = SectionResult(f"Load: {threads} threads on one predictor for {seconds:.0f} s")
    expected = predictor.predict(test_images[:256]).argmax(axis=1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    wrong = [0]
    stop = threading.Event()
    barrier = threading.Barrier(threads)

    def work(number: int) -> None:
        rng = np.random.default_rng(number)
        barrier.wait()
        while not stop.is_set():
            index = int(rng.integers(256))
            began = time.perf_counter()
            try:
                digit = predictor.predict_digit(test_images[index])[0]
            except Exception as error:  # noqa: BLE001  (every error is counted and reported)
                errors.append(f"{type(error).__name__}: {error}")
                continue
            latencies[number].append(time.perf_counter() - began)
            if digit != expected[index]:
                wrong[0] += 1

    workers = [threading.Thread(target=work, args=(number,), name=f"load-{number}") for number in range(threads)]
    threads_before = thread_count()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    every = [latency for per_thread in latencies for latency in per_thread]
    p50, p99 = percentile(every, 0.5) * 1000, percentile(every, 0.99) * 1000
    result.check("no errors", not errors, "; ".join(errors[:3]))
    result.check("every answer equals the single-threaded one", wrong[0] == 0, f"{wrong[0]} differed")
    result.check("every thread made predictions", all(latencies), str([len(per_thread) for per_thread in latencies]))
    result.check(
        "the worker threads all ended", thread_count() <= threads_before, f"{threads_before} -> {thread_count()}"
    )
    result.figures["predictions under load"] = (
        f"{len(every):,} by {threads} threads in {seconds:.0f} s ({len(every) / seconds:,.0f}/s), {len(errors)} errors"
    )
    result.figures["latency p50 / p99"] = f"{p50:.2f} ms / {p99:.2f} ms (max {max(every, default=0) * 1000:.1f} ms)"
    return result


def soak(
    dashboard: Dashboard, page, predictor, cases: list[Case], good: Case, predictions: int, uploads: int
) -> SectionResult:
    """Thousands of predictions here and hundreds of uploads to the server: memory and threads stay flat."""
    from mnist_model import images

    result = SectionResult(f"Soak: {predictions:,} predictions and {uploads} uploads")
    # Warm up with one pass over every case first, so the figures measure growth over the soak and
    # not first-use caches or the allocator's first high-water mark.
    browser.open_upload_tab(page, dashboard.url)
    for case in cases:
        browser.upload(page, case.name, case.content, case.mime)
    server_before = (resident_mb(dashboard.pid), thread_count(dashboard.pid))
    gc.collect()
    here_before = resident_mb()
    answered = correct = 0
    started = time.monotonic()
    for number in range(uploads):
        case = cases[number % len(cases)]
        outcome = browser.upload(page, case.name, case.content, case.mime)
        answered += outcome.kind != "nothing"
        correct += case.expect != "predict" or outcome.digit == case.digit
    upload_seconds = time.monotonic() - started
    server_after = (resident_mb(dashboard.pid), thread_count(dashboard.pid))
    # The bombs and giant images are left out here: they would measure decoding time, not leaks.
    files = [
        case for case in cases if len(case.content) < 1024 * 1024 and not case.name.startswith(("bomb", "digit-l"))
    ]
    started = time.monotonic()
    refused = 0
    for number in range(predictions):
        case = files[number % len(files)]
        try:
            prepared = images.preprocess_file(case.content, name=case.name)
            predictor.predict_digit(prepared.model_input)
        except images.ImageError:
            refused += 1
    prediction_seconds = time.monotonic() - started
    gc.collect()
    here_after = resident_mb()
    server_growth = server_after[0] - server_before[0]
    here_growth = here_after - here_before
    result.check("every upload was answered", answered == uploads, f"{answered} of {uploads}")
    result.check("every digit among them was predicted correctly", correct == uploads, f"{correct} of {uploads}")
    result.check("the server's memory grew by at most 50 MB", server_growth <= 50, f"{server_growth:+.0f} MB")
    result.check(
        "the server's threads did not pile up",
        server_after[1] <= server_before[1] + 4,
        f"{server_before[1]} -> {server_after[1]}",
    )
    result.check(
        "this process's memory grew by at most 50 MB over the predictions", here_growth <= 50, f"{here_growth:+.0f} MB"
    )
    result.check("the server is still up, no tracebacks", dashboard.healthy() and dashboard.tracebacks() == 0)
    result.figures["server memory over the uploads"] = (
        f"{server_before[0]:.0f} -> {server_after[0]:.0f} MB ({server_growth:+.0f} MB) over {uploads} uploads in "
        f"{upload_seconds:.0f} s"
    )
    result.figures["server threads"] = f"{server_before[1]} -> {server_after[1]}"
    result.figures["memory over the predictions"] = (
        f"{here_before:.0f} -> {here_after:.0f} MB ({here_growth:+.0f} MB) over {predictions:,} files preprocessed and "
        f"predicted in {prediction_seconds:.0f} s ({refused:,} refused as they should be)"
    )
    return result
