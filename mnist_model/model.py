"""The networks, and a description of their layers as data.

``mlp`` is the classic Keras MNIST network, layer for layer. ``cnn`` is a small convolutional
network: three convolutions, the first two with stride 2 in place of pooling, then dropout and the
output layer (62k weights). Trained with augmentation for eight epochs it reads about 99.4% of the
test digits and 97-99% of the generated realistic set, in two to three times the dense network's
training time on two CPU cores (the README has the figures, and what else was tried).
"""

from __future__ import annotations

from tensorflow import keras

from mnist_model.data import IMAGE_SIZE, NUM_CLASSES
from mnist_model.records import LayerInfo, ModelSummary
from mnist_model.settings import TrainingSettings


def build_model(settings: TrainingSettings) -> keras.Model:
    """An uncompiled model for ``settings.architecture``: float32 (n, 28, 28) in [0, 1] -> (n, 10) probabilities."""
    builders = {"mlp": _mlp, "cnn": _cnn}
    return builders[settings.architecture]()


# Every layer is named explicitly. Keras otherwise numbers names from a global counter, which a
# Streamlit server resets (``keras.backend.clear_session()`` after each script run) from another
# thread; a reset in the middle of building a model would give two layers the same name.
def _mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE), name="image"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation="relu", name="dense_1"),
            keras.layers.Dense(128, activation="relu", name="dense_2"),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ],
        name="mlp",
    )


def _cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE), name="image"),
            keras.layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1), name="channel"),
            # Strided convolutions instead of pooling: each costs a quarter of a full-size one.
            keras.layers.Conv2D(32, 5, strides=2, activation="relu", name="conv_1"),  # 12x12
            keras.layers.Conv2D(64, 3, strides=2, activation="relu", name="conv_2"),  # 5x5
            keras.layers.Conv2D(64, 3, activation="relu", name="conv_3"),  # 3x3
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dropout(0.1, name="dropout"),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ],
        name="cnn",
    )


def describe_layers(model: keras.Model) -> ModelSummary:
    """The layer summary as data: name, type, output shape, parameter count and trainability per layer."""
    layers = tuple(
        LayerInfo(
            name=layer.name,
            type=type(layer).__name__,
            output_shape=tuple(layer.output.shape),
            parameters=int(layer.count_params()),
            trainable=bool(layer.trainable),
        )
        for layer in model.layers
    )
    trainable = sum(int(keras.ops.size(weight)) for weight in model.trainable_weights)
    non_trainable = sum(int(keras.ops.size(weight)) for weight in model.non_trainable_weights)
    return ModelSummary(layers, trainable + non_trainable, trainable, non_trainable)
