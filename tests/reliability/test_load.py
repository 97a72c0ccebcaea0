"""Load: eight sessions at once on an empty cache, sixteen threads on one predictor, and a soak.

The eight sessions are the ``eight_sessions`` fixture (see conftest.py), which the other browser
tests wait for, since the model they share is the one those sessions saw trained. The soak measures
the server's resident memory and threads before and after many uploads, and this process's memory
over thousands of predictions made the way the Predict page makes them (``images.preprocess_file``
then a shared ``Predictor``).
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from reliability import browser as pages
from reliability.figures import percentile
from reliability.processes import resident_mb, thread_count

pytestmark = [pytest.mark.reliability, pytest.mark.integration]
THREADS = 16


@pytest.mark.browser
def test_eight_sessions_on_an_empty_cache_all_show_a_model(eight_sessions):
    assert all(accuracy for accuracy, _, _ in eight_sessions.shown), eight_sessions.shown


@pytest.mark.browser
def test_eight_sessions_show_the_same_model_accuracy_and_time_stamp(eight_sessions):
    assert len(set(eight_sessions.shown)) == 1, eight_sessions.shown


@pytest.mark.browser
def test_eight_sessions_on_an_empty_cache_train_once(eight_sessions):
    assert len(eight_sessions.runs) == 1, eight_sessions.runs
    assert eight_sessions.tracebacks == 0, eight_sessions.log[-1500:]


@dataclass(frozen=True)
class LoadSeen:
    latencies: list[list[float]]
    errors: list[str]
    wrong: int
    threads_before: int
    threads_after: int


@pytest.fixture(scope="module")
def under_load(predictor, mnist, mode, figures) -> LoadSeen:
    """``THREADS`` threads calling one shared predictor for the mode's load seconds."""
    test_images, seconds = mnist.test_images, mode.load_seconds
    expected = predictor.predict(test_images[:256]).argmax(axis=1)
    latencies: list[list[float]] = [[] for _ in range(THREADS)]
    errors: list[str] = []
    wrong = [0]
    stop = threading.Event()
    barrier = threading.Barrier(THREADS)

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

    workers = [threading.Thread(target=work, args=(number,), name=f"load-{number}") for number in range(THREADS)]
    threads_before = thread_count()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    every = [latency for per_thread in latencies for latency in per_thread]
    p50, p99 = percentile(every, 0.5) * 1000, percentile(every, 0.99) * 1000
    figures.note(
        "predictions under load",
        f"{len(every):,} by {THREADS} threads in {seconds:.0f} s ({len(every) / seconds:,.0f}/s), {len(errors)} errors",
    )
    figures.note("latency p50 / p99", f"{p50:.2f} ms / {p99:.2f} ms (max {max(every, default=0) * 1000:.1f} ms)")
    return LoadSeen(latencies, errors, wrong[0], threads_before, thread_count())


def test_sixteen_threads_share_one_predictor_without_errors(under_load):
    assert not under_load.errors, "; ".join(under_load.errors[:3])
    assert all(under_load.latencies), [len(per_thread) for per_thread in under_load.latencies]


def test_every_answer_under_load_equals_the_single_threaded_one(under_load):
    assert under_load.wrong == 0, f"{under_load.wrong} answers differed"


def test_the_load_threads_all_end(under_load):
    assert under_load.threads_after <= under_load.threads_before, (under_load.threads_before, under_load.threads_after)


@dataclass(frozen=True)
class SoakSeen:
    uploads: int
    answered: int
    correct: int
    server_before: tuple[float, int]
    server_after: tuple[float, int]
    here_growth: float
    server_healthy: bool
    tracebacks: int


@pytest.fixture(scope="module")
def soaked(server, server_page, predictor, files, mode, figures) -> SoakSeen:
    """Many uploads to the server and thousands of predictions here, the mode's counts of each."""
    from mnist_model import images

    # Every file the browser uploads, but the one over the upload limit (it never reaches the server).
    cases = [
        case for case in files.values() if (case.browser or mode.browser_all_cases) and case.name != "over-10-mb.png"
    ]
    # Warm up with one pass over every case first, so the figures measure growth over the soak and
    # not first-use caches or the allocator's first high-water mark.
    pages.open_upload_tab(server_page, server.url)
    for case in cases:
        pages.upload(server_page, case.name, case.content, case.mime)
    server_before = (resident_mb(server.pid), thread_count(server.pid))
    gc.collect()
    here_before = resident_mb()
    answered = correct = 0
    started = time.monotonic()
    for number in range(mode.soak_uploads):
        case = cases[number % len(cases)]
        outcome = pages.upload(server_page, case.name, case.content, case.mime)
        answered += outcome.kind != "nothing"
        correct += case.expect != "predict" or outcome.digit == case.digit
    upload_seconds = time.monotonic() - started
    server_after = (resident_mb(server.pid), thread_count(server.pid))
    # The bombs and giant images are left out here: they would measure decoding time, not leaks.
    small = [
        case for case in cases if len(case.content) < 1024 * 1024 and not case.name.startswith(("bomb", "digit-l"))
    ]
    started = time.monotonic()
    refused = 0
    for number in range(mode.soak_predictions):
        case = small[number % len(small)]
        try:
            prepared = images.preprocess_file(case.content, name=case.name)
            predictor.predict_digit(prepared.model_input)
        except images.ImageError:
            refused += 1
    prediction_seconds = time.monotonic() - started
    gc.collect()
    here_growth = resident_mb() - here_before
    server_growth = server_after[0] - server_before[0]
    figures.note(
        "server memory over the uploads",
        f"{server_before[0]:.0f} -> {server_after[0]:.0f} MB ({server_growth:+.0f} MB) over {mode.soak_uploads} "
        f"uploads in {upload_seconds:.0f} s",
    )
    figures.note("server threads over the uploads", f"{server_before[1]} -> {server_after[1]}")
    figures.note(
        "memory over the predictions",
        f"{here_before:.0f} -> {here_before + here_growth:.0f} MB ({here_growth:+.0f} MB) over "
        f"{mode.soak_predictions:,} files preprocessed and predicted in {prediction_seconds:.0f} s "
        f"({refused:,} refused as they should be)",
    )
    return SoakSeen(
        mode.soak_uploads,
        answered,
        correct,
        server_before,
        server_after,
        here_growth,
        server.healthy(),
        server.tracebacks(),
    )


@pytest.mark.browser
def test_every_soak_upload_is_answered_and_every_digit_right(soaked):
    assert soaked.answered == soaked.uploads, f"{soaked.answered} of {soaked.uploads} answered"
    assert soaked.correct == soaked.uploads, f"{soaked.correct} of {soaked.uploads} right"


@pytest.mark.browser
def test_the_server_memory_and_threads_stay_flat_over_the_soak(soaked):
    growth = soaked.server_after[0] - soaked.server_before[0]
    assert growth <= 50, f"the server grew by {growth:+.0f} MB"
    assert soaked.server_after[1] <= soaked.server_before[1] + 4, (soaked.server_before, soaked.server_after)
    assert soaked.server_healthy and soaked.tracebacks == 0


@pytest.mark.browser
def test_memory_here_stays_flat_over_thousands_of_predictions(soaked):
    assert soaked.here_growth <= 50, f"{soaked.here_growth:+.0f} MB"
