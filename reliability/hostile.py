"""Hostile and broken input through the command line, a real browser upload, the size cap and widgets.

"Handled cleanly" means: a refused file gets a message naming it and what is accepted (never a
traceback, crash or hang), a genuine digit in an unusual format is predicted correctly, a file name
is shown as the literal text it is, and the server keeps answering: after every few bad uploads the
suite uploads a good digit and checks the answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import Page

from reliability import browser
from reliability.corpus import Case, write_corpus
from reliability.processes import PROJECT_ROOT, Dashboard, resident_mb, suite_environment
from reliability.report import SectionResult

# Longer than this for one file is treated as a hang.
HANG_SECONDS = 20.0
# In the browser, a good digit is uploaded after this many bad files, to show the server still answers.
GOOD_EVERY = 3
# The uploader's own refusals (type and size) come from Streamlit's frontend.
UPLOADER_REFUSALS = ("not allowed", "must be", "or smaller")


def in_process(cases: list[Case], predictor) -> SectionResult:
    """Every case straight through ``mnist_model.images`` and the predictor, timed, in this process."""
    from mnist_model import images

    result = SectionResult("Hostile input: the image pipeline in process")
    slowest, slowest_name, clean = 0.0, "", 0
    memory_before = resident_mb()
    for case in cases:
        started = time.perf_counter()
        try:
            prepared = images.preprocess_file(case.content, name=case.name)
            digit = predictor.predict_digit(prepared.model_input)[0]
            outcome, detail = "predict", f"predicted {digit}"
        except images.ImageError as error:
            outcome, detail, digit = "refuse", str(error), None
        except Exception as error:  # noqa: BLE001  (any other exception is exactly what this looks for)
            outcome, detail, digit = "crash", f"{type(error).__name__}: {error}", None
        seconds = time.perf_counter() - started
        if seconds > slowest:
            slowest, slowest_name = seconds, case.name
        good = _clean(case, outcome, detail, digit) and seconds < HANG_SECONDS
        clean += good
        result.check(f"{case.name} ({case.what})", good, f"{outcome}: {detail[:160]} in {seconds:.2f} s")
    result.figures["files handled cleanly"] = f"{clean} of {len(cases)}"
    result.figures["slowest file"] = f"{slowest_name} {slowest:.2f} s"
    result.figures["resident memory after the corpus"] = f"{resident_mb() - memory_before:+.0f} MB"
    return result


def _clean(case: Case, outcome: str, message: str, digit: int | None) -> bool:
    if case.expect == "predict":
        return outcome == "predict" and digit == case.digit
    # A clear message names the file it is about and is a sentence, not a traceback.
    return outcome == "refuse" and case.name in message and "Traceback" not in message


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
