"""Faults: training processes killed mid-training and mid-save, storage that refuses writes, and MNIST
missing or corrupt. (Corrupted and planted cache entries are the tamper tests of tests/test_train.py.)

Kills are real SIGKILLs of a separate training process (``reliability.worker``). Storage faults are
real where the machine allows: a read-only bind mount and a 200 kB tmpfs in a private mount
namespace; an artifacts path beneath a regular file stands for a folder that is missing and cannot
be created. The checks then look at what the next start does with what was left behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import filelock
import numpy as np
import pytest

from reliability import browser as pages
from reliability.processes import PROJECT_ROOT, Dashboard, namespaces_available, storage_wrapper, suite_environment

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

KILL_POINTS = {
    "fit": "during training (a third of the way through fit)",
    "model-file": "while the model file is being written (half of it in its temporary file)",
    "model-renamed": "after the model file is in place, before its manifest is written",
    "manifest-file": "while the manifest is written (temporary file complete, not yet renamed)",
}


def _worker(root: Path, mode: str, wrapper: list[str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        (wrapper or []) + [sys.executable, "-m", "reliability.worker", str(root), mode],
        cwd=PROJECT_ROOT,
        env=suite_environment(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_at(process: subprocess.Popen, point: str, timeout: float = 300) -> str:
    """Send SIGKILL at ``point``; returns what was happening when it landed."""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        if point == "fit" and line.startswith("progress training"):
            if float(line.split()[2]) >= 0.33:
                process.send_signal(signal.SIGKILL)
                return line.strip()
        elif line.startswith("paused"):
            process.send_signal(signal.SIGKILL)
            return line.strip()
        if time.monotonic() > deadline:
            break
    return "the process ended before the kill point"


def _entry_files(root: Path) -> list[str]:
    runs = root / "runs"
    return sorted(str(path.relative_to(runs)) for path in runs.rglob("*")) if runs.is_dir() else []


@pytest.fixture(scope="module")
def small_mnist():
    from reliability.worker import small_mnist

    return small_mnist()


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_kill_leaves_nothing_half_written_in_use(point, small_mnist, tmp_path, figures):
    """SIGKILL at one moment of a training run: the lock is free, the half-done entry is not loaded,
    the next start retrains and saves a verified entry, and the start after that loads it."""
    from mnist_model import artifacts
    from mnist_model.training import train
    from reliability.worker import KILL_SETTINGS

    key = artifacts.run_key(KILL_SETTINGS, small_mnist.fingerprint)
    root = tmp_path / f"kill-{point}"
    process = _worker(root, point)
    landed = _kill_at(process, point)
    process.wait(timeout=60)
    left = _entry_files(root)
    assert process.returncode == -signal.SIGKILL, f"not killed {KILL_POINTS[point]}: {landed}"
    lock = filelock.FileLock(root / "locks" / f"{key}.lock")
    lock.acquire(timeout=10)  # the dead process's lock is free
    lock.release()
    assert artifacts.load_run(root, key) is None, f"the half-written entry was loadable: {left}"
    run = train(KILL_SETTINGS, data=small_mnist, artifacts_dir=root)
    stray = [name for name in _entry_files(root) if "/.tmp-" in name]
    recovered = not run.from_cache and run.path is not None and artifacts.load_run(root, key) is not None
    figures.tally("kills (SIGKILL) recovered cleanly", recovered and not stray)
    assert recovered, f"from_cache={run.from_cache}, notes={run.notes}, now: {_entry_files(root)}"
    assert not stray, stray
    assert train(KILL_SETTINGS, data=small_mnist, artifacts_dir=root).from_cache


def test_an_uncreatable_artifacts_folder_keeps_the_run_in_memory(small_mnist, tmp_path):
    from mnist_model.predict import Predictor
    from mnist_model.settings import TrainingSettings
    from mnist_model.training import train

    blocker = tmp_path / "a-regular-file"
    blocker.write_text("the artifacts folder would have to be inside this file")
    settings = TrainingSettings(epochs=1, seed=44, validation_size=1000)
    run = train(settings, data=small_mnist, artifacts_dir=blocker / "artifacts")
    assert run.path is None
    assert any("kept in memory only" in note for note in run.notes), run.notes
    assert Predictor(run.model).predict_digit(small_mnist.test_images[0])[0] == int(small_mnist.test_labels[0])


@pytest.fixture(scope="module")
def mounts(tmp_path_factory) -> bool:
    return namespaces_available(tmp_path_factory.mktemp("namespaces"))


@pytest.mark.full_mode
@pytest.mark.parametrize("worker_storage", ["read-only", "full"])
def test_training_in_a_process_on_faulty_storage_keeps_the_run_in_memory(worker_storage, mounts, tmp_path):
    """Training in a process whose artifacts folder is read-only or full (a real mount, see above)."""
    if not mounts:
        pytest.skip("unshare and mount are not permitted here, so read-only and full folders cannot be made")
    root = tmp_path / f"storage-{worker_storage}"
    root.mkdir()
    process = _worker(root, "plain", storage_wrapper(worker_storage, root))
    output, errors = process.communicate(timeout=600)
    lines = [line for line in output.splitlines() if line.startswith("result ")]
    assert process.returncode == 0 and lines, errors[-800:]
    record = json.loads(lines[-1][len("result ") :])
    assert record["path"] is None, record
    assert any("kept in memory only" in note or "could not be saved" in note for note in record["notes"]), record
    assert "Traceback" not in errors, errors[-800:]
    assert not _entry_files(root), _entry_files(root)


@pytest.mark.browser
@pytest.mark.full_mode
@pytest.mark.parametrize("dashboard_storage", ["read-only", "full", "uncreatable"])
def test_the_dashboard_on_faulty_storage_warns_trains_once_and_serves(dashboard_storage, mounts, tmp_path, browser):
    """The dashboard on a read-only, full, or uncreatable artifacts folder: it warns, trains and serves."""
    wrapper, artifacts_path = None, tmp_path
    if dashboard_storage == "uncreatable":
        (tmp_path / "file").write_text("not a folder")
        artifacts_path = tmp_path / "file" / "artifacts"
    elif not mounts:
        pytest.skip("unshare and mount are not permitted here, so read-only and full folders cannot be made")
    else:
        wrapper = storage_wrapper(dashboard_storage, tmp_path)
    page = browser.new_page()
    with Dashboard(artifacts_path, tmp_path.parent / f"dashboard-{dashboard_storage}.log", wrapper=wrapper) as server:
        page.goto(f"{server.url}/predict")
        digit = pages.wait_for_metric(page, "Predicted digit", timeout=300)
        warnings = page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()
        assert digit is not None, "the Predict page served no prediction"
        assert any("kept in memory only" in warning for warning in warnings), warnings
        assert len(server.training_runs()) == 1, server.training_runs()
        assert server.tracebacks() == 0, server.log_text()[-1500:]
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("broken", ["missing", "corrupt", "not MNIST"])
def test_missing_or_corrupt_mnist_is_explained_on_every_page(broken, tmp_path, browser):
    """Every page says what is wrong and how to supply MNIST, without naming the server's files (the log
    has them), and the server stays up."""
    paths = {"missing": tmp_path / "no-such-folder" / "mnist.npz", "corrupt": tmp_path / "corrupt-mnist.npz"}
    paths["not MNIST"] = tmp_path / "wrong-arrays.npz"
    paths["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    np.savez(paths["not MNIST"], x_train=np.zeros((10, 28, 28), np.uint8))
    path = paths[broken]
    page = browser.new_page()
    with Dashboard(tmp_path / "artifacts", tmp_path / "server.log", MNIST_DATA=str(path)) as server:
        for page_path in ("", "/predict", "/training"):
            page.goto(f"{server.url}{page_path}")
            alert = page.locator('[data-testid="stAlertContentError"]').first
            alert.wait_for(timeout=120_000)
            text = alert.inner_text()
            assert "MNIST_DATA" in text and "MNIST" in text, f"page '{page_path or '/'}': {text[:300]}"
            assert str(tmp_path) not in page.locator("body").inner_text(), f"page '{page_path or '/'}' names a file"
        assert server.healthy()
        assert server.tracebacks() == 0, server.log_text()[-1000:]
        assert str(path) in server.log_text(), "the server log does not name the file"
    page.close()
