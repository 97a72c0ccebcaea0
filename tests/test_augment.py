import numpy as np
import pytest
import tensorflow as tf

from mnist_model import augment
from mnist_model.training import fit


def test_distortions_keep_shape_and_range_and_vary_per_image(small_data):
    images = tf.constant(small_data.train_images[:64].astype(np.float32) / 255.0)
    tf.random.set_seed(0)
    distorted = augment.random_distortions(images).numpy()
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


def test_affine_warp_of_a_centred_dot_stays_near_the_centre():
    dot = np.zeros((1, 28, 28), np.float32)
    dot[0, 13:15, 13:15] = 1.0
    warped = augment._random_affine(tf.constant(np.repeat(dot, 200, axis=0))).numpy()
    ys, xs = np.nonzero(warped.max(axis=0) > 0.2)
    # Shifts are at most MAX_SHIFT_PIXELS; rotation and zoom barely move the centre itself.
    limit = augment.MAX_SHIFT_PIXELS + 1.5
    assert np.all(np.abs(ys - 13.5) <= limit) and np.all(np.abs(xs - 13.5) <= limit)


@pytest.mark.parametrize("augmented", [True, False])
def test_training_learns_with_and_without_augmentation(small_data, augmented):
    from mnist_model.settings import TrainingSettings

    settings = TrainingSettings(epochs=3, batch_size=64, validation_size=200, learning_rate=3e-3, augment=augmented)
    _, history = fit(settings, small_data)
    assert history[-1].val_accuracy > 0.8
