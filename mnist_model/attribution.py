"""Why the model answered what it did: where in the 28x28 input its answer comes from.

Three views of one prediction, each a (28, 28) map over the input's pixels:

- the **gradient** of the probability of the answer with respect to each pixel (a saliency map):
  how much brightening that pixel alone would raise or lower it;
- **integrated gradients** (Sundararajan et al., 2017): the gradients averaged along the straight
  path from a black image to the input, times the input. Unlike the gradient they add up: their sum
  is the probability of the answer for the input less that for the black image (*completeness*),
  so each pixel's share is a share of the answer;
- **Grad-CAM** (Selvaraju et al., 2017), for a network with convolutions: the last convolution's
  feature maps weighted by the mean gradient of the answer's score (before the softmax) over each
  map, summed, with negative values dropped and the result resized to 28x28. It is coarse (the
  convolution's own grid) but says which region the network's features found the digit in.

Every function takes one image as the predictor does: (28, 28), uint8 (0-255) or float in [0, 1].
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mnist_model.data import IMAGE_SIZE, as_model_input
from mnist_model.records import Attribution

# Integrated gradients' path integral, by the midpoint rule. With this many steps the attributions
# of the recommended models add up to the change in probability within 0.013 (dense network) and
# 0.046 (convnet), the largest gaps over 50 test images (benchmarks/bench_attribution.py); the
# dashboard states each image's own gap.
INTEGRATION_STEPS = 64


def explain(model: keras.Model, image: np.ndarray, digit: int | None = None) -> Attribution:
    """The gradient, integrated gradients and (for a convnet) Grad-CAM of ``digit``'s probability
    for one float32 (28, 28) image; ``digit`` defaults to the model's answer.

    All three come from one pass over one batch: the image, the black baseline and the integration
    path's points (the images of a batch do not interact in these models, so the gradient of the
    batch's summed probability is each image's own gradient)."""
    image = _checked(image)
    if digit is None:
        digit = int(np.asarray(model(image[None], training=False))[0].argmax())
    layer = last_convolution(model)
    alphas = _midpoints(INTEGRATION_STEPS)
    batch = np.concatenate([image[None], np.zeros_like(image)[None], alphas[:, None, None] * image[None]])
    inputs = tf.convert_to_tensor(batch)
    with tf.GradientTape(persistent=layer is not None) as tape:
        tape.watch(inputs)
        activations, logits = _run(model, inputs, watch=layer, tape=tape)
        probabilities = tf.nn.softmax(logits)[:, digit]
        total = tf.reduce_sum(probabilities)
        score = logits[0, digit]
    gradients = tape.gradient(total, inputs).numpy()
    cam = None
    if layer is not None:
        cam = _grad_cam_map(activations[0].numpy(), tape.gradient(score, activations)[0].numpy())
    del tape
    probabilities = probabilities.numpy()
    return Attribution(
        digit=int(digit),
        probability=float(probabilities[0]),
        baseline_probability=float(probabilities[1]),
        gradient=gradients[0],
        integrated=(image * gradients[2:].mean(axis=0)).astype(np.float32),
        grad_cam=cam,
        grad_cam_layer=layer,
    )


def gradient(model: keras.Model, image: np.ndarray, digit: int) -> np.ndarray:
    """float32 (28, 28): d P(digit) / d pixel at ``image``."""
    return _probability_gradients(model, _checked(image)[None], digit)[0]


def integrated_gradients(
    model: keras.Model,
    image: np.ndarray,
    digit: int,
    steps: int = INTEGRATION_STEPS,
    baseline: np.ndarray | None = None,
) -> np.ndarray:
    """float32 (28, 28): integrated gradients of P(digit) from ``baseline`` (a black image) to ``image``.

    The path is sampled at the midpoints of ``steps`` equal intervals, all in one batch."""
    image = _checked(image)
    baseline = np.zeros_like(image) if baseline is None else _checked(baseline)
    alphas = _midpoints(steps)
    path = baseline[None] + alphas[:, None, None] * (image - baseline)[None]
    mean_gradient = _probability_gradients(model, path, digit).mean(axis=0)
    return ((image - baseline) * mean_gradient).astype(np.float32)


def last_convolution(model: keras.Model) -> str | None:
    """The name of the model's last 2-D convolution, or None if it has none."""
    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return names[-1] if names else None


def grad_cam(model: keras.Model, image: np.ndarray, digit: int, layer: str | None = None) -> np.ndarray:
    """float32 (28, 28) in [0, 1]: Grad-CAM of ``digit`` at convolution ``layer`` (default: the last).

    The score differentiated is the digit's logit, the last layer's input to its softmax, as in the
    method's paper. The map is scaled so that its largest value is 1 (all zero if nothing is for
    the digit). Raises ValueError for a model without that convolution."""
    layer = layer or last_convolution(model)
    if layer is None or layer not in [each.name for each in model.layers]:
        raise ValueError(f"Grad-CAM needs a convolution layer; the model {model.name!r} has none named {layer!r}.")
    inputs = tf.convert_to_tensor(_checked(image)[None])
    with tf.GradientTape() as tape:
        activations, logits = _run(model, inputs, watch=layer, tape=tape)
        score = logits[0, digit]
    return _grad_cam_map(activations[0].numpy(), tape.gradient(score, activations)[0].numpy())


def _grad_cam_map(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM from one image's feature maps and the score's gradients over them, both (h, w, channels)."""
    weights = gradients.mean(axis=(0, 1))
    cam = np.maximum((activations * weights).sum(axis=-1), 0)
    resized = tf.image.resize(cam[:, :, None], (IMAGE_SIZE, IMAGE_SIZE), method="bilinear").numpy()[:, :, 0]
    top = float(resized.max())
    return (resized / top if top > 0 else np.zeros_like(resized)).astype(np.float32)


def _midpoints(steps: int) -> np.ndarray:
    return (np.arange(steps, dtype=np.float32) + 0.5) / steps


def _checked(image: np.ndarray) -> np.ndarray:
    image = as_model_input(image)
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"an image to explain must be shaped (28, 28); got {image.shape}.")
    return image


def _probability_gradients(model: keras.Model, batch: np.ndarray, digit: int) -> np.ndarray:
    """float32 (n, 28, 28): d P(digit) / d pixel for each image of ``batch``."""
    inputs = tf.convert_to_tensor(batch)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        probabilities = model(inputs, training=False)[:, digit]
    return tape.gradient(probabilities, inputs).numpy()


def _run(
    model: keras.Model, inputs: tf.Tensor, *, watch: str | None, tape: tf.GradientTape
) -> tuple[tf.Tensor | None, tf.Tensor]:
    """The model applied layer by layer: the output of layer ``watch`` (watched by ``tape``; None
    without one) and the logits, the last layer's output before its softmax."""
    watched = None
    hidden = inputs
    *body, last = model.layers
    for layer in body:
        hidden = layer(hidden, training=False)
        if layer.name == watch:
            tape.watch(hidden)
            watched = hidden
    if not (isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax):
        raise ValueError(f"attribution needs a last Dense layer with a softmax; {model.name!r} ends in {last.name!r}.")
    logits = keras.ops.matmul(hidden, last.kernel) + last.bias
    return watched, logits
