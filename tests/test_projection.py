"""The map of the test set: the penultimate layer's features, PCA and t-SNE, against references computed
another way (numpy's SVD, the Keras sub-model that ends before the output layer, neighbours counted in
the features)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_model import projection
from mnist_model.settings import TrainingSettings


def correlated(count: int, dimensions: int, seed: int) -> np.ndarray:
    """Features with unequal variances along random directions, off the origin: float64 (count, dimensions)."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dimensions, dimensions)) * np.linspace(3, 0.1, dimensions)[:, None]
    return rng.normal(size=(count, dimensions)) @ mixing + rng.normal(size=dimensions) * 10


def clusters(count: int, seed: int, classes: int = 10, dimensions: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters, one per class: features float64 (count, dimensions) and labels (count,)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(classes, dimensions))
    labels = rng.integers(0, classes, count)
    return centres[labels] + rng.normal(size=(count, dimensions)), labels


def nearest(points: np.ndarray, k: int) -> np.ndarray:
    """Each point's ``k`` nearest other points (Euclidean), by brute force: int (n, k)."""
    squared = (points**2).sum(axis=1)
    distances = squared[:, None] + squared[None, :] - 2 * points @ points.T
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1)[:, :k]


def kept_neighbours(features: np.ndarray, mapped: np.ndarray, k: int = 10) -> float:
    """The share of each point's ``k`` nearest neighbours in the features that are among its ``k`` on the map."""
    before, after = nearest(features, k), nearest(mapped, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(before, after, strict=True)]))


def test_pca_matches_numpys_svd_and_its_explained_variance() -> None:
    features = correlated(400, 12, seed=1)
    coordinates, shares = projection.pca(features, components=3)
    centred = features - features.mean(axis=0)
    left, singular, right = np.linalg.svd(centred, full_matrices=False)
    # The same directions up to sign: the scores agree once each column's sign is matched.
    reference = left[:, :3] * singular[:3]
    signs = np.sign((coordinates * reference).sum(axis=0))
    np.testing.assert_allclose(coordinates, reference * signs, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(shares, singular[:3] ** 2 / np.sum(singular**2), rtol=1e-9)
    # The shares are those of the total variance, and the scores' variances are the components'.
    np.testing.assert_allclose(coordinates.var(axis=0) / centred.var(axis=0).sum(), shares, rtol=1e-9)
    assert shares[0] > shares[1] > shares[2]


def test_pca_components_are_uncorrelated_and_their_signs_fixed() -> None:
    features = correlated(300, 8, seed=2)
    coordinates, _ = projection.pca(features, components=4)
    covariance = np.cov(coordinates, rowvar=False)
    np.testing.assert_allclose(covariance - np.diag(np.diag(covariance)), 0, atol=1e-8)
    # The largest loading of each direction is positive: regressing the features on the scores finds it so.
    loadings = np.linalg.lstsq(coordinates, features - features.mean(axis=0), rcond=None)[0]
    assert np.all(loadings[np.arange(4), np.abs(loadings).argmax(axis=1)] > 0)
    # Shifting the data moves nothing on the map.
    np.testing.assert_allclose(projection.pca(features + 100)[0], coordinates[:, :2], atol=1e-6)


@pytest.mark.parametrize(("shape", "components"), [((1, 5), 2), ((10,), 2), ((20, 3), 4), ((20, 3), 0)], ids=str)
def test_pca_refuses_what_it_cannot_project(shape: tuple[int, ...], components: int) -> None:
    with pytest.raises(ValueError, match="PCA needs|components must be"):
        projection.pca(np.ones(shape), components)


def test_tsne_gives_the_same_map_every_time_whatever_the_threads() -> None:
    features, _ = clusters(300, seed=3)
    first = projection.tsne(features)
    assert first.shape == (300, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, projection.tsne(features))
    np.testing.assert_array_equal(first, projection.tsne(features, n_jobs=1))
    # Not the starting point, which is the PCA map scaled down: the points moved to a map of their own.
    assert np.ptp(first, axis=0).min() > 1


def test_tsne_keeps_neighbours_far_better_than_chance_and_than_pca() -> None:
    features, labels = clusters(600, seed=4)
    mapped = projection.tsne(features)
    kept, chance = kept_neighbours(features, mapped), 10 / (len(features) - 1)
    assert kept > 10 * chance
    assert kept > kept_neighbours(features, projection.pca(features)[0])
    # The clusters stay apart: nearly every point's nearest neighbours on the map share its class.
    assert np.mean(labels[nearest(mapped, 10)] == labels[:, None]) > 0.95


@pytest.mark.slow
def test_tsne_of_ten_thousand_points_by_fft_is_the_same_every_time_and_keeps_neighbours() -> None:
    features, labels = clusters(10_000, seed=7, dimensions=64)
    mapped = projection.tsne(features)
    np.testing.assert_array_equal(mapped, projection.tsne(features))
    sample = np.random.default_rng(8).choice(len(features), 2000, replace=False)
    assert kept_neighbours(features[sample], mapped[sample]) > 10 * 10 / (len(sample) - 1)
    assert np.mean(labels[sample][nearest(mapped[sample], 10)] == labels[sample][:, None]) > 0.95


def test_tsne_refuses_too_few_points() -> None:
    with pytest.raises(ValueError, match="t-SNE needs"):
        projection.tsne(np.ones((5, 3)))


def test_project_features_describes_each_map() -> None:
    features, _ = clusters(200, seed=5, dimensions=16)
    by_pca = projection.project_features(features, "pca", layer="dense_2")
    assert by_pca.coordinates.dtype == np.float32 and by_pca.coordinates.shape == (200, 2)
    assert (by_pca.method, by_pca.layer, by_pca.features) == ("pca", "dense_2", 16)
    np.testing.assert_allclose(by_pca.explained_variance, projection.pca(features)[1])
    assert by_pca.seconds >= 0
    by_tsne = projection.project_features(features, "tsne")
    assert by_tsne.explained_variance is None and by_tsne.coordinates.shape == (200, 2)
    with pytest.raises(ValueError, match="must be one of pca, tsne"):
        projection.project_features(features, "umap")


@pytest.mark.parametrize(("architecture", "layer", "width"), [("mlp", "dense_2", 128), ("cnn", "conv_3", 576)])
def test_penultimate_features_are_what_the_output_layer_reads(architecture: str, layer: str, width: int) -> None:
    import keras

    from mnist_model.model import build_model

    keras.utils.set_random_seed(0)
    model = build_model(TrainingSettings(architecture=architecture))
    images = np.random.default_rng(6).integers(0, 256, (70, 28, 28), dtype=np.uint8)
    features = projection.penultimate_features(model, images, batch_size=32)
    reference = keras.Model(model.inputs[0], model.layers[-1].input)(images.astype(np.float32) / 255)
    assert features.dtype == np.float32 and features.shape == (70, width)
    np.testing.assert_allclose(features, np.asarray(reference).reshape(70, -1), rtol=1e-5, atol=1e-6)
    assert projection.penultimate_layer(model) == layer
    mapped = projection.project(model, images, "pca")
    assert (mapped.layer, mapped.features) == (layer, width)
    np.testing.assert_allclose(mapped.coordinates, projection.pca(features)[0], rtol=1e-4, atol=1e-4)
