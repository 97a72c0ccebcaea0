"""Driving the dashboard in headless Chromium: opening pages, uploading files, reading what is shown.

Chromium is Debian's (``$CHROMIUM`` or ``chromium`` on the PATH); Playwright only drives it, nothing
is downloaded. Each browser context is a separate Streamlit session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# Headless Chromium as root on a machine without network: the flags that keep it quiet and offline.
# The browser test and the dashboard benchmark use them too.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UPLOADER = '[data-testid="stFileUploader"]'
ERROR_ALERT = '[data-testid="stAlertContentError"]'


def chromium_executable() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("Chromium is not installed: apt-get install chromium, or set $CHROMIUM")
    return found


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def metric_values(page: Page) -> dict[str, str]:
    """Every ``st.metric`` on the page: label -> value as shown."""
    values = {}
    for metric in page.locator('[data-testid="stMetric"]').all():
        label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        values[label] = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return values


def wait_for_metric(page: Page, label: str, timeout: float) -> str | None:
    """The value of the metric ``label`` once it appears, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = metric_values(page).get(label)
            if value:
                return value
        page.wait_for_timeout(500)
    return None


def open_upload_tab(page: Page, url: str, timeout: float = 120) -> None:
    page.goto(f"{url}/predict", timeout=timeout * 1000)
    page.get_by_role("tab", name="Upload an image").click(timeout=timeout * 1000)
    page.locator(UPLOADER).wait_for(timeout=timeout * 1000)


@dataclass(frozen=True)
class UploadOutcome:
    """What the page showed for one upload.

    kind: "error" (the page's error message), "refused" (the uploader refused the file itself),
    "prediction" (a predicted digit), "not a digit" (the digit detector's answer, with its reason) or
    "nothing" (no answer within the time allowed).
    """

    kind: str
    text: str = ""
    digit: int | None = None
    links_or_images: int = 0  # <a> and <img> elements inside the error message
    seconds: float = 0.0


# The app's root element while no script run is under way.
SCRIPT_NOT_RUNNING = "[data-testid=stApp][data-test-script-state=notRunning]"
# True once the page shows no answer (an error, a prediction or "not a digit") to a previous file.
STALE_ANSWER_GONE = """() => !document.querySelector('[data-testid=stAlertContentError]')
    && ![...document.querySelectorAll('[data-testid=stMetricLabel]')]
        .some((label) => ['Predicted digit', 'Answer'].includes(label.innerText.trim()))"""
# Seconds an emptied uploader may keep showing the previous file's answer before the page is rerun.
STALE_SECONDS = 10.0
# When clear_uploads had to rerun the page to clear a stale answer (a Streamlit race), this process.
STALE_ANSWERS: list[float] = []


def clear_uploads(page: Page, timeout: float = 90) -> None:
    """Remove every file from the uploader and wait for the page to show its empty state again.

    A click that lands while the page is re-rendering can be lost, so the chips are clicked away
    until none is left and the empty state shows, not a fixed number of times.
    """
    # Removing the file while the previous answer is still being drawn races with that run (the
    # answer can stay on screen below the empty state), so wait for it to end, as a reader would.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.locator(SCRIPT_NOT_RUNNING).wait_for(timeout=timeout * 1000)
    chips = page.locator(f'{UPLOADER} [data-testid="stFileChipDeleteBtn"] button')
    empty_state = page.get_by_text("Upload a photo, scan or drawing")
    deadline = time.monotonic() + timeout
    emptied = None  # when the last chip went
    try:
        while chips.count() or not empty_state.is_visible():
            if time.monotonic() > deadline:
                raise PlaywrightTimeoutError(f"the empty state did not show within {timeout:.0f} s")
            if chips.count():
                emptied = None
                with contextlib.suppress(PlaywrightTimeoutError):
                    chips.first.click(timeout=2000)
            elif emptied is None:
                emptied = time.monotonic()
            elif time.monotonic() - emptied > STALE_SECONDS:
                _rerun(page)
                emptied = time.monotonic()
            page.wait_for_timeout(250)
        # The previous file's answer stays on screen, stale, until the run that shows the empty state
        # has ended: wait until it is gone, so that it is never read as the next file's answer.
        while True:
            try:
                page.wait_for_function(
                    STALE_ANSWER_GONE, timeout=min(max(deadline - time.monotonic(), 1), STALE_SECONDS) * 1000
                )
                break
            except PlaywrightTimeoutError:
                if time.monotonic() > deadline:
                    raise
                _rerun(page)
    except PlaywrightTimeoutError as error:
        shown = page.locator("[data-testid=stMain]").first.inner_text(timeout=5000)
        message = f"the uploader did not clear in {timeout:.0f} s; the page shows:\n{shown[:3000]}"
        raise AssertionError(message) from error


def _rerun(page: Page) -> None:
    """Rerun the page, as a person would when the previous answer stays under an emptied uploader.

    Streamlit sometimes drops the fragment run that a removal asks for, or leaves that run's stale
    elements on screen. This presses Streamlit's own key for a rerun and counts it (STALE_ANSWERS),
    so that the suite reports how often it happened.
    """
    STALE_ANSWERS.append(time.monotonic())
    page.locator("body").press("r")


def upload(page: Page, name: str, content: bytes, mime: str, timeout: float = 60) -> UploadOutcome:
    """Upload one file through the Predict page's file uploader and read what the page answers."""
    clear_uploads(page)
    started = time.monotonic()
    page.locator(f"{UPLOADER} input[type=file]").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": content}]
    )
    deadline = started + timeout
    while time.monotonic() < deadline:
        refused = page.locator(f'{UPLOADER} [data-testid="stFileChip"][aria-invalid="true"]')
        if refused.count():
            message = page.locator(f'{UPLOADER} [role="alert"]').all_inner_texts()
            return UploadOutcome("refused", " ".join(message), seconds=time.monotonic() - started)
        alert = page.locator(ERROR_ALERT)
        if alert.count():
            first = alert.first
            markup = first.locator("a, img").count()
            return UploadOutcome(
                "error", first.inner_text(), links_or_images=markup, seconds=time.monotonic() - started
            )
        values = metric_values(page)
        if values.get("Answer") == "Not a digit":
            reason = " ".join(page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts())
            return UploadOutcome("not a digit", reason, seconds=time.monotonic() - started)
        value = values.get("Predicted digit")
        if value:
            digit = int(value) if value.isdigit() else None
            return UploadOutcome("prediction", value, digit=digit, seconds=time.monotonic() - started)
        page.wait_for_timeout(150)
    return UploadOutcome("nothing", seconds=time.monotonic() - started)
