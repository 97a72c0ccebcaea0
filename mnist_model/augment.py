"""Training-time augmentation: the variations that real photographs and drawings have and MNIST lacks.

Each training image gets its own random rotation, zoom, shear and shift (one affine warp), and a
random change of stroke width (a blend towards a dilated or an eroded copy). All of it is
TensorFlow graph code, run on each batch inside the compiled training step.
"""

from __future__ import annotations

import math

import tensorflow as tf

MAX_ROTATION_DEGREES = 8.0
ZOOM_RANGE = (0.9, 1.1)
MAX_SHEAR = 0.1
MAX_SHIFT_PIXELS = 2.0


def random_distortions(images: tf.Tensor) -> tf.Tensor:
    """Randomly warp and re-stroke a batch: float32 (n, 28, 28) in [0, 1] -> the same shape."""
    return _random_stroke_width(_random_affine(images))


def _random_affine(images: tf.Tensor) -> tf.Tensor:
    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    angle = tf.random.uniform([count], -1.0, 1.0) * (MAX_ROTATION_DEGREES * math.pi / 180)
    zoom = tf.random.uniform([count], *ZOOM_RANGE)
    shear = tf.random.uniform([count], -MAX_SHEAR, MAX_SHEAR)
    shift_x = tf.random.uniform([count], -MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS)
    shift_y = tf.random.uniform([count], -MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS)
    # The transform maps each output pixel back to the input pixel it samples: the inverse of
    # "zoom, shear and rotate about the centre, then shift".
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1 = cos, sin + shear * cos
    b0, b1 = -sin, cos - shear * sin
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    a2 = centre_x - a0 * (centre_x + shift_x) - a1 * (centre_y + shift_y)
    b2 = centre_y - b0 * (centre_x + shift_x) - b1 * (centre_y + shift_y)
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images[..., tf.newaxis],
        transforms=transforms,
        output_shape=tf.constant([height, width]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return warped[..., 0]


def _random_stroke_width(images: tf.Tensor) -> tf.Tensor:
    channels = images[..., tf.newaxis]
    thicker = tf.nn.max_pool2d(channels, 3, 1, "SAME")[..., 0]
    thinner = -tf.nn.max_pool2d(-channels, 3, 1, "SAME")[..., 0]
    # Positive amounts thicken, negative ones thin; a third of the images keep their strokes.
    amount = tf.random.uniform([tf.shape(images)[0], 1, 1], -1.0, 1.0)
    amount = tf.where(tf.abs(amount) < 1 / 3, 0.0, amount) * 0.6
    blended = tf.where(amount > 0, images + amount * (thicker - images), images - amount * (thinner - images))
    return tf.clip_by_value(blended, 0.0, 1.0)
