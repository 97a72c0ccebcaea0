import numpy as np
import pytest
from tensorflow import keras

from mnist_model import calibration
from mnist_model.evaluation import compare, evaluate


class FixedModel:
    """Stands in for a Keras model: returns given probabilities, in the batches it is asked for."""

    def __init__(self, probabilities: np.ndarray):
        self.probabilities = probabilities
        self.position = 0

    def __call__(self, images, training=False):
        batch = self.probabilities[self.position : self.position + len(images)]
        self.position += len(images)
        return batch


def one_hot_probabilities(predicted: list[int], confidence: float = 0.91) -> np.ndarray:
    probabilities = np.full((len(predicted), 10), (1 - confidence) / 9, np.float32)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_scores_match_a_hand_computed_example():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    predicted = [0, 0, 1, 1, 1, 2, 2, 0, 3, 3]
    result = evaluate(FixedModel(one_hot_probabilities(predicted)), np.zeros((10, 28, 28), np.uint8), labels)
    assert result.accuracy == pytest.approx(0.7)
    assert result.confusion[0].tolist()[:4] == [2, 1, 0, 0]
    assert result.confusion[2].tolist()[:4] == [1, 0, 2, 1]
    assert result.confusion.sum() == 10
    # digit 0: predicted 3 times, right twice; 3 true zeros, 2 found.
    assert result.precision[0] == pytest.approx(2 / 3) and result.recall[0] == pytest.approx(2 / 3)
    # digit 1: predicted 3 times (one wrong), both ones found.
    assert result.precision[1] == pytest.approx(2 / 3) and result.recall[1] == pytest.approx(1.0)
    assert result.f1[1] == pytest.approx(0.8)
    # digit 3: predicted twice, one right; recall 1.
    assert result.precision[3] == pytest.approx(0.5) and result.f1[3] == pytest.approx(2 / 3)
    # Digits that never occur score zero rather than dividing by zero.
    assert result.precision[7] == 0 and result.recall[7] == 0 and result.support[7] == 0
    assert sorted(result.misclassified.tolist()) == [2, 7, 8]


def test_loss_matches_keras_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 10)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 10, 50)
    result = evaluate(FixedModel(probabilities), np.zeros((50, 28, 28), np.uint8), labels)
    expected = float(np.mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities)))
    assert result.loss == pytest.approx(expected, rel=1e-5)


def test_mistakes_filter_by_digits_and_sort_by_confidence():
    labels = np.array([4, 4, 4, 9])
    probabilities = one_hot_probabilities([9, 9, 4, 4])
    probabilities[1] = one_hot_probabilities([9], confidence=0.99)[0]
    result = evaluate(FixedModel(probabilities), np.zeros((4, 28, 28), np.uint8), labels)
    assert result.mistakes(true_digit=4, predicted_digit=9).tolist() == [1, 0]
    assert result.mistakes(true_digit=9).tolist() == [3]
    assert result.mistakes(true_digit=1).tolist() == []
    assert result.confidence[1] == pytest.approx(0.99)


def test_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        evaluate(FixedModel(one_hot_probabilities([0, 0, 0])), np.zeros((3, 28, 28), np.uint8), np.zeros(2))


def test_reliability_before_and_after_calibration():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 5, (4000, 10))
    # Labels drawn as if the logits were 2.5 times too large: the raw probabilities are overconfident.
    chances = calibration.softmax(logits / 2.5).cumsum(axis=1)
    labels = (chances < rng.random((4000, 1))).sum(axis=1).clip(0, 9)
    temperature = calibration.fit_temperature(logits, labels)
    calibrated = calibration.softmax(logits / temperature).astype(np.float32)
    result = evaluate(FixedModel(calibrated), np.zeros((4000, 28, 28), np.uint8), labels)
    before, after = result.reliability(temperature)
    assert temperature > 1 and after.error < before.error
    assert before.counts.sum() == after.counts.sum() == 4000
    same, again = result.reliability(1.0)
    np.testing.assert_array_equal(same.counts, again.counts)
    assert same.error == pytest.approx(after.error)


def evaluation_of(predicted: list[int], labels: list[int], confidences: list[float] | None = None):
    probabilities = one_hot_probabilities(predicted)
    if confidences is not None:
        probabilities[np.arange(len(predicted)), predicted] = confidences
    return evaluate(FixedModel(probabilities), np.zeros((len(labels), 28, 28), np.uint8), np.array(labels))


def test_comparing_two_runs_finds_what_the_second_fixed_and_broke_as_a_loop_over_the_images_does():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 300).tolist()
    first_answers = [label if rng.random() < 0.8 else int(rng.integers(0, 10)) for label in labels]
    second_answers = [label if rng.random() < 0.85 else int(rng.integers(0, 10)) for label in labels]
    first, second = evaluation_of(first_answers, labels), evaluation_of(second_answers, labels)
    comparison = compare(first, second)
    triples = list(enumerate(zip(first_answers, second_answers, labels, strict=True)))
    fixed = [i for i, (a, b, y) in triples if a != y and b == y]
    broken = [i for i, (a, b, y) in triples if a == y and b != y]
    both = [i for i, (a, b, y) in triples if a != y and b != y]
    assert comparison.fixed.tolist() == fixed and comparison.broken.tolist() == broken
    assert comparison.both_wrong.tolist() == both and fixed and broken
    change = np.zeros((10, 10), np.int64)
    for a, b, y in zip(first_answers, second_answers, labels, strict=True):
        change[y, b] += 1
        change[y, a] -= 1
    np.testing.assert_array_equal(comparison.confusion_change, change)
    # The diagonal's change is the net gain in right answers per digit.
    assert int(np.trace(comparison.confusion_change)) == len(fixed) - len(broken)


def test_changed_images_filter_by_true_digit_and_wrong_answer_most_confident_first():
    labels = [4, 4, 4, 7, 4]
    first = evaluation_of([9, 9, 4, 1, 9], labels, confidences=[0.6, 0.9, 0.9, 0.8, 0.7])
    second = evaluation_of([4, 4, 9, 7, 9], labels)
    comparison = compare(first, second)
    assert comparison.changed("fixed").tolist() == [1, 3, 0]
    assert comparison.changed("fixed", true_digit=4, wrong_answer=9).tolist() == [1, 0]
    assert comparison.changed("broke", wrong_answer=9).tolist() == [2]
    assert comparison.changed("fixed", true_digit=7, wrong_answer=9).tolist() == []
    with pytest.raises(ValueError, match="fixed"):
        comparison.changed("improved")


def test_runs_evaluated_on_different_images_are_not_compared():
    with pytest.raises(ValueError, match="same test images"):
        compare(evaluation_of([1, 2], [1, 2]), evaluation_of([1, 2, 3], [1, 2, 3]))
