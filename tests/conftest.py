"""Shared fixtures: small generated data for fast tests, the real MNIST copy for integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_model.data import DataError, MnistData, from_arrays, load_mnist  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    from reliability.suite import MODES

    group = parser.getgroup("reliability", "the reliability suite (tests/reliability)")
    group.addoption(
        "--reliability-mode",
        choices=sorted(MODES),
        default="quick",
        help="how much the reliability suite does: quick (CI's share, the default), full, or soak",
    )
    group.addoption("--reliability-report", type=Path, help="also write the suite's figures as JSON to this file")


def make_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated stand-ins for digits: class k is a bright bar whose position and angle depend on k.

    Easy to learn in an epoch or two, yet a model must look at the pixels to tell them apart.
    uint8 images (count, 28, 28) and labels (count,).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
    rows, columns = np.mgrid[0:28, 0:28]
    for index, label in enumerate(labels):
        if label < 5:
            band = np.abs(rows - (4 + 5 * label + rng.integers(-1, 2))) <= 1
        else:
            band = np.abs(columns - (4 + 5 * (label - 5) + rng.integers(-1, 2))) <= 1
        images[index][band] = 255
    return images, labels


@pytest.fixture(scope="session", autouse=True)
def shared_detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the digit detector for the whole run: it depends on the data only, so every
    test module's engine, server and command line finds the one that the first of them trained."""
    folder = tmp_path_factory.mktemp("detector")
    previous = os.environ.get("MNIST_DETECTOR_DIR")
    os.environ["MNIST_DETECTOR_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("MNIST_DETECTOR_DIR", None)
    else:
        os.environ["MNIST_DETECTOR_DIR"] = previous


@pytest.fixture(scope="session")
def small_data() -> MnistData:
    train_images, train_labels = make_digits(1200, seed=1)
    test_images, test_labels = make_digits(300, seed=2)
    return from_arrays(train_images, train_labels, test_images, test_labels, source="generated")


@pytest.fixture
def artifacts_dir(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "artifacts"
    monkeypatch.setenv("MNIST_ARTIFACTS", str(folder))
    return folder


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium, driven by Playwright (see reliability.browser), one for the run; each
    test opens its own pages or contexts. Missing: skipped locally, an error in CI."""
    from reliability.browser import chromium, chromium_executable

    try:
        chromium_executable()
    except RuntimeError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def mnist() -> MnistData:
    """The real MNIST: $MNIST_DATA, else the Keras cache or download. Missing: skipped locally, an error in CI."""
    try:
        return load_mnist()
    except DataError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(f"no MNIST copy to test on: {error}")


@pytest.fixture(scope="session")
def mnist_path(mnist: MnistData) -> Path:
    """Where the real MNIST was read from: an .npz file or a folder of IDX files."""
    return Path(mnist.source)


@pytest.fixture(scope="session")
def trained_detector(mnist: MnistData, shared_detector_dir: Path):
    """The digit detector for the real MNIST, trained once for the run (two to three minutes) into the shared
    folder, before any server or engine of a test would start training it in the background."""
    from mnist_model import detector

    return detector.load(mnist, shared_detector_dir)


@pytest.fixture(scope="session")
def default_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts folder for the session's runs on the real MNIST, so each is trained once."""
    return tmp_path_factory.mktemp("default-artifacts")


@pytest.fixture(scope="session")
def default_run(mnist: MnistData, default_artifacts: Path):
    """The default model (the convnet, whatever this machine's $MNIST_DEFAULT_MODEL says), trained once
    for the session on the real MNIST into ``default_artifacts``: a minute and a half on two cores."""
    from mnist_model import TrainingSettings
    from mnist_model.training import train

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MNIST_DEFAULT_MODEL", raising=False)
        settings = TrainingSettings.default()
    assert settings == TrainingSettings.recommended("cnn")
    return train(settings, data=mnist, artifacts_dir=default_artifacts)
