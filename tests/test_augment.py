import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

from mnist_model import artifacts, augment
from mnist_model.settings import TrainingSettings
from mnist_model.training import fit


def test_distortions_keep_shape_and_range_and_vary_per_image(small_data):
    images = tf.constant(small_data.train_images[:64].astype(np.float32) / 255.0)
    distorted = augment.RandomDistortions(seed=0)(images, training=True).numpy()
    assert distorted.shape == (64, 28, 28) and distorted.dtype == np.float32
    assert distorted.min() >= 0.0 and distorted.max() <= 1.0
    changed = np.abs(distorted - images.numpy()).reshape(64, -1).max(axis=1)
    assert (changed > 0.1).mean() > 0.9  # nearly every image is moved, turned or re-stroked
    # Small warps: the ink stays where it was to within a few pixels.
    rows = np.arange(28)
    for before, after in zip(images.numpy(), distorted, strict=True):
        centre_before = (before.sum(axis=1) * rows).sum() / before.sum()
        centre_after = (after.sum(axis=1) * rows).sum() / after.sum()
        assert abs(centre_after - centre_before) < 4


def test_distortions_act_only_in_training_and_follow_the_seed(small_data):
    images = tf.constant(small_data.train_images[:16].astype(np.float32) / 255.0)
    np.testing.assert_array_equal(augment.RandomDistortions(seed=0)(images).numpy(), images.numpy())
    first, second = (augment.RandomDistortions(seed=3)(images, training=True).numpy() for _ in range(2))
    np.testing.assert_array_equal(first, second)
    other = augment.RandomDistortions(seed=4)(images, training=True).numpy()
    assert np.abs(other - first).max() > 0.1


def test_affine_warp_of_a_centred_dot_stays_near_the_centre():
    dot = np.zeros((1, 28, 28), np.float32)
    dot[0, 13:15, 13:15] = 1.0
    seed = keras.random.SeedGenerator(0)
    warped = augment.random_affine(tf.constant(np.repeat(dot, 200, axis=0)), seed).numpy()
    ys, xs = np.nonzero(warped.max(axis=0) > 0.2)
    # Shifts are at most MAX_SHIFT_PIXELS; rotation and zoom barely move the centre itself.
    limit = augment.MAX_SHIFT_PIXELS + 1.5
    assert np.all(np.abs(ys - 13.5) <= limit) and np.all(np.abs(xs - 13.5) <= limit)


def test_affine_warp_with_a_whole_pixel_shift_moves_the_image_by_that_shift():
    image = np.zeros((28, 28), np.float32)
    image[8:20, 12:15] = np.linspace(0.2, 1.0, 36, dtype=np.float32).reshape(12, 3)
    # Each output pixel (x, y) samples the input at (x - 2, y + 1): the image moves 2 right, 1 up.
    transform = tf.constant([[1.0, 0.0, -2.0, 0.0, 1.0, 1.0, 0.0, 0.0]])
    warped = keras.ops.image.affine_transform(image[None, ..., None], transform, data_format="channels_last")
    expected = np.zeros_like(image)
    expected[:-1, 2:] = image[1:, :-2]
    np.testing.assert_allclose(np.asarray(warped)[0, ..., 0], expected, atol=1e-6)


@pytest.mark.parametrize("augmented", [True, False])
def test_training_learns_with_and_without_augmentation(small_data, augmented):
    settings = TrainingSettings(epochs=3, batch_size=64, validation_size=200, learning_rate=3e-3, augment=augmented)
    _, history = fit(settings, small_data)
    assert history[-1].val_accuracy > 0.8


def test_augmentation_stays_out_of_the_saved_model(small_data, tmp_path):
    settings = TrainingSettings(epochs=1, batch_size=64, validation_size=200, augment=True)
    model, _ = fit(settings, small_data)
    path = tmp_path / "model.keras"
    model.save(path)
    artifacts.check_model_file(path)  # raises on any layer the model package does not build
    loaded = artifacts.load_model_file(path)
    assert [type(layer).__name__ for layer in loaded.layers] == ["Flatten", "Dense", "Dense", "Dense"]


def test_neighbourhood_maximum_and_minimum_match_pooling() -> None:
    images = keras.random.uniform((16, 28, 28), seed=3)
    channels = images[..., None]
    dilated = keras.ops.max_pool(channels, 3, strides=1, padding="same", data_format="channels_last")[..., 0]
    eroded = -keras.ops.max_pool(-channels, 3, strides=1, padding="same", data_format="channels_last")[..., 0]
    np.testing.assert_array_equal(augment._over_3x3(images, keras.ops.maximum, outside=0.0), dilated)
    np.testing.assert_array_equal(augment._over_3x3(images, keras.ops.minimum, outside=1.0), eroded)
