"""Faults of the work engine, seen from the dashboard: Ray cannot start, the cluster named by
RAY_ADDRESS cannot be reached, and a training worker is killed mid-training.

Each case runs a real dashboard server. The page must say what happened (and offer to try again),
the server must keep answering, its log must record the fault without a traceback from the
dashboard, and nothing half-written may reach the store.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from playwright.sync_api import Page

from reliability.processes import Dashboard, descendants, free_port
from reliability.report import SectionResult

# Seconds to wait for a message on the page, and for the default model's training to start.
MESSAGE_SECONDS = 120
TRAINING_START_SECONDS = 180


def engine_faults(scratch: Path, page: Page) -> SectionResult:
    result = SectionResult("Faults: the model engine")
    scratch.mkdir(parents=True, exist_ok=True)
    _ray_cannot_start(scratch, page, result)
    _cluster_unreachable(scratch, page, result)
    _worker_killed(scratch, page, result)
    return result


def _error_text(page: Page) -> str:
    alert = page.locator('[data-testid="stAlertContentError"]')
    try:
        alert.first.wait_for(timeout=MESSAGE_SECONDS * 1000)
        return alert.first.inner_text()
    except Exception as error:  # noqa: BLE001  (no message at all is the failure)
        return f"no error message shown ({error})"


def _no_exception(page: Page) -> bool:
    return page.locator('[data-testid="stException"]').count() == 0


def _ray_cannot_start(scratch: Path, page: Page, result: SectionResult) -> None:
    # Ray keeps its sockets and logs under RAY_TMPDIR: a path below a file cannot be created.
    blocker = scratch / "not-a-folder"
    blocker.write_text("")
    with Dashboard(scratch / "no-ray", scratch / "no-ray.log", RAY_TMPDIR=str(blocker / "ray")) as dashboard:
        page.goto(dashboard.url)
        text = _error_text(page)
        result.check("Ray cannot start: the page says the engine is not available", "not available" in text, text)
        result.check("Ray cannot start: a way to try again", page.get_by_role("button", name="Try again").count() == 1)
        result.check("Ray cannot start: no exception on the page", _no_exception(page))
        result.check("Ray cannot start: the server keeps answering", dashboard.healthy())
        log = dashboard.log_text()
        result.check("Ray cannot start: the log says why", "did not start" in log, log[-1500:])
        result.check("Ray cannot start: no traceback in the server log", dashboard.tracebacks() == 0, log[-1500:])


def _cluster_unreachable(scratch: Path, page: Page, result: SectionResult) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with Dashboard(scratch / "unreachable", scratch / "unreachable.log", RAY_ADDRESS=address) as dashboard:
        page.goto(dashboard.url)
        text = _error_text(page)
        seconds = time.monotonic() - started
        result.check(
            "unreachable cluster: the page names RAY_ADDRESS, not the address (the log has it)",
            "RAY_ADDRESS" in text and "cannot be reached" in text and address not in text,
            text,
        )
        result.check("unreachable cluster: no exception on the page", _no_exception(page))
        result.check("unreachable cluster: the server keeps answering", dashboard.healthy())
        log = dashboard.log_text()
        result.check(
            "unreachable cluster: the log says so, with the address",
            f"cannot connect to the Ray cluster at {address}" in log,
            log[-1500:],
        )
        result.check("unreachable cluster: no traceback in the server log", dashboard.tracebacks() == 0, log[-1500:])
        result.figures["unreachable cluster: seconds until the page said so"] = f"{seconds:.1f}"


def _worker_killed(scratch: Path, page: Page, result: SectionResult) -> None:
    artifacts = scratch / "killed-artifacts"
    with Dashboard(artifacts, scratch / "killed.log") as dashboard:
        page.goto(dashboard.url)
        # The first visit trains the default model: kill its worker once an epoch is under way.
        try:
            page.get_by_text(re.compile(r"^Epoch \d+ of \d+")).first.wait_for(timeout=TRAINING_START_SECONDS * 1000)
        except Exception as error:  # noqa: BLE001
            result.check("worker killed: training started", False, str(error))
            return
        deadline = time.monotonic() + 30
        while not (workers := _training_workers(dashboard.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        result.check("worker killed: one training worker found", len(workers) == 1, str(workers))
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        text = _error_text(page)
        result.check("worker killed: the page says the worker stopped", "stopped unexpectedly" in text, text)
        result.check("worker killed: no exception on the page", _no_exception(page))
        manifests = list((artifacts / "runs").glob("*/manifest.json"))
        result.check("worker killed: nothing stored", not manifests, str(manifests))
        result.check("worker killed: the server keeps answering", dashboard.healthy())
        log = dashboard.log_text()
        result.check("worker killed: the log records it", "worker for" in log and "died" in log, log[-1500:])
        # Trying again trains the model for real.
        retry = page.get_by_role("button", name="Try again")
        if not result.check("worker killed: a way to try again", retry.count() >= 1):
            return
        retry.first.click()
        try:
            page.get_by_text("Test accuracy").first.wait_for(timeout=TRAINING_START_SECONDS * 2000)
            recovered = True
        except Exception:  # noqa: BLE001
            recovered = False
        result.check("worker killed: Try again trains the model", recovered, dashboard.log_text()[-1500:])
        result.check("worker killed: no traceback in the server log", dashboard.tracebacks() == 0, log[-1500:])


def _training_workers(server: int) -> list[int]:
    """The processes below ``server`` whose title is a Ray training task's ("ray::train ...")."""
    return [pid for pid, command in descendants(server) if command.startswith("ray::train")]
