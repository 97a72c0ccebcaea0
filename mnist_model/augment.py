"""Training-time augmentation: the variations that real photographs and drawings have and MNIST lacks.

:class:`RandomDistortions` is a Keras layer that gives each training image its own random rotation,
zoom, shear and shift (one affine warp, with ``keras.ops.image.affine_transform``) and a random
change of stroke width (a blend towards a dilated or an eroded copy). It acts only in training and
passes images through unchanged otherwise. Training puts it in front of the network in a wrapper
used only for ``fit``, so it runs inside the compiled training step and never ends up in a saved
model.
"""

from __future__ import annotations

import math

from tensorflow import keras

MAX_ROTATION_DEGREES = 8.0
ZOOM_RANGE = (0.9, 1.1)
MAX_SHEAR = 0.1
MAX_SHIFT_PIXELS = 2.0
# How far a re-stroked image moves towards its dilated or eroded copy, at most.
MAX_STROKE_BLEND = 0.6


class RandomDistortions(keras.layers.Layer):
    """Randomly warp and re-stroke a batch in training: float32 (n, 28, 28) in [0, 1] -> the same shape.

    seed: seeds the layer's own random stream, so a training run is reproducible.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        return random_stroke_width(random_affine(images, self.seed_generator), self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


def random_affine(images, seed):
    """Rotate, zoom, shear and shift each image of float32 (n, 28, 28) by its own random amounts."""
    count = keras.ops.shape(images)[0]
    height, width = images.shape[1], images.shape[2]

    def uniform(low: float, high: float):
        return keras.random.uniform((count,), low, high, seed=seed)

    angle = uniform(-1.0, 1.0) * (MAX_ROTATION_DEGREES * math.pi / 180)
    zoom = uniform(*ZOOM_RANGE)
    shear = uniform(-MAX_SHEAR, MAX_SHEAR)
    shift_x = uniform(-MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS)
    shift_y = uniform(-MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS)
    # The transform maps each output pixel back to the input pixel it samples: the inverse of
    # "zoom, shear and rotate about the centre, then shift".
    cos, sin = keras.ops.cos(angle) / zoom, keras.ops.sin(angle) / zoom
    a0, a1 = cos, sin + shear * cos
    b0, b1 = -sin, cos - shear * sin
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    a2 = centre_x - a0 * (centre_x + shift_x) - a1 * (centre_y + shift_y)
    b2 = centre_y - b0 * (centre_x + shift_x) - b1 * (centre_y + shift_y)
    zeros = keras.ops.zeros_like(angle)
    transforms = keras.ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    warped = keras.ops.image.affine_transform(
        images[..., None],
        transforms,
        interpolation="bilinear",
        fill_mode="constant",
        fill_value=0.0,
        data_format="channels_last",
    )
    return warped[..., 0]


def random_stroke_width(images, seed):
    """Thicken or thin the strokes of each image of float32 (n, 28, 28) in [0, 1] by a random amount."""
    thicker = _over_3x3(images, keras.ops.maximum, outside=0.0)
    thinner = _over_3x3(images, keras.ops.minimum, outside=1.0)
    # Positive amounts thicken, negative ones thin; a third of the images keep their strokes.
    amount = keras.random.uniform((keras.ops.shape(images)[0], 1, 1), -1.0, 1.0, seed=seed)
    amount = keras.ops.where(keras.ops.abs(amount) < 1 / 3, 0.0, amount) * MAX_STROKE_BLEND
    blended = keras.ops.where(amount > 0, images + amount * (thicker - images), images - amount * (thinner - images))
    return keras.ops.clip(blended, 0.0, 1.0)


def _over_3x3(images, combine, outside: float):
    """Each pixel combined with its 3x3 neighbourhood (a grey dilation with maximum, an erosion with minimum).

    The nine shifted copies are combined directly: the same result as a stride-1 max-pool on images in
    [0, 1], and on some CPUs (seen on an AMD EPYC) about ten times faster than TensorFlow's pooling
    kernel, which was most of the cost of a training step. outside: the value beyond the border, one
    that never wins (0 for a maximum, 1 for a minimum).
    """
    height, width = images.shape[1], images.shape[2]
    padded = keras.ops.pad(images, [[0, 0], [1, 1], [1, 1]], constant_values=outside)
    result = images
    for row in range(3):
        for column in range(3):
            if (row, column) != (1, 1):
                result = combine(result, padded[:, row : row + height, column : column + width])
    return result
