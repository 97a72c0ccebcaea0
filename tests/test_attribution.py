"""Attribution and activations against references computed another way: finite differences, completeness,
the class activation map, and Keras sub-models."""

import keras
import numpy as np
import pytest

from mnist_model import activations, attribution
from mnist_model.model import build_model
from mnist_model.settings import TrainingSettings


def random_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((28, 28), dtype=np.float32)


@pytest.fixture(scope="module")
def mlp() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model(TrainingSettings.recommended("mlp"))


@pytest.fixture(scope="module")
def cnn() -> keras.Model:
    keras.utils.set_random_seed(1)
    return build_model(TrainingSettings.recommended("cnn"))


@pytest.fixture(scope="module")
def pooled() -> keras.Model:
    """A convnet whose last convolution is averaged straight into the softmax layer: the network
    for which Grad-CAM is the class activation map (CAM) of Zhou et al., 2016."""
    keras.utils.set_random_seed(2)
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(6, 5, strides=2, activation="relu", name="conv_a"),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv_b"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax", name="probabilities"),
        ],
        name="pooled",
    )


def probability(model: keras.Model, image: np.ndarray, digit: int) -> float:
    return float(np.asarray(model(image[None].astype(np.float32), training=False))[0, digit])


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_the_gradient_matches_finite_differences(architecture, mlp, cnn):
    model = {"mlp": mlp, "cnn": cnn}[architecture]
    image = random_image(3)
    digit = 4
    found = attribution.gradient(model, image, digit)
    assert found.shape == (28, 28) and found.dtype == np.float32
    step = 1e-2
    for row, col in np.random.default_rng(4).integers(4, 24, size=(12, 2)):
        up, down = image.copy(), image.copy()
        up[row, col] += step
        down[row, col] -= step
        expected = (probability(model, up, digit) - probability(model, down, digit)) / (2 * step)
        assert found[row, col] == pytest.approx(expected, rel=0.05, abs=2e-4), (row, col)


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_integrated_gradients_add_up_to_the_change_in_probability(architecture, mlp, cnn):
    model = {"mlp": mlp, "cnn": cnn}[architecture]
    image = random_image(5)
    for digit in (0, 7):
        change = probability(model, image, digit) - probability(model, np.zeros_like(image), digit)
        integrated = attribution.integrated_gradients(model, image, digit, steps=256)
        assert abs(float(integrated.sum()) - change) <= 0.02 * abs(change) + 1e-4, (digit, change)


def test_integrated_gradients_from_a_baseline_equal_to_the_image_are_zero(mlp):
    image = random_image(6)
    assert np.allclose(attribution.integrated_gradients(mlp, image, 3, baseline=image), 0)


def test_explain_agrees_with_each_method_computed_alone(cnn):
    image = random_image(7)
    explained = attribution.explain(cnn, image)
    answer = int(np.asarray(cnn(image[None], training=False))[0].argmax())
    assert explained.digit == answer
    assert explained.probability == pytest.approx(probability(cnn, image, answer), abs=1e-6)
    assert explained.baseline_probability == pytest.approx(probability(cnn, np.zeros_like(image), answer), abs=1e-6)
    np.testing.assert_allclose(explained.gradient, attribution.gradient(cnn, image, answer), atol=1e-6)
    np.testing.assert_allclose(explained.integrated, attribution.integrated_gradients(cnn, image, answer), atol=1e-6)
    np.testing.assert_allclose(explained.grad_cam, attribution.grad_cam(cnn, image, answer), atol=1e-5)
    assert explained.grad_cam_layer == "conv_3"
    assert abs(explained.completeness_gap) < 0.05


def test_grad_cam_is_the_class_activation_map_for_a_pooled_network(pooled):
    image = random_image(8)
    digit = 2
    found = attribution.grad_cam(pooled, image, digit)
    # CAM: the last convolution's maps weighted by the softmax layer's weights for the digit.
    features = keras.Sequential(pooled.layers[:3])(image[None], training=False).numpy()[0]
    cam = np.maximum(features @ pooled.get_layer("probabilities").kernel.numpy()[:, digit], 0)
    resized = np.asarray(keras.ops.image.resize(cam[:, :, None], (28, 28), interpolation="bilinear"))[:, :, 0]
    np.testing.assert_allclose(found, resized / resized.max(), atol=1e-5)
    assert found.max() == pytest.approx(1.0)
    # Another convolution can be asked for; the first one's grid is finer.
    assert attribution.grad_cam(pooled, image, digit, layer="conv_a").shape == (28, 28)


def test_a_network_without_convolutions_has_no_grad_cam(mlp):
    explained = attribution.explain(mlp, random_image(9), digit=5)
    assert explained.digit == 5 and explained.grad_cam is None and explained.grad_cam_layer is None
    with pytest.raises(ValueError, match="convolution"):
        attribution.grad_cam(mlp, random_image(9), 5)


def test_an_image_of_the_wrong_shape_is_refused(mlp):
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        attribution.explain(mlp, np.zeros((28, 27), dtype=np.float32))


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_activations_are_each_layers_output_as_a_keras_submodel_gives_it(architecture, mlp, cnn):
    model = {"mlp": mlp, "cnn": cnn}[architecture]
    image = (random_image(10) * 255).astype(np.uint8)
    found = activations.activations(model, image)
    computing = [
        layer
        for layer in model.layers
        if not isinstance(layer, (keras.layers.Flatten, keras.layers.Dropout, keras.layers.Reshape))
    ]
    assert [each.name for each in found] == [layer.name for layer in computing]
    scaled = image[None].astype(np.float32) / 255
    for each, layer in zip(found, computing, strict=True):
        reference = keras.Model(model.inputs[0], layer.output)(scaled, training=False).numpy()[0]
        np.testing.assert_allclose(each.values, reference, atol=1e-5)
        assert each.kind == ("feature maps" if reference.ndim == 3 else "units")
    np.testing.assert_allclose(found[-1].values, model(scaled, training=False).numpy()[0], atol=1e-6)
    if architecture == "cnn":
        assert [each.values.shape for each in found[:3]] == [(12, 12, 32), (5, 5, 64), (3, 3, 64)]
