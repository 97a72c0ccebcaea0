"""How long the map of the test set takes to compute, and how much the shortened t-SNE schedule costs in quality.

For the recommended dense network and convnet (trained first if the artifacts folder has no run of
them; cached as usual in ``$MNIST_ARTIFACTS``), in process, as the engine's model server computes
them: the penultimate layer's features of the 10,000 test images, then each map, median over
``--repeats``. Quality: the share of each image's ten nearest neighbours on the map that show its
digit, for PCA, for the t-SNE schedule the package uses, and (``--full``) for openTSNE's default
schedule (250 + 500 iterations). Target: at most 10 s per map on two cores.

    MNIST_DATA=/path/to/mnist.npz python -m benchmarks.bench_projection [--repeats 3] [--full]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from mnist_model import projection
from mnist_model.data import load_mnist
from mnist_model.settings import ARCHITECTURES, TrainingSettings
from mnist_model.training import train

TARGET_SECONDS = 10.0


def same_digit_neighbours(mapped: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """The share of each point's ``k`` nearest neighbours on the map (by brute force) that share its label."""
    shares = []
    squared = (mapped**2).sum(axis=1)
    for start in range(0, len(mapped), 1000):
        block = mapped[start : start + 1000]
        distances = squared[start : start + 1000, None] + squared[None, :] - 2 * block @ mapped.T
        distances[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        nearest = np.argpartition(distances, k, axis=1)[:, :k]
        shares.append(labels[nearest] == labels[start : start + 1000, None])
    return float(np.concatenate(shares).mean())


def full_schedule(features: np.ndarray) -> np.ndarray:
    """openTSNE's default schedule on the same start as the package's map."""
    import openTSNE

    reduced, _ = projection.pca(features, projection.TSNE_DIMENSIONS)
    affinities = openTSNE.affinity.PerplexityBasedNN(
        reduced, perplexity=projection.PERPLEXITY, method="exact", n_jobs=2
    )
    embedding = openTSNE.TSNEEmbedding(openTSNE.initialization.rescale(reduced[:, :2]), affinities, n_jobs=2)
    embedding = embedding.optimize(n_iter=250, exaggeration=12, momentum=0.5)
    return np.asarray(embedding.optimize(n_iter=500, momentum=0.8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="computations of each map per model (default 3)")
    parser.add_argument("--full", action="store_true", help="also run openTSNE's default schedule, for quality")
    arguments = parser.parse_args()
    data = load_mnist()
    labels = data.test_labels
    print(
        f"{'model':<6} {'features':>9} {'PCA':>8} {'t-SNE':>8} {'target':>7}  same-digit neighbours (PCA, t-SNE, full)"
    )
    for architecture in ARCHITECTURES:
        run = train(TrainingSettings.recommended(architecture))
        projection.penultimate_features(run.model, data.test_images[:1000])  # warm-up: the first call traces
        times: dict[str, list[float]] = {"features": [], "pca": [], "tsne": []}
        maps = {}
        for _ in range(arguments.repeats):
            started = time.perf_counter()
            features = projection.penultimate_features(run.model, data.test_images)
            times["features"].append(time.perf_counter() - started)
            for method in projection.METHODS:
                maps[method] = projection.project_features(features, method)
                times[method].append(maps[method].seconds)
        quality = [same_digit_neighbours(maps[method].coordinates, labels) for method in projection.METHODS]
        if arguments.full:
            quality.append(same_digit_neighbours(full_schedule(features), labels))
        median = {name: statistics.median(values) for name, values in times.items()}
        slowest = median["features"] + median["tsne"]
        verdict = "ok" if slowest <= TARGET_SECONDS else "SLOW"
        print(
            f"{architecture:<6} {median['features']:>7.2f} s {median['pca']:>6.2f} s {median['tsne']:>6.2f} s "
            f"{TARGET_SECONDS:>5.0f} s  {', '.join(f'{share:.3f}' for share in quality)}  {verdict}"
            f"  ({run.settings.describe()})"
        )


if __name__ == "__main__":
    main()
