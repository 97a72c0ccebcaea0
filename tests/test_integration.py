"""End-to-end checks on the real MNIST copy: training, caching across processes, accuracy floors."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_model import TrainingSettings, calibration, images
from mnist_model.evaluation import evaluate
from mnist_model.predict import Predictor
from mnist_model.training import train
from tests.test_cli import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_artifacts(default_artifacts):
    """The session's folder, which holds the default model (see conftest's default_run)."""
    return default_artifacts


@pytest.fixture(scope="module")
def dense_run(mnist, shared_artifacts):
    """The dense network with the default settings, which the dashboard serves first."""
    return train(TrainingSettings(), data=mnist, artifacts_dir=shared_artifacts)


def test_default_dense_network_beats_the_classic_recipe(dense_run):
    # The classic recipe (batch 32, constant learning rate) scores 97.0-97.8% depending on the seed.
    assert dense_run.test_accuracy >= 0.975
    assert len(dense_run.history) == 10
    assert dense_run.history[-1].val_accuracy >= 0.97


def test_evaluation_agrees_with_the_recorded_test_accuracy(dense_run, mnist):
    result = evaluate(dense_run.model, mnist.test_images, mnist.test_labels)
    assert result.accuracy == pytest.approx(dense_run.test_accuracy, abs=1e-6)
    assert result.confusion.sum() == 10_000
    np.testing.assert_array_equal(result.support, np.bincount(mnist.test_labels, minlength=10))
    assert len(result.misclassified) == round((1 - result.accuracy) * 10_000)


def test_the_default_model_is_calibrated_and_the_command_line_says_so(default_run, mnist, mnist_path, shared_artifacts):
    before, after = evaluate(default_run.model, mnist.test_images, mnist.test_labels).reliability(
        default_run.temperature
    )
    # Both are small: the network is close to calibrated already (see the README); the fitted
    # temperature must not make it worse by more than a few tenths of a point.
    assert after.error < 0.01 and after.error < before.error + 0.005
    completed = run_cli(
        "evaluate", "--json", env={"MNIST_DATA": str(mnist_path), "MNIST_ARTIFACTS": str(shared_artifacts)}
    )
    assert completed.returncode == 0, completed.stderr
    reported = json.loads(completed.stdout)["calibration"]
    assert reported["temperature"] == pytest.approx(default_run.temperature)
    assert reported["error_after"] == pytest.approx(after.error, abs=1e-6)
    assert reported["error_before"] == pytest.approx(before.error, abs=1e-6)


def test_command_line_reuses_the_run_in_a_new_process(default_run, mnist, mnist_path, shared_artifacts):
    completed = run_cli(
        "predict",
        "--index",
        "0",
        "--index",
        "9999",
        "--json",
        env={"MNIST_DATA": str(mnist_path), "MNIST_ARTIFACTS": str(shared_artifacts)},
    )
    assert completed.returncode == 0, completed.stderr
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    predictor = Predictor(default_run.model)
    for line in lines:
        assert line["digit"] == int(np.argmax(predictor.predict(mnist.test_images[line["index"]])))
        assert line["unsure"] is (line["confidence"] < calibration.UNSURE_BELOW)
        assert len(line["probabilities"]) == 10 and sum(line["probabilities"]) == pytest.approx(1, abs=1e-4)
    listed = json.loads(run_cli("runs", "--json", env={"MNIST_ARTIFACTS": str(shared_artifacts)}).stdout)
    assert [row["key"] for row in listed if row["key"].startswith("cnn-")] == [default_run.key]


def test_command_line_reads_a_digit_a_number_and_a_non_digit_in_one_call(
    default_run, mnist, mnist_path, shared_artifacts, tmp_path, trained_detector
):
    indices = [int(np.flatnonzero(mnist.test_labels == digit)[0]) for digit in (1, 9, 8, 4)]
    row = np.concatenate([np.pad(mnist.test_images[index], ((6, 6), (3, 3))) for index in indices], axis=1)
    Image.fromarray(255 - row).resize((row.shape[1] * 3, row.shape[0] * 3)).save(tmp_path / "1984.png")
    Image.fromarray(255 - mnist.test_images[indices[1]]).save(tmp_path / "nine.png")
    things = Image.new("L", (300, 200), 235)  # a photo of some objects: no digit
    ImageDraw.Draw(things).ellipse((40, 40, 170, 150), fill=40)
    ImageDraw.Draw(things).rectangle((120, 90, 260, 170), fill=90)
    things.save(tmp_path / "things.png")
    completed = run_cli(
        "predict",
        "--json",
        str(tmp_path / "1984.png"),
        str(tmp_path / "nine.png"),
        str(tmp_path / "things.png"),
        env={"MNIST_DATA": str(mnist_path), "MNIST_ARTIFACTS": str(shared_artifacts)},
    )
    assert completed.returncode == 0, completed.stderr
    number, one, nothing = (json.loads(line) for line in completed.stdout.splitlines())
    assert nothing["digit"] is None and "does not look like" in nothing["reason"] and "number" not in nothing
    prepared = images.preprocess_file((tmp_path / "1984.png").read_bytes())
    probabilities = Predictor(default_run.model).predict(prepared.digit_inputs)
    assert number["digit"] is None
    assert number["number"] == "".join(str(digit) for digit in probabilities.argmax(axis=1))
    assert [entry["digit"] for entry in number["digits"]] == [int(digit) for digit in number["number"]]
    assert number["confidence"] == pytest.approx(float(np.prod(probabilities.max(axis=1))), abs=1e-5)
    assert set(one) == {"file", "digit", "confidence", "unsure", "probabilities"} and isinstance(one["digit"], int)
    for answer in (number, one):
        assert answer["unsure"] is (answer["confidence"] < calibration.UNSURE_BELOW)
    text = run_cli(
        "predict",
        str(tmp_path / "1984.png"),
        env={"MNIST_DATA": str(mnist_path), "MNIST_ARTIFACTS": str(shared_artifacts)},
    )
    assert f"number {number['number']} (" in text.stdout


def test_the_convnet_reads_at_least_99_percent_of_the_test_digits(default_run):
    assert default_run.test_accuracy >= 0.99
