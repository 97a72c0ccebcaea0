"""Inside the network: what each layer computes for one image.

The model is applied layer by layer and the output of every layer that computes something is kept:
the feature maps of each convolution, the units of each dense layer, and the ten outputs. Layers that
only rearrange or pass their input on (reshape, flatten, dropout at inference) are left out, since
their output is the previous layer's.
"""

from __future__ import annotations

import keras
import numpy as np

from mnist_model.data import IMAGE_SIZE, as_model_input
from mnist_model.records import LayerActivation

# Layers whose output is their input, rearranged or unchanged at inference.
_PASS_THROUGH = (keras.layers.Reshape, keras.layers.Flatten, keras.layers.Dropout, keras.layers.InputLayer)


def activations(model: keras.Model, image: np.ndarray) -> tuple[LayerActivation, ...]:
    """Each computing layer's output for one (28, 28) image (uint8 0-255 or float in [0, 1]), in order."""
    image = as_model_input(image)
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"an image to look inside the network with must be shaped (28, 28); got {image.shape}.")
    found = []
    hidden = image[None]
    for layer in model.layers:
        hidden = layer(hidden, training=False)
        if isinstance(layer, _PASS_THROUGH):
            continue
        values = np.asarray(hidden)[0].astype(np.float32)
        kind = "feature maps" if values.ndim == 3 else "units"
        found.append(LayerActivation(name=layer.name, type=type(layer).__name__, kind=kind, values=values))
    return tuple(found)
