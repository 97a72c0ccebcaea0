"""Honest confidence: temperature scaling, reliability bins and the expected calibration error.

A network trained with cross-entropy tends to be surer than it is right. Temperature scaling (Guo
et al., "On Calibration of Modern Neural Networks", 2017) divides its logits by one number T,
fitted on held-out images so that their cross-entropy is smallest. The predicted digit never
changes, only how sure the answer says it is. The networks here end in a Dense layer followed by
softmax, so dividing that layer's kernel and bias by T does the same inside the model: every user
of a saved model gets calibrated probabilities, and the manifest keeps T so that the probabilities
before calibration can be shown beside them.

This module is numpy only; the model side is :func:`mnist_model.training.calibrate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Reliability diagrams and the calibration error use this many equal-width confidence bins.
BINS = 15
# Below this calibrated confidence an answer is shown as "unsure". Calibrated, 0.8 means that about
# one such answer in five is wrong; the README gives the figures behind the choice.
UNSURE_BELOW = 0.8
# Temperatures are searched for within these bounds (a T outside them means a broken model).
_LOWEST, _HIGHEST = 0.05, 20.0
_SEARCH_STEPS = 80


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float (n, k) logits, in float64."""
    shifted = np.asarray(logits, np.float64)
    shifted = shifted - shifted.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean cross-entropy of ``labels`` (n,) under ``softmax(logits / temperature)``."""
    scaled = np.asarray(logits, np.float64) / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_normaliser - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the cross-entropy of ``labels`` (n,) under ``logits`` (n, k).

    The loss is convex in 1/T, so a golden-section search over 1/T finds the minimum.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"need logits (n, k) and n labels with n > 0; got {logits.shape} and {labels.shape}.")
    ratio = (math.sqrt(5) - 1) / 2
    low, high = 1 / _HIGHEST, 1 / _LOWEST
    for _ in range(_SEARCH_STEPS):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if negative_log_likelihood(logits, labels, 1 / left) <= negative_log_likelihood(logits, labels, 1 / right):
            high = right
        else:
            low = left
    return float(1 / ((low + high) / 2))


def uncalibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities a model gave before its logits were divided by ``temperature``: float64 (n, k).

    softmax(z / T) is known, so softmax(z) = softmax(T * log(softmax(z / T))): the shift that the
    logarithm adds to each row cancels in the softmax.
    """
    logs = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-300, 1.0))
    return softmax(temperature * logs)


@dataclass(frozen=True)
class Reliability:
    """Confidence against accuracy in equal-width bins.

    edges: (bins + 1,) from 0 to 1; counts: answers per bin; confidence, accuracy: their means per
    bin (NaN where a bin is empty); error: the expected calibration error, the count-weighted mean
    gap between the two.
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    error: float


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> Reliability:
    """How often answers of each confidence were right: ``confidence`` (n,) in [0, 1], ``correct`` (n,) bool."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds confidences in (edges[i], edges[i + 1]]; a confidence of exactly 0 goes in the first.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(which, weights=correct.astype(np.float64), minlength=bins) / counts
    filled = counts > 0
    total = max(int(counts.sum()), 1)
    error = float(np.sum(counts[filled] * np.abs(accuracy[filled] - mean_confidence[filled])) / total)
    return Reliability(edges, counts, mean_confidence, accuracy, error)


@dataclass(frozen=True)
class Split:
    """Answers divided at a confidence line: the share below it, and the share right of those below
    and of those at or above it (NaN where there are none)."""

    below: float
    right_below: float
    right_above: float


def split(confidence: np.ndarray, correct: np.ndarray, line: float = UNSURE_BELOW) -> Split:
    """How answers of ``confidence`` (n,) and ``correct`` (n,) bool fare below and above ``line``."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    below = confidence < line

    def right(chosen: np.ndarray) -> float:
        return float(correct[chosen].mean()) if chosen.any() else math.nan

    return Split(float(below.mean()) if len(below) else math.nan, right(below), right(~below))


def unsure(confidence: float) -> bool:
    """Whether an answer of this calibrated confidence should be shown as unsure."""
    return confidence < UNSURE_BELOW
