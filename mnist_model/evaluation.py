"""Evaluation in one batched pass: loss, accuracy, confusion matrix, per-class scores, mistakes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mnist_model import calibration
from mnist_model.data import NUM_CLASSES, as_model_input

if TYPE_CHECKING:
    from tensorflow import keras

# Images per forward pass: large enough to amortise overhead, small enough to keep memory flat.
_BATCH = 2000
# Probabilities are clipped before the log so that a confident mistake costs a finite loss.
_EPSILON = 1e-7


@dataclass(frozen=True)
class Evaluation:
    """How a model does on a labelled set of n images.

    probabilities: float32 (n, 10); predictions, labels: int64 (n,); confusion: int64 (10, 10),
    rows true digits and columns predicted ones; precision, recall, f1: float64 (10,);
    support: int64 (10,); misclassified: int64 indices into the evaluated images.
    """

    loss: float
    accuracy: float
    probabilities: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    misclassified: np.ndarray

    @property
    def confidence(self) -> np.ndarray:
        """The probability of the predicted digit for every image: float32 (n,)."""
        return self.probabilities[np.arange(len(self.predictions)), self.predictions]

    def reliability(self, temperature: float = 1.0) -> tuple[calibration.Reliability, calibration.Reliability]:
        """How far the confidence can be trusted: the answers' reliability before calibration (the
        probabilities with ``temperature`` taken out again) and as the model gives them."""
        correct = self.predictions == self.labels
        raw = calibration.uncalibrated(self.probabilities, temperature)
        before = calibration.reliability(raw[np.arange(len(raw)), self.predictions], correct)
        return before, calibration.reliability(self.confidence, correct)

    def unsure_split(self, line: float = calibration.UNSURE_BELOW) -> calibration.Split:
        """The answers below ``line`` (unsure) and above it: their share and how many are right."""
        return calibration.split(self.confidence, self.predictions == self.labels, line)

    def per_class_rows(self) -> list[dict]:
        return [
            {
                "digit": digit,
                "precision": float(self.precision[digit]),
                "recall": float(self.recall[digit]),
                "f1": float(self.f1[digit]),
                "support": int(self.support[digit]),
            }
            for digit in range(NUM_CLASSES)
        ]

    def mistakes(self, true_digit: int | None = None, predicted_digit: int | None = None) -> np.ndarray:
        """Indices of misclassified images, optionally of one true and/or predicted digit, most confident first."""
        chosen = self.misclassified
        if true_digit is not None:
            chosen = chosen[self.labels[chosen] == true_digit]
        if predicted_digit is not None:
            chosen = chosen[self.predictions[chosen] == predicted_digit]
        return chosen[np.argsort(-self.confidence[chosen], kind="stable")]


@dataclass(frozen=True)
class Comparison:
    """What run B changed against run A on the same n test images.

    fixed: indices A got wrong and B right; broken: A right and B wrong; both_wrong: wrong in both
    (int64, ascending). confusion_change: int64 (10, 10), B's confusion matrix less A's.
    """

    first: Evaluation
    second: Evaluation
    fixed: np.ndarray
    broken: np.ndarray
    both_wrong: np.ndarray
    confusion_change: np.ndarray

    def changed(self, kind: str, true_digit: int | None = None, wrong_answer: int | None = None) -> np.ndarray:
        """The images B ``"fixed"`` or ``"broke"``, optionally of one true digit and one wrong answer
        (A's for a fixed image, B's for a broken one), most confident wrong answer first."""
        if kind not in ("fixed", "broke"):
            raise ValueError(f"kind must be 'fixed' or 'broke'; got {kind!r}.")
        chosen, wrong = (self.fixed, self.first) if kind == "fixed" else (self.broken, self.second)
        if true_digit is not None:
            chosen = chosen[wrong.labels[chosen] == true_digit]
        if wrong_answer is not None:
            chosen = chosen[wrong.predictions[chosen] == wrong_answer]
        return chosen[np.argsort(-wrong.confidence[chosen], kind="stable")]


def compare(first: Evaluation, second: Evaluation) -> Comparison:
    """What ``second`` (run B) fixed and broke against ``first`` (run A). Both must be evaluations of
    the same images: raises ValueError for evaluations of different labels."""
    if first.labels.shape != second.labels.shape or not np.array_equal(first.labels, second.labels):
        raise ValueError("the two evaluations are not of the same test images; compare runs on one test set.")
    right_first = first.predictions == first.labels
    right_second = second.predictions == second.labels
    return Comparison(
        first=first,
        second=second,
        fixed=np.flatnonzero(~right_first & right_second),
        broken=np.flatnonzero(right_first & ~right_second),
        both_wrong=np.flatnonzero(~right_first & ~right_second),
        confusion_change=second.confusion.astype(np.int64) - first.confusion.astype(np.int64),
    )


def predict_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Class probabilities for uint8 (n, 28, 28) images (or float in [0, 1]): float32 (n, 10)."""
    scaled = as_model_input(images)
    outputs = [
        np.asarray(model(scaled[start : start + _BATCH], training=False)) for start in range(0, len(scaled), _BATCH)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, NUM_CLASSES), np.float32)


def test_metrics(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Cross-entropy loss and accuracy of ``model`` on uint8 images (n, 28, 28) and labels (n,)."""
    probabilities = predict_probabilities(model, images)
    return _loss(probabilities, labels), float(np.mean(probabilities.argmax(axis=1) == labels))


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Evaluate ``model`` on uint8 images (n, 28, 28) with integer labels (n,) in one pass."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels; they must match.")
    probabilities = predict_probabilities(model, images)
    labels = labels.astype(np.int64)
    predictions = probabilities.argmax(axis=1).astype(np.int64)
    confusion = np.bincount(labels * NUM_CLASSES + predictions, minlength=NUM_CLASSES**2).reshape(
        NUM_CLASSES, NUM_CLASSES
    )
    true_positives = np.diag(confusion).astype(np.float64)
    predicted_counts = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = np.divide(true_positives, predicted_counts, out=np.zeros(NUM_CLASSES), where=predicted_counts > 0)
    recall = np.divide(true_positives, support, out=np.zeros(NUM_CLASSES), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(NUM_CLASSES), where=denominator > 0)
    return Evaluation(
        loss=_loss(probabilities, labels),
        accuracy=float(np.mean(predictions == labels)) if len(labels) else 0.0,
        probabilities=probabilities,
        predictions=predictions,
        labels=labels,
        confusion=confusion,
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
        misclassified=np.flatnonzero(predictions != labels),
    )


def _loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return 0.0
    chosen = probabilities[np.arange(len(labels)), labels.astype(np.int64)]
    return float(-np.mean(np.log(np.clip(chosen, _EPSILON, 1.0))))
