from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mnist_model.model import build_model
from mnist_model.predict import Predictor
from mnist_model.settings import TrainingSettings


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def model(request):
    return build_model(TrainingSettings(architecture=request.param, seed=3))


def test_predictor_agrees_with_keras_predict(model, small_data):
    images = small_data.test_images[:64]
    expected = model.predict(images / 255.0, verbose=0)
    np.testing.assert_allclose(Predictor(model).predict(images), expected, atol=1e-5)


def test_one_image_gives_ten_probabilities_like_its_batch(model, small_data):
    predictor = Predictor(model)
    image = small_data.test_images[7]
    single = predictor.predict(image)
    assert single.shape == (10,) and single.dtype == np.float32
    np.testing.assert_allclose(single, predictor.predict(image[np.newaxis])[0], atol=1e-6)
    np.testing.assert_allclose(single, predictor.predict(image / 255.0), atol=1e-6)
    digit, confidence, probabilities = predictor.predict_digit(image)
    assert digit == int(np.argmax(single)) and confidence == pytest.approx(float(single.max()))


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((28, 27), np.uint8), r"shape \(28, 28\) or \(n, 28, 28\); got \(28, 27\)"),
        (np.zeros((2, 2, 28, 28), np.uint8), "got \\(2, 2, 28, 28\\)"),
        (np.zeros((28, 28), np.int64), "dtype int64"),
    ],
)
def test_bad_input_is_refused_with_the_reason(images, message):
    with pytest.raises(ValueError, match=message):
        Predictor(build_model(TrainingSettings())).predict(images)


def test_predictor_is_safe_to_share_between_threads(model, small_data):
    predictor = Predictor(model)
    images = small_data.test_images[:200]
    expected = predictor.predict(images)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(predictor.predict, images))
    np.testing.assert_allclose(np.stack(results), expected, atol=1e-5)
