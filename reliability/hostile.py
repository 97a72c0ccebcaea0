"""Hostile and broken input through the command line, a real browser upload, the size cap and widgets.

"Handled cleanly" means: a refused file gets a message naming it and what is accepted (never a
traceback, crash or hang), a genuine digit in an unusual format is predicted correctly, a file name
is shown as the literal text it is, and the server keeps answering: after every few bad uploads the
suite uploads a good digit and checks the answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from playwright.sync_api import Page

from reliability import browser
from reliability.corpus import DRAWING_SIZE, Case, write_corpus
from reliability.processes import (
    PROJECT_ROOT,
    Dashboard,
    peak_resident_mb,
    reset_peak,
    resident_mb,
    suite_environment,
    websocket_handshake,
)
from reliability.report import SectionResult

# Longer than this for one file is treated as a hang.
HANG_SECONDS = 20.0
# The most peak memory one upload or drawing may add beyond what a normal upload adds, in MB.
MAX_EXTRA_MB = 150
# In the browser, a good digit is uploaded after this many bad files, to show the server still answers.
GOOD_EVERY = 3
# The uploader's own refusals (type and size) come from Streamlit's frontend.
UPLOADER_REFUSALS = ("not allowed", "must be", "or smaller")


def in_process(cases: list[Case], drawings: list[Case], predictor) -> SectionResult:
    """Every file through ``mnist_model.images`` and the predictor, and every drawing through
    ``images.preprocess_drawing``, in this process, each with its CPU seconds and the peak memory it
    added; the bounds are 2 s of CPU (a figure) and 150 MB over a normal upload's peak (a check)."""
    from mnist_model import images

    result = SectionResult("Hostile input: the image pipeline in process")
    normal = next(case for case in cases if case.name == "digit.png")
    for _ in range(2):  # the first prediction also warms the predictor up
        _, _, baseline_mb = _measured(partial(images.preprocess_file, normal.content, name=normal.name), predictor)
    groups: dict[str, list[tuple[Case, bool, float, float]]] = {}
    for group, members in (("files", cases), ("drawings", drawings)):
        for case in members:
            if group == "files":
                work = partial(images.preprocess_file, case.content, name=case.name)
            else:
                work = partial(images.preprocess_drawing, case.content, DRAWING_SIZE)
            (outcome, detail, digit), cpu, extra_mb = _measured(work, predictor)
            good = _clean(case, outcome, detail, digit, named=group == "files")
            bounded = extra_mb <= baseline_mb + MAX_EXTRA_MB
            result.check(
                f"{case.name} ({case.what})",
                good and cpu < HANG_SECONDS,
                f"{outcome}: {detail[:160]}; {cpu:.2f} s of CPU, peak memory {extra_mb:+.0f} MB",
            )
            result.check(f"{case.name}: peak memory within {MAX_EXTRA_MB} MB of a normal upload's", bounded)
            groups.setdefault(group, []).append((case, good, cpu, extra_mb))
            for tag in case.tags:
                groups.setdefault(tag, []).append((case, good, cpu, extra_mb))
    for group, rows in groups.items():
        costliest = max(rows, key=lambda row: row[2])
        largest = max(rows, key=lambda row: row[3])
        result.figures[f"{group} in process"] = (
            f"{len(rows)} tried, {sum(row[1] for row in rows)} handled cleanly; worst CPU {costliest[2]:.2f} s "
            f"({costliest[0].name}; bound 2 s), worst extra peak memory {largest[3]:+.0f} MB ({largest[0].name}; "
            f"bound {MAX_EXTRA_MB} MB over a normal upload's {baseline_mb:+.0f} MB)"
        )
    return result


def _measured(work, predictor) -> tuple[tuple[str, str, int | None], float, float]:
    """Run ``work`` (preparing an image) and predict its digit: the outcome, the CPU seconds the
    process spent and the peak resident memory it added, in MB, measured from a trimmed heap."""
    from mnist_model import images

    gc.collect()
    _malloc_trim()
    reset_peak()
    before = resident_mb()
    started = time.process_time()
    try:
        prepared = work()
        digit = int(predictor.predict_digit(prepared.model_input)[0])
        outcome = ("predict", f"predicted {digit}", digit)
    except images.ImageError as error:
        outcome = ("refuse", str(error), None)
    except Exception as error:  # noqa: BLE001  (any other exception is exactly what this looks for)
        outcome = ("crash", f"{type(error).__name__}: {error}", None)
    return outcome, time.process_time() - started, peak_resident_mb() - before


def _malloc_trim() -> None:
    """Hand freed heap memory back to the system, so that one file's peak is not hidden in another's."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the figures are only less exact
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _clean(case: Case, outcome: str, message: str, digit: int | None, *, named: bool = True) -> bool:
    if case.expect == "predict":
        return outcome == "predict" and digit == case.digit
    # A clear message names the file it is about (a drawing has no name) and is a sentence, not a traceback.
    return (
        outcome == "refuse"
        and (case.name in message or not named)
        and (case.reason is None or case.reason in message)
        and "Traceback" not in message
    )


def command_line(cases: list[Case], folder: Path, artifacts: Path) -> SectionResult:
    """``python -m mnist_model predict FILE...`` over the whole corpus, in JSON and in text."""
    result = SectionResult("Hostile input: command line")
    paths = write_corpus(folder, cases)
    command = [sys.executable, "-m", "mnist_model", "predict", *map(str, paths)]
    environment = suite_environment(artifacts)
    clean = 0
    for mode in ("json", "text"):
        started = time.monotonic()
        completed = subprocess.run(
            command + (["--json"] if mode == "json" else []),
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        seconds = time.monotonic() - started
        result.check(
            f"{mode}: exits 1 because some files were refused",
            completed.returncode == 1,
            f"exit {completed.returncode}",
        )
        result.check(f"{mode}: no traceback", "Traceback" not in completed.stderr, completed.stderr[-500:])
        lines = completed.stdout.splitlines()
        result.check(
            f"{mode}: one line per file", len(lines) == len(cases), f"{len(lines)} lines for {len(cases)} files"
        )
        result.figures[f"command line, {mode} output"] = f"{len(cases)} files in {seconds:.1f} s"
        if mode == "json":
            answers = {}
            for line in lines:
                try:
                    record = json.loads(line)
                    answers[record["file"]] = record
                except (ValueError, KeyError):
                    continue
            for case, path in zip(cases, paths, strict=True):
                record = answers.get(str(path), {})
                outcome = "refuse" if "error" in record else "predict" if "digit" in record else "missing"
                good = _clean(case, outcome, record.get("error", ""), record.get("digit"))
                clean += good
                result.check(f"cli {case.name}", good, json.dumps(record)[:200])
        else:
            for case, path, line in zip(cases, paths, lines, strict=False):
                result.check(f"cli text line for {case.name} starts with its name", line.startswith(f"{path}: "), line)
    result.figures["bad inputs tried through the command line"] = str(len(cases))
    result.figures["handled cleanly through the command line"] = f"{clean} of {len(cases)}"
    return result


def browser_uploads(dashboard: Dashboard, cases: list[Case], good: Case, page: Page) -> SectionResult:
    """Upload each case through the Predict page and check the page's answer and the server's health."""
    result = SectionResult("Hostile input: browser uploads")
    browser.open_upload_tab(page, dashboard.url)
    clean = good_answers = good_tries = 0
    slowest = 0.0
    for number, case in enumerate(cases, start=1):
        outcome = browser.upload(page, case.name, case.content, case.mime)
        slowest = max(slowest, outcome.seconds)
        if case.expect == "predict":
            good_case = outcome.kind == "prediction" and outcome.digit == case.digit
        elif outcome.kind == "refused":
            good_case = any(phrase in outcome.text for phrase in UPLOADER_REFUSALS)
        else:
            good_case = outcome.kind == "error" and case.name in outcome.text and outcome.links_or_images == 0
        clean += good_case
        detail = f"{outcome.kind} in {outcome.seconds:.1f} s: {outcome.text[:200]}"
        if outcome.links_or_images:
            detail += f" ({outcome.links_or_images} link/image elements rendered from the file name)"
        result.check(f"upload {case.name} ({case.what})", good_case, detail)
        if case.expect == "refuse" and number % GOOD_EVERY == 0 or number == len(cases):
            good_tries += 1
            answer = browser.upload(page, good.name, good.content, good.mime)
            good_answers += answer.kind == "prediction" and answer.digit == good.digit
            result.check(
                f"after {case.name}: a good upload is answered correctly",
                answer.kind == "prediction" and answer.digit == good.digit,
                f"{answer.kind} {answer.text[:100]}",
            )
    result.check("the server is still up", dashboard.healthy())
    result.check("no traceback in the server log", dashboard.tracebacks() == 0, dashboard.log_text()[-1500:])
    result.figures["bad inputs uploaded in the browser"] = str(len(cases))
    result.figures["handled cleanly in the browser"] = f"{clean} of {len(cases)}"
    result.figures["good uploads between them answered correctly"] = f"{good_answers} of {good_tries}"
    result.figures["slowest answer to an upload"] = f"{slowest:.1f} s"
    result.figures["stale answers left after a removal, cleared by a rerun"] = str(len(browser.STALE_ANSWERS))
    return result


def upload_cap(dashboard: Dashboard, page: Page, good: Case, cap_mb: int) -> SectionResult:
    """Uploads over the server's cap are refused by the server itself, not only by the page's script.

    A good upload from the page is watched to learn its upload URL and XSRF header; the same request
    is then replayed with a body just over the cap (with and without a Content-Length) and must be
    refused with HTTP 413, while one just under the cap is accepted.
    """
    result = SectionResult("Hostile input: upload size cap")
    browser.open_upload_tab(page, dashboard.url)
    browser.clear_uploads(page)
    with page.expect_request(
        lambda request: "/_stcore/upload_file/" in request.url and request.method == "PUT"
    ) as info:
        page.locator(f"{browser.UPLOADER} input[type=file]").set_input_files(
            files=[{"name": good.name, "mimeType": good.mime, "buffer": good.content}]
        )
    request = info.value
    headers = {name: value for name, value in request.all_headers().items() if name.lower() == "x-xsrftoken"}
    base = request.url.rsplit("/", 1)[0]
    sizes = {"just under the cap": cap_mb * 1024 * 1024 - 4096, "just over the cap": cap_mb * 1024 * 1024 + 1}
    statuses = {}
    for label, size in sizes.items():
        response = page.request.put(
            f"{base}/reliability-{size}",
            headers=headers,
            multipart={"file": {"name": "big.png", "mimeType": "image/png", "buffer": bytes(size)}},
            timeout=120_000,
        )
        statuses[label] = response.status
    result.check(
        "a file just under the cap is accepted by the server", statuses["just under the cap"] == 204, str(statuses)
    )
    result.check(
        "a file just over the cap is refused by the server (413)", statuses["just over the cap"] == 413, str(statuses)
    )
    refused = page.evaluate(
        """async ([url, token, size]) => {
            // A chunked body carries no Content-Length, so the server must count as it reads.
            const stream = new ReadableStream({start(controller) {
                const chunk = new Uint8Array(1 << 20);
                for (let sent = 0; sent < size; sent += chunk.length) controller.enqueue(chunk);
                controller.close();
            }});
            try {
                const response = await fetch(url, {method: 'PUT', body: stream, duplex: 'half',
                    headers: {'X-Xsrftoken': token, 'Content-Type': 'multipart/form-data; boundary=x'}});
                return response.status;
            } catch (error) { return 'connection closed: ' + error; }
        }""",
        [f"{base}/reliability-chunked", headers.get("x-xsrftoken", ""), (cap_mb + 3) * 1024 * 1024],
    )
    result.check(
        "a streamed body without Content-Length over the cap is refused",
        refused == 413 or str(refused).startswith("connection closed"),
        str(refused),
    )
    over = browser.upload(page, "over-cap.png", good.content + bytes(cap_mb * 1024 * 1024), good.mime)
    result.check("the page refuses a file over the cap with a message", over.kind == "refused", over.text)
    result.check("the server is still up", dashboard.healthy())
    result.figures["upload cap"] = f"{cap_mb} MB; server answers {statuses} and {refused} for a chunked body"
    return result


def widget_bounds(dashboard: Dashboard, page: Page) -> SectionResult:
    """Out-of-range and malformed test indices typed into the Predict page are bounded."""
    result = SectionResult("Hostile input: widget values")
    page.goto(f"{dashboard.url}/predict")
    field = page.locator('[data-testid="stNumberInput"] input')
    field.wait_for(timeout=120_000)
    for typed in ("-1", "10000", "99999999999999999999", "abc", "1e9", "5.5", "-0"):
        field.focus()
        page.keyboard.press("Control+A")
        page.keyboard.type(typed)
        page.keyboard.press("Enter")
        page.wait_for_timeout(1500)
        shown = field.input_value()
        captions = page.get_by_text("Test image #").all_inner_texts()
        index_text = captions[0].rsplit("#", 1)[-1].strip() if captions else ""
        in_range = index_text.isdigit() and 0 <= int(index_text) <= 9999
        errors = page.locator('[data-testid="stException"]').count()
        result.check(
            f"typed {typed!r}: bounded", in_range and errors == 0, f"field shows {shown!r}, image #{index_text}"
        )
    result.check("the server is still up", dashboard.healthy())
    return result


def widget_bounds_forged() -> SectionResult:
    """Test indices a hostile client sends straight to the server, bypassing the page's own checks.

    Streamlit's AppTest sets the widget's value the way a hand-made websocket message would; the
    server must keep the index in range (or ignore the value) and show no exception.
    """
    from streamlit.testing.v1 import AppTest

    result = SectionResult("Hostile input: forged widget values")
    app = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "app.py"), default_timeout=180)
    app.run()
    dashboard_folder = PROJECT_ROOT / "dashboard"
    predict_page = next(path for path in dashboard_folder.glob("*/predict.py"))
    app.switch_page(str(predict_page.relative_to(dashboard_folder))).run()
    # The first runs show the engine starting, then the model loading: rerun until the field is there.
    began = time.monotonic()
    while not app.number_input and not app.exception and time.monotonic() - began < 300:
        time.sleep(0.5)
        app.run()
    waited = time.monotonic() - began
    exceptions = [str(item.value)[:200] for item in app.exception]
    result.check("the Predict page shows the test-index field", bool(app.number_input), f"{waited:.0f} s, {exceptions}")
    if not app.number_input:
        return result
    for forged in (-1, 10000, 10**12, -(10**12)):
        app.number_input[0].set_value(forged).run()
        exceptions = [str(item.value)[:200] for item in app.exception]
        value = app.number_input[0].value
        bounded = isinstance(value, int) and 0 <= value <= 9999
        result.check(
            f"forged test index {forged}: bounded, no exception", bounded and not exceptions, f"{value}, {exceptions}"
        )
    return result


def host_names(dashboard: Dashboard) -> SectionResult:
    """A page elsewhere whose name resolves to this machine (DNS rebinding) gets no session: the
    server takes WebSocket handshakes only under this machine's own names."""
    result = SectionResult("Hostile input: host names")
    port = dashboard.url.rsplit(":", 1)[1]
    expected = {f"127.0.0.1:{port}": 101, f"localhost:{port}": 101, "rebound.example": 403, f"evil.test:{port}": 403}
    refused = 0
    for host, status in expected.items():
        answer = websocket_handshake(dashboard.url, host)
        result.check(f"a handshake under the name {host}: HTTP {status}", answer == status, f"HTTP {answer}")
        refused += status == 403 and answer == 403
    foreign = sum(status == 403 for status in expected.values())
    result.figures["host names"] = f"{len(expected)} tried, {foreign} foreign names refused: {refused}"
    return result


# Terminal escapes a planted text might hold: set the window title, then clear the screen.
TERMINAL_ESCAPE = "\x1b]0;owned\x07\x1b[2J"


def plant_escaping_manifest(store: Path) -> str:
    """Two runs in ``store``, mlp-0123456789abcdef and mlp-fedcba9876543210, whose second manifest
    has terminal escapes where its date belongs. Returns those escapes."""
    from mnist_model import artifacts
    from mnist_model.settings import TrainingSettings

    manifest = {
        "settings": TrainingSettings(epochs=1).to_dict(),
        "history": [],
        "test_loss": 0.3,
        "test_accuracy": 0.92,
        "created": "2026-12-01T21:00:00+00:00",
        "train_seconds": 2.0,
    }
    artifacts.save_run_bytes(store, "mlp-0123456789abcdef", b"a model", manifest)
    planted = artifacts.save_run_bytes(store, "mlp-fedcba9876543210", b"a model", manifest)
    planted_manifest = json.loads((planted / artifacts.MANIFEST_FILE).read_text())
    planted_manifest["created"] = TERMINAL_ESCAPE + "2026"
    (planted / artifacts.MANIFEST_FILE).write_text(json.dumps(planted_manifest))
    return TERMINAL_ESCAPE


def terminal_escapes(scratch: Path, artifacts_with_model: Path) -> SectionResult:
    """Text from files the command line did not write (a planted manifest, file names) reaches the
    terminal with its control characters escaped, so it cannot send escape sequences.

    artifacts_with_model: a store holding the default model, for the predictions."""

    result = SectionResult("Hostile input: terminal escapes")
    store = scratch / "store"
    escape = plant_escaping_manifest(store)
    named = scratch / f"{escape}digit.txt"
    named.write_text("not an image")
    commands = {
        "runs, over a planted manifest": (["runs"], store),
        "predict, a file named with escapes": (["predict", str(named)], artifacts_with_model),
        "predict --json, a file named with escapes": (["predict", "--json", str(named)], artifacts_with_model),
    }
    clean = 0
    for name, (arguments, folder) in commands.items():
        completed = subprocess.run(
            [sys.executable, "-m", "mnist_model", *arguments],
            cwd=PROJECT_ROOT,
            env=suite_environment(folder),
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = completed.stdout + completed.stderr
        good = "\x1b" not in output and "\x07" not in output and "Traceback" not in output
        clean += good
        result.check(f"{name}: no control character reaches the terminal", good, repr(output[-300:]))
    result.figures["terminal escapes"] = f"{len(commands)} commands tried, {clean} printed no control character"
    return result
