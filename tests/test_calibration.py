import numpy as np
import pytest

from mnist_model import calibration
from mnist_model.settings import TrainingSettings
from mnist_model.training import calibrate, fit, validation_split


def sampled_labels(logits: np.ndarray, temperature: float, seed: int) -> np.ndarray:
    """Labels drawn from softmax(logits / temperature): data for which that temperature is right."""
    probabilities = calibration.softmax(logits / temperature)
    draws = np.random.default_rng(seed).random((len(logits), 1))
    return (probabilities.cumsum(axis=1) < draws).sum(axis=1).clip(0, logits.shape[1] - 1)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with(true_temperature):
    logits = np.random.default_rng(0).normal(0, 4, (20000, 10))
    labels = sampled_labels(logits, true_temperature, seed=1)
    fitted = calibration.fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    best = calibration.negative_log_likelihood(logits, labels, fitted)
    for other in (fitted * 0.8, fitted * 1.25):
        assert calibration.negative_log_likelihood(logits, labels, other) > best


def test_fit_temperature_refuses_mismatched_input():
    with pytest.raises(ValueError, match="logits"):
        calibration.fit_temperature(np.zeros((3, 10)), np.zeros(4, int))


def test_uncalibrated_undoes_the_temperature():
    logits = np.random.default_rng(2).normal(0, 6, (500, 10))
    calibrated = calibration.softmax(logits / 1.7).astype(np.float32)
    np.testing.assert_allclose(calibration.uncalibrated(calibrated, 1.7), calibration.softmax(logits), atol=1e-5)


def test_reliability_of_calibrated_and_overconfident_answers():
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.1, 1.0, 50000)
    honest = rng.random(50000) < confidence
    result = calibration.reliability(confidence, honest)
    assert result.counts.sum() == 50000 and len(result.edges) == calibration.BINS + 1
    assert result.error < 0.01
    filled = result.counts > 0
    np.testing.assert_allclose(result.accuracy[filled], result.confidence[filled], atol=0.03)
    # Right only 60% of the time whatever it says: the error is the mean gap to 0.6.
    overconfident = calibration.reliability(confidence, rng.random(50000) < 0.6)
    assert overconfident.error == pytest.approx(np.mean(np.abs(confidence - 0.6)), abs=0.02)


def test_reliability_bins_hold_their_edges():
    result = calibration.reliability(np.array([0.0, 1.0, 1.0]), np.array([False, True, True]), bins=4)
    assert result.counts.tolist() == [1, 0, 0, 2]
    assert np.isnan(result.confidence[1]) and result.accuracy[3] == 1.0
    assert result.error == 0.0


def test_unsure_below_the_threshold():
    assert calibration.unsure(calibration.UNSURE_BELOW - 0.01)
    assert not calibration.unsure(calibration.UNSURE_BELOW)


def test_calibrate_folds_the_temperature_into_the_last_layer(small_data):
    settings = TrainingSettings(epochs=2, batch_size=64, validation_size=300, augment=False)
    model, _ = fit(settings, small_data)
    held_out, _ = validation_split(settings, len(small_data.train_images))
    images, labels = small_data.train_images[held_out], small_data.train_labels[held_out]
    before = np.asarray(model(images.astype(np.float32) / 255, training=False), np.float64)
    temperature = calibrate(model, images, labels)
    after = np.asarray(model(images.astype(np.float32) / 255, training=False), np.float64)
    assert 0.05 < temperature < 20 and temperature != pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(after.argmax(axis=1), before.argmax(axis=1))
    np.testing.assert_allclose(calibration.uncalibrated(after, temperature), before, atol=1e-4)

    # The held-out loss is lowest at the fitted temperature, so no worse than before.
    def loss(probabilities):
        return calibration.negative_log_likelihood(np.log(np.clip(probabilities, 1e-30, 1)), labels)

    assert loss(after) <= loss(before)


def test_split_at_the_line_counts_the_answers_below_and_how_many_are_right():
    result = calibration.split(np.array([0.5, 0.7, 0.9, 0.95]), np.array([False, True, True, True]), line=0.8)
    assert (result.below, result.right_below, result.right_above) == (0.5, 0.5, 1.0)
    assert np.isnan(calibration.split(np.array([0.9]), np.array([True])).right_below)
