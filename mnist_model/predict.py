"""Fast, thread-safe prediction for one image or a batch.

A Keras model called eagerly costs milliseconds of framework overhead per call, far more than the
arithmetic of one 28x28 image. The predictor traces the model's inference pass once into a
TensorFlow graph with a fixed input signature, so every later call, from any thread, runs that
graph directly.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow import keras

from mnist_model.data import IMAGE_SIZE, as_model_input


class Predictor:
    """Class probabilities from a trained model; safe to share between threads."""

    def __init__(self, model: keras.Model):
        self.model = model
        signature = tf.TensorSpec(shape=(None, IMAGE_SIZE, IMAGE_SIZE), dtype=tf.float32)
        self._forward = tf.function(lambda images: model(images, training=False)).get_concrete_function(signature)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities of the ten digits.

        images: one image (28, 28) or a batch (n, 28, 28); uint8 0-255 or float in [0, 1], white
        digit on black as in MNIST. Returns float32 (10,) for one image, (n, 10) for a batch.
        """
        array = np.asarray(images)
        single = array.ndim == 2
        batch = array[np.newaxis] if single else array
        if batch.ndim != 3 or batch.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must have shape (28, 28) or (n, 28, 28); got {array.shape}.")
        probabilities = self._forward(tf.constant(as_model_input(batch))).numpy()
        return probabilities[0] if single else probabilities

    def predict_digit(self, image: np.ndarray) -> tuple[int, float, np.ndarray]:
        """For one image (28, 28): the predicted digit, its probability and all ten probabilities."""
        probabilities = self.predict(image)
        digit = int(np.argmax(probabilities))
        return digit, float(probabilities[digit]), probabilities
