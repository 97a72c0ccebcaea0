"""End-to-end checks on the real MNIST copy: training, caching across processes, accuracy floors."""

import json

import numpy as np
import pytest

from mnist_model import TrainingSettings, evaluate, train
from mnist_model.predict import Predictor
from tests.test_cli import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("integration-artifacts")


@pytest.fixture(scope="module")
def default_run(mnist, shared_artifacts):
    return train(TrainingSettings(), data=mnist, artifacts_dir=shared_artifacts)


def test_default_network_beats_the_classic_recipe(default_run):
    # The classic recipe (batch 32, constant learning rate) scores 97.0-97.8% depending on the seed.
    assert default_run.test_accuracy >= 0.975
    assert len(default_run.history) == 10
    assert default_run.history[-1].val_accuracy >= 0.97


def test_evaluation_agrees_with_the_recorded_test_accuracy(default_run, mnist):
    result = evaluate(default_run.model, mnist.test_images, mnist.test_labels)
    assert result.accuracy == pytest.approx(default_run.test_accuracy, abs=1e-6)
    assert result.confusion.sum() == 10_000
    np.testing.assert_array_equal(result.support, np.bincount(mnist.test_labels, minlength=10))
    assert len(result.misclassified) == round((1 - result.accuracy) * 10_000)


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
        assert len(line["probabilities"]) == 10 and sum(line["probabilities"]) == pytest.approx(1, abs=1e-4)
    listed = json.loads(run_cli("runs", "--json", env={"MNIST_ARTIFACTS": str(shared_artifacts)}).stdout)
    assert [row["key"] for row in listed] == [default_run.key]


def test_convolutional_network_reaches_99_3_percent(mnist, shared_artifacts):
    run = train(TrainingSettings.recommended("cnn"), data=mnist, artifacts_dir=shared_artifacts)
    assert run.test_accuracy >= 0.993
