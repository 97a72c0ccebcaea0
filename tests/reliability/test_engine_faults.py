"""Faults of the work engine, seen from the dashboard: Ray cannot start, the cluster named by
RAY_ADDRESS cannot be reached, and a training worker is killed mid-training.

Each test runs a real dashboard server. The page must say what happened (and offer to try again),
the server must keep answering, its log must record the fault without a traceback from the
dashboard, and nothing half-written may reach the store.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from playwright.sync_api import Page

from reliability.processes import Dashboard, descendants, free_port

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.browser]

# Seconds to wait for a message on the page, and for the default model's training to start.
MESSAGE_SECONDS = 120
TRAINING_START_SECONDS = 180


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


def error_text(page: Page) -> str:
    alert = page.locator('[data-testid="stAlertContentError"]').first
    alert.wait_for(timeout=MESSAGE_SECONDS * 1000)
    return alert.inner_text()


def no_exception(page: Page) -> bool:
    return page.locator('[data-testid="stException"]').count() == 0


def test_ray_that_cannot_start_is_explained_with_a_way_to_try_again(page, tmp_path):
    # Ray keeps its sockets and logs under RAY_TMPDIR: a path below a file cannot be created.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with Dashboard(tmp_path / "artifacts", tmp_path / "server.log", RAY_TMPDIR=str(blocker / "ray")) as server:
        page.goto(server.url)
        text = error_text(page)
        assert "not available" in text, text
        assert page.get_by_role("button", name="Try again").count() == 1
        assert no_exception(page)
        assert server.healthy()
        log = server.log_text()
        assert "did not start" in log, log[-1500:]
        assert server.tracebacks() == 0, log[-1500:]


def test_an_unreachable_cluster_is_explained_without_its_address(page, tmp_path, figures):
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with Dashboard(tmp_path / "artifacts", tmp_path / "server.log", RAY_ADDRESS=address) as server:
        page.goto(server.url)
        text = error_text(page)
        figures.note("unreachable cluster: seconds until the page said so", f"{time.monotonic() - started:.1f}")
        # The page names RAY_ADDRESS, not the address: the log has it.
        assert "RAY_ADDRESS" in text and "cannot be reached" in text and address not in text, text
        assert no_exception(page)
        assert server.healthy()
        log = server.log_text()
        assert f"cannot connect to the Ray cluster at {address}" in log, log[-1500:]
        assert server.tracebacks() == 0, log[-1500:]


def test_a_killed_training_worker_is_explained_stores_nothing_and_can_be_retried(page, tmp_path):
    artifacts = tmp_path / "artifacts"
    with Dashboard(artifacts, tmp_path / "server.log") as server:
        page.goto(server.url)
        # The first visit trains the default model: kill its worker once an epoch is under way.
        page.get_by_text(re.compile(r"^Epoch \d+ of \d+")).first.wait_for(timeout=TRAINING_START_SECONDS * 1000)
        deadline = time.monotonic() + 30
        while not (workers := training_workers(server.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 1, workers
        os.kill(workers[0], signal.SIGKILL)
        text = error_text(page)
        assert "stopped unexpectedly" in text, text
        assert no_exception(page)
        assert not list((artifacts / "runs").glob("*/manifest.json")), "a manifest was stored"
        assert server.healthy()
        log = server.log_text()
        assert "worker for" in log and "died" in log, log[-1500:]
        # Trying again trains the model for real.
        retry = page.get_by_role("button", name="Try again")
        assert retry.count() >= 1, "no way to try again"
        retry.first.click()
        page.get_by_text("Test accuracy").first.wait_for(timeout=TRAINING_START_SECONDS * 2000)
        assert server.tracebacks() == 0, server.log_text()[-1500:]


def training_workers(server: int) -> list[int]:
    """The processes below ``server`` whose title is a Ray training task's ("ray::train ...")."""
    return [pid for pid, command in descendants(server) if command.startswith("ray::train")]
