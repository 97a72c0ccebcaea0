"""Training and prediction against the classic recipe, measured in one run on the same data.

The baseline is the classic Keras MNIST script: float64 inputs, ``model.fit`` with batch size 32 for
10 epochs, ``model.predict`` on one image. Ours is ``mnist_model.train`` (caching off) and
``mnist_model.Predictor``. Each measurement runs in its own process so that its peak resident memory
is its own. Timings on a shared machine are noisy, so the report gives medians over seeds and ratios
measured side by side.

    MNIST_DATA=/path/to/mnist.npz python -m benchmarks.bench_training [--seeds 3] [--skip-cnn]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent

BASELINE = """
import json, resource, sys, time
import numpy as np
from tensorflow import keras
from mnist_model import load_mnist

seed = int(sys.argv[1])
train_images, train_labels, test_images, test_labels = load_mnist()
x_train, x_test = train_images / 255.0, test_images / 255.0  # float64, as in the classic script
keras.utils.set_random_seed(seed)
model = keras.Sequential([
    keras.Input(shape=(28, 28)),
    keras.layers.Flatten(),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
started = time.perf_counter()
model.fit(x_train, train_labels, epochs=10, batch_size=32, verbose=0)
train_seconds = time.perf_counter() - started
accuracy = model.evaluate(x_test, test_labels, verbose=0)[1]
latencies = []
for index in range(50):
    started = time.perf_counter()
    model.predict(x_test[index : index + 1], verbose=0)
    latencies.append(time.perf_counter() - started)
print(json.dumps({
    "train_seconds": train_seconds,
    "test_accuracy": accuracy,
    "predict_ms": 1000 * float(np.median(latencies)),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""

OURS = """
import json, resource, sys, tempfile, time
import numpy as np
from mnist_model import Predictor, TrainingSettings, load_mnist, train

seed, architecture, augment = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "augment"
data = load_mnist()
settings = TrainingSettings.recommended(architecture, seed=seed, augment=augment)
cache = tempfile.mkdtemp()
run = train(settings, data=data, artifacts_dir=cache)
started = time.perf_counter()
cached = train(settings, data=data, artifacts_dir=cache)
load_seconds = time.perf_counter() - started
assert cached.from_cache
predictor = Predictor(run.model)
latencies = []
for index in range(1000):
    image = data.test_images[index]
    started = time.perf_counter()
    predictor.predict(image)
    latencies.append(time.perf_counter() - started)
print(json.dumps({
    "train_seconds": run.train_seconds,
    "test_accuracy": run.test_accuracy,
    "predict_ms": 1000 * float(np.median(latencies)),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "cache_load_seconds": load_seconds,
    "settings": settings.describe(),
}))
"""


def measure(script: str, *arguments: str) -> dict:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(PROJECT)}
    completed = subprocess.run(
        [sys.executable, "-c", script, *arguments], capture_output=True, text=True, env=environment, cwd=PROJECT
    )
    if completed.returncode != 0:
        sys.exit(f"benchmark child failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-cnn", action="store_true")
    arguments = parser.parse_args()

    results = {"baseline": [], "mlp": [], "mlp+augment": [], "cnn": []}
    for seed in range(arguments.seeds):
        # Interleaved, so that a slow spell on the machine hits every side alike.
        results["baseline"].append(measure(BASELINE, str(seed)))
        results["mlp"].append(measure(OURS, str(seed), "mlp", "plain"))
        results["mlp+augment"].append(measure(OURS, str(seed), "mlp", "augment"))
        for kind in ("baseline", "mlp", "mlp+augment"):
            print(f"seed {seed} {kind}: {results[kind][-1]}", file=sys.stderr)
    if not arguments.skip_cnn:
        results["cnn"].append(measure(OURS, "0", "cnn", "augment"))

    def median(kind: str, field: str) -> float:
        return statistics.median(result[field] for result in results[kind])

    def mean(kind: str, field: str) -> float:
        return statistics.mean(result[field] for result in results[kind])

    rows = [
        ("training time, median (s)", "train_seconds", median, "{:.1f}"),
        ("test accuracy, mean", "test_accuracy", mean, "{:.2%}"),
        ("one-image prediction, median (ms)", "predict_ms", median, "{:.2f}"),
        ("peak resident memory, median (MB)", "peak_rss_mb", median, "{:.0f}"),
    ]
    kinds = ["baseline", "mlp", "mlp+augment"] + (["cnn"] if results["cnn"] else [])
    print(f"\n{arguments.seeds} seeds (cnn: 1); ratios are classic recipe / ours\n")
    print("| measure | classic recipe | " + " | ".join(f"ours, {kind} | ratio" for kind in kinds[1:]) + " |")
    print("|---|---|" + "---|---|" * (len(kinds) - 1))
    for label, field, statistic, template in rows:
        values = {kind: statistic(kind, field) for kind in kinds}
        cells = [template.format(values["baseline"])]
        for kind in kinds[1:]:
            cells += [template.format(values[kind]), f"{values['baseline'] / values[kind]:.1f}x"]
        print(f"| {label} | " + " | ".join(cells) + " |")
    load = statistics.median(result["cache_load_seconds"] for result in results["mlp"])
    print(f"\nloading a cached mlp run (train() called again), median: {load:.2f} s")
    output = PROJECT / "benchmarks" / "results"
    output.mkdir(parents=True, exist_ok=True)
    (output / "training.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
