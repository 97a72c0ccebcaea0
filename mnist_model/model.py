"""The networks, and a description of their layers as data.

``mlp`` is the classic Keras MNIST network, layer for layer. ``cnn`` is a small convolutional
network (two 3x3 convolutions with max-pooling, then dropout and a dense layer) that passes 99.3%
test accuracy on MNIST when trained with augmentation for a dozen epochs, yet is cheap enough to
train on two CPU cores in a few minutes.
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
            keras.layers.Conv2D(32, 3, activation="relu", name="conv_1"),
            keras.layers.MaxPooling2D(name="pool_1"),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv_2"),
            keras.layers.MaxPooling2D(name="pool_2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dropout(0.3, name="dropout_1"),
            keras.layers.Dense(128, activation="relu", name="dense"),
            keras.layers.Dropout(0.3, name="dropout_2"),
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
