"""The map of the test set: what the network's last layer reads for each test image, projected to 2-D.

The features are the penultimate layer's activations, the input of the output layer: the second
dense layer's 128 units for the dense network, the last convolution's 3x3x64 maps, flattened to
576 values, for the convnet. They are computed in batches and projected in one of two ways:

- **PCA**, exactly: the eigenvectors of the features' scatter matrix (numpy's ``eigh``, ten times
  faster here than the SVD of the centred features, which the tests compare it with) give the two
  directions of largest variance and the share of the variance each explains. Each direction's sign
  is fixed (its largest loading is positive), so the map does not depend on the routine.
- **t-SNE** (van der Maaten and Hinton, 2008) by openTSNE, on the features reduced by PCA to 50
  dimensions: perplexity 30, exact nearest neighbours, started from the PCA map (scaled down, as
  openTSNE recommends) and with a fixed seed for anything random, so that the same features always
  give the same map, whatever the number of threads. The repulsive forces are openTSNE's own
  choice: interpolated by FFT from 10,000 points (the test set), Barnes-Hut below. The schedule is
  shortened to fit about ten seconds on two cores: 125 iterations of early exaggeration, then 125
  more (openTSNE's defaults are 250 and 500); on the test set the share of each image's ten nearest
  neighbours on the map that show its digit is the same, to within 0.1 point, as after the full
  schedule.

Only numpy is imported here; openTSNE (and the scikit-learn it is built on) when a t-SNE is asked
for. :func:`penultimate_features` needs a Keras model, so it runs where the models live (the engine's
model server).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from mnist_model.data import as_model_input
from mnist_model.records import Projection

# The projections offered, by the name callers use, with the name people read.
METHODS = {"pca": "PCA", "tsne": "t-SNE"}
# The seed of whatever openTSNE draws at random, so that a map computed again is the same map.
SEED = 0
# t-SNE's settings (see the module's docstring).
TSNE_DIMENSIONS = 50
PERPLEXITY = 30.0
EXAGGERATION_ITERATIONS = 125
ITERATIONS = 125
EXAGGERATION = 12.0
# Images per forward pass when computing the features.
BATCH_SIZE = 1000
# Layers that only rearrange or pass their input on at inference.
_PASS_THROUGH = ("Flatten", "Reshape", "Dropout", "InputLayer")
# Fewer images than this cannot be mapped meaningfully (t-SNE needs a neighbourhood for each).
MIN_IMAGES = 10


def penultimate_features(model, images: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The input of ``model``'s last layer for each image: float32 (n, features).

    model: a trained Keras ``Sequential`` classifier (its last layer gives the probabilities).
    images: uint8 (n, 28, 28), or float in [0, 1]. Layers run in inference mode (no dropout).
    """
    inputs = as_model_input(images)
    if inputs.ndim != 3:
        raise ValueError(f"images must be shaped (n, 28, 28); got {inputs.shape}.")
    batches = []
    for start in range(0, len(inputs), batch_size):
        hidden = inputs[start : start + batch_size]
        for layer in model.layers[:-1]:
            hidden = layer(hidden, training=False)
        batches.append(np.asarray(hidden, dtype=np.float32).reshape(len(hidden), -1))
    return np.concatenate(batches)


def penultimate_layer(model) -> str:
    """The name of the last layer before the output that computes something: the features are its
    output (flattened, and passed through dropout, which does nothing at inference)."""
    computing = [layer for layer in model.layers[:-1] if type(layer).__name__ not in _PASS_THROUGH]
    return computing[-1].name if computing else model.layers[-2].name


def pca(features: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The features projected on their first principal components.

    features: float (n, d). Returns the coordinates, float64 (n, components), and the share of the
    total variance along each component, float64 (components,), largest first. Each component's
    sign makes its largest loading (by magnitude) positive.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"PCA needs features shaped (n, d) with n >= 2; got {features.shape}.")
    if not 1 <= components <= min(features.shape):
        raise ValueError(f"components must be 1 to {min(features.shape)}; got {components}.")
    centred = features - features.mean(axis=0)
    # eigh gives the eigenvalues in ascending order: the last ones are the largest.
    variance, vectors = np.linalg.eigh(centred.T @ centred)
    variance, directions = variance[::-1][:components], vectors[:, ::-1][:, :components].T
    largest = np.abs(directions).argmax(axis=1)
    directions *= np.sign(directions[np.arange(components), largest])[:, None]
    total = float(np.sum(centred**2))
    shares = np.clip(variance, 0, None) / total if total > 0 else np.zeros(components)
    return centred @ directions.T, shares


def tsne(features: np.ndarray, n_jobs: int = 2) -> np.ndarray:
    """A t-SNE map of the features (see the module's docstring for the settings): float64 (n, 2).

    features: float (n, d), n >= MIN_IMAGES. The same features give the same map. n_jobs: threads.
    """
    import openTSNE  # scikit-learn and openTSNE: only where a t-SNE is computed

    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < MIN_IMAGES:
        raise ValueError(f"t-SNE needs features shaped (n, d) with n >= {MIN_IMAGES}; got {features.shape}.")
    reduced, _ = pca(features, min(TSNE_DIMENSIONS, *features.shape))
    # Each point needs about three times the perplexity in neighbours.
    perplexity = min(PERPLEXITY, (len(features) - 1) / 3)
    affinities = openTSNE.affinity.PerplexityBasedNN(
        reduced, perplexity=perplexity, method="exact", n_jobs=n_jobs, random_state=SEED
    )
    start = openTSNE.initialization.rescale(reduced[:, :2])
    embedding = openTSNE.TSNEEmbedding(
        start, affinities, negative_gradient_method="auto", n_jobs=n_jobs, random_state=SEED
    )
    embedding = embedding.optimize(n_iter=EXAGGERATION_ITERATIONS, exaggeration=EXAGGERATION, momentum=0.5)
    embedding = embedding.optimize(n_iter=ITERATIONS, momentum=0.8)
    return np.asarray(embedding, dtype=np.float64)


def project_features(features: np.ndarray, method: str, layer: str = "") -> Projection:
    """The map of ``features`` (float (n, d)) by ``method`` ("pca" or "tsne"), timed."""
    if method not in METHODS:
        raise ValueError(f"the projection must be one of {', '.join(METHODS)}; got {method!r}.")
    started = time.perf_counter()
    if method == "pca":
        coordinates, shares = pca(features)
        explained = tuple(float(share) for share in shares)
    else:
        coordinates, explained = tsne(features), None
    return Projection(
        method=method,
        coordinates=coordinates.astype(np.float32),
        layer=layer,
        features=int(np.shape(features)[1]),
        explained_variance=explained,
        seconds=time.perf_counter() - started,
    )


def project(model, images: np.ndarray, method: str) -> Projection:
    """The map of ``images`` (uint8 (n, 28, 28)) as ``model``'s last layer sees them, by ``method``.

    Its ``seconds`` count the features' computation as well as the projection's.
    """
    started = time.perf_counter()
    features = penultimate_features(model, images)
    found = project_features(features, method, layer=penultimate_layer(model))
    return dataclasses.replace(found, seconds=time.perf_counter() - started)
