"""The reliability suite's fixtures: its mode, one scratch folder, the hostile corpus, and one dashboard
server that eight sessions meet on an empty cache (which trains the default model once) and that the
other browser tests then share.

Everything here is package-scoped: the server, its page and the environment end with this folder's
tests. The suite runs on the real MNIST copy and Debian's Chromium (see ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from reliability import browser as pages
from reliability import corpus
from reliability.figures import Figures
from reliability.processes import DEFAULT_MODEL_ENV, Dashboard
from reliability.suite import MODES, Mode

FIGURES = pytest.StashKey[Figures]()
SESSIONS = 8
# With eight sessions open the default model trains in four to eight minutes on two cores; allow fifteen.
TRAINING_TIMEOUT = 900


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = Figures()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize over the corpus by name: ``file_name`` (every file), ``upload_name`` (the files the
    browser uploads: a marked share in quick mode, all in the others) and ``drawing_name``."""
    mode = MODES[metafunc.config.getoption("reliability_mode")]
    tables = {
        "file_name": corpus.names(corpus.FILES),
        "upload_name": corpus.names(corpus.FILES, browser_only=not mode.browser_all_cases),
        "drawing_name": corpus.names(corpus.DRAWINGS),
    }
    for argument, names in tables.items():
        if argument in metafunc.fixturenames:
            metafunc.parametrize(argument, names, ids=[_test_id(name) for name in names])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The quick mode leaves out the tests marked ``full_mode``."""
    if MODES[config.getoption("reliability_mode")].every_test:
        return
    left_out = [item for item in items if item.get_closest_marker("full_mode")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("full_mode")]


def _test_id(name: str) -> str:
    """A file name as a test id that ``-k`` can select: markup and spaces become dashes."""
    cleaned = "".join(character if character.isalnum() or character in ".-_" else "-" for character in name)
    return "-".join(part for part in cleaned.split("-") if part) or "unnamed"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    figures = config.stash.get(FIGURES, None)
    if figures is None or not figures.lines():
        return
    terminalreporter.section(f"reliability figures ({config.getoption('reliability_mode')} mode)")
    for line in figures.lines():
        terminalreporter.write_line(line)
    report = config.getoption("reliability_report")
    if report is not None:
        figures.write(report)


@pytest.fixture(scope="package")
def mode(request: pytest.FixtureRequest) -> Mode:
    return MODES[request.config.getoption("reliability_mode")]


@pytest.fixture(scope="package")
def figures(request: pytest.FixtureRequest) -> Figures:
    return request.config.stash[FIGURES]


@pytest.fixture(scope="package", autouse=True)
def suite_defaults(trained_detector):
    """As for the servers the suite starts (``processes.suite_environment``): the dense network is the
    default model in this process too, and the digit detector is trained before any server needs it."""
    with pytest.MonkeyPatch.context() as patch:
        if DEFAULT_MODEL_ENV not in os.environ:
            patch.setenv(DEFAULT_MODEL_ENV, "mlp")
        yield


@pytest.fixture(scope="package")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="package")
def files(mnist) -> dict[str, corpus.Case]:
    return {case.name: case for case in corpus.hostile_cases(mnist.test_images, mnist.test_labels)}


@pytest.fixture(scope="package")
def drawings(mnist) -> dict[str, corpus.Case]:
    return {case.name: case for case in corpus.hostile_drawings(mnist.test_images, mnist.test_labels)}


@pytest.fixture(scope="package")
def good(files) -> corpus.Case:
    """A plain PNG of a digit: uploaded between bad files to show the server still answers."""
    return files["digit.png"]


@pytest.fixture(scope="package")
def main_artifacts(scratch: Path) -> Path:
    return scratch / "main-artifacts"


@pytest.fixture(scope="package")
def main_server(main_artifacts: Path, scratch: Path):
    with Dashboard(main_artifacts, scratch / "main-server.log") as dashboard:
        yield dashboard


@dataclass(frozen=True)
class SessionsSeen:
    """What eight sessions opened at once on an empty cache showed: per session (test accuracy, model,
    training time stamp), and the server's training runs and tracebacks afterwards."""

    shown: list[tuple[str | None, str, str]]
    runs: list[str]
    tracebacks: int
    log: str


@pytest.fixture(scope="package")
def eight_sessions(main_server: Dashboard, main_artifacts: Path, browser, figures: Figures) -> SessionsSeen:
    """Eight browser contexts (eight Streamlit sessions) open the main server within a second of each
    other, while its artifacts folder is empty, and wait until each shows a model."""
    assert not list(main_artifacts.glob("runs/*/manifest.json")), "the eight sessions must meet an empty cache"
    contexts = [browser.new_context() for _ in range(SESSIONS)]
    opened_pages = [context.new_page() for context in contexts]
    started = time.monotonic()
    for page in opened_pages:
        page.goto(main_server.url, wait_until="commit")
    opened = time.monotonic() - started
    shown = []
    for page in opened_pages:
        remaining = max(10.0, TRAINING_TIMEOUT - (time.monotonic() - started))
        accuracy = pages.wait_for_metric(page, "Test accuracy", timeout=remaining)
        # Streamlit draws a page element by element: give the model's caption a moment to follow.
        caption = page.locator('[data-testid="stCaptionContainer"]', has_text="epochs").first
        try:
            caption.wait_for(timeout=10_000)
            model = caption.inner_text()
        except PlaywrightError:
            model = ""
        shown.append((accuracy, model.split(" · ")[0], model.rsplit("trained ", 1)[-1]))
    ready = time.monotonic() - started
    for context in contexts:
        context.close()
    seen = SessionsSeen(shown, main_server.training_runs(), main_server.tracebacks(), main_server.log_text())
    figures.note("sessions held", f"{SESSIONS}, opened within {opened:.1f} s, all showing a model after {ready:.0f} s")
    figures.note("training runs counted in the log", str(len(seen.runs)))
    figures.note("test accuracy shown by the first session", str(shown[0][0]))
    return seen


def _has_model(artifacts: Path) -> bool:
    return any(artifacts.glob("runs/*/manifest.json"))


@pytest.fixture(scope="package")
def server(eight_sessions: SessionsSeen, main_server: Dashboard, main_artifacts: Path) -> Dashboard:
    """The main server, holding the default model. If the eight sessions did not get it, it is trained
    here and the server restarted, so that their failure is reported once, by their own tests."""
    if not _has_model(main_artifacts):
        from mnist_model.training import train

        train(artifacts_dir=main_artifacts)
        main_server.stop()
        main_server.start()
    return main_server


@pytest.fixture(scope="package")
def server_page(server: Dashboard, browser):
    page = browser.new_page()
    yield page
    page.close()


@pytest.fixture(scope="package")
def model_store(request: pytest.FixtureRequest, main_artifacts: Path) -> Path:
    """The main artifacts folder, holding the default model. When a test of the eight sessions is among
    those chosen, they must meet the empty cache first, so the model is the one their server trained;
    otherwise it is trained here."""
    from mnist_model.training import train

    if any("eight_sessions" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("server")
    train(artifacts_dir=main_artifacts)
    return main_artifacts


@pytest.fixture(scope="package")
def predictor(model_store: Path):
    """The predictor the dashboard uses, for the default settings cached in the main store."""
    from mnist_model.predict import Predictor
    from mnist_model.training import train

    return Predictor(train(artifacts_dir=model_store).model)
