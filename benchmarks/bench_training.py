"""Training and prediction against the classic recipe, measured in one run on the same data.

The baseline is the classic Keras MNIST script: float64 inputs, ``model.fit`` with batch size 32 for
10 epochs, ``model.predict`` on one image. Ours is ``mnist_model.training.train`` (caching off) and
``mnist_model.predict.Predictor``. A second table compares ``mnist_model.training.fit`` (``model.fit``) with
the hand-written training loop it replaced, kept here as the reference: the same settings, data and
seeds, trained by the old compiled loop with the same augmentation. Each measurement runs in its own
process so that its peak resident memory is its own. Timings on a shared machine are noisy, so the
report gives medians over seeds and ratios measured side by side.

    MNIST_DATA=/path/to/mnist.npz python -m benchmarks.bench_training [--seeds 3] [--skip-cnn] [--skip-classic]

``--convnets`` instead compares convnet recipes with the default mlp, each fit timed against the
mlp's fit in the same process, and scored on MNIST's test set and on the generated realistic set
(benchmarks/realistic_digits.py, seeds 0 and 1, and its numbers of seed 0): what chose the convnet.

    MNIST_DATA=/path/to/mnist.npz python -m benchmarks.bench_training --convnets [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
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
from mnist_model import TrainingSettings, load_mnist
from mnist_model.predict import Predictor
from mnist_model.training import train

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

# The training loop that fit() used before it became model.fit (git 73c6b94), trimmed of progress
# reports and stopping: each call into TensorFlow runs a tenth of an epoch of optimiser steps, taking
# batches straight from the uint8 images held as a tensor. Its augmentation is that of the time with
# the stroke-width step of today (nine shifted copies rather than a stride-1 max-pool, the same values
# at a tenth of the cost on some CPUs), so that the comparison is of the two training loops alone.
REFERENCE_LOOP = """
import json, math, resource, sys, time
import numpy as np
import tensorflow as tf
from tensorflow import keras
from mnist_model import TrainingSettings, load_mnist
from mnist_model.evaluation import test_metrics
from mnist_model.augment import _over_3x3 as over_3x3
from mnist_model.model import build_model


def random_distortions(images):
    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    angle = tf.random.uniform([count], -1.0, 1.0) * (8.0 * math.pi / 180)
    zoom = tf.random.uniform([count], 0.9, 1.1)
    shear = tf.random.uniform([count], -0.1, 0.1)
    shift_x = tf.random.uniform([count], -2.0, 2.0)
    shift_y = tf.random.uniform([count], -2.0, 2.0)
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1 = cos, sin + shear * cos
    b0, b1 = -sin, cos - shear * sin
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    a2 = centre_x - a0 * (centre_x + shift_x) - a1 * (centre_y + shift_y)
    b2 = centre_y - b0 * (centre_x + shift_x) - b1 * (centre_y + shift_y)
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images[..., tf.newaxis], transforms=transforms, output_shape=tf.constant([height, width]),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )[..., 0]
    thicker = over_3x3(images, tf.maximum, outside=0.0)
    thinner = over_3x3(images, tf.minimum, outside=1.0)
    amount = tf.random.uniform([tf.shape(images)[0], 1, 1], -1.0, 1.0)
    amount = tf.where(tf.abs(amount) < 1 / 3, 0.0, amount) * 0.6
    blended = tf.where(amount > 0, images + amount * (thicker - images), images - amount * (thinner - images))
    return tf.clip_by_value(blended, 0.0, 1.0)


def fit(settings, data):
    strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    keras.utils.set_random_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(data.train_images))
    val_index, train_index = order[: settings.validation_size], order[settings.validation_size :]
    num_train = len(train_index)
    batch_size = min(settings.batch_size, num_train - num_train % replicas)
    steps_per_epoch = num_train // batch_size
    per_replica = batch_size // replicas
    train_images = tf.constant(data.train_images[train_index])
    train_labels = tf.constant(data.train_labels[train_index].astype(np.int32))
    val_images = data.train_images[val_index]
    val_labels = data.train_labels[val_index]
    with strategy.scope():
        model = build_model(settings)
        schedule = settings.learning_rate
        if settings.cosine_decay:
            schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, settings.epochs * steps_per_epoch)
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        optimizer.build(model.trainable_variables)

    def replica_step(batch_index):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        index = batch_index[replica * per_replica : (replica + 1) * per_replica]
        images = tf.cast(tf.gather(train_images, index), tf.float32) / 255.0
        labels = tf.gather(train_labels, index)
        if settings.augment:
            images = random_distortions(images)
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            losses = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            loss = tf.reduce_sum(losses) / batch_size
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        predicted = tf.argmax(probabilities, axis=1, output_type=tf.int32)
        return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(predicted == labels, tf.float32))

    @tf.function
    def run_steps(permutation, first_step, last_step):
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0.0)
        for step in tf.range(first_step, last_step):
            batch_index = permutation[step * batch_size : (step + 1) * batch_size]
            losses, hits = strategy.run(replica_step, args=(batch_index,))
            loss_sum += strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
            correct += strategy.reduce(tf.distribute.ReduceOp.SUM, hits, axis=None)
        return loss_sum, correct

    chunk_bounds = np.linspace(0, steps_per_epoch, min(10, steps_per_epoch) + 1).astype(int)
    for epoch in range(1, settings.epochs + 1):
        permutation = tf.constant(rng.permutation(num_train).astype(np.int32))
        loss_sum = correct = 0.0
        for first, last in zip(chunk_bounds[:-1], chunk_bounds[1:], strict=True):
            chunk_loss, chunk_correct = run_steps(permutation, tf.constant(first), tf.constant(last))
            loss_sum += float(chunk_loss)
            correct += float(chunk_correct)
        test_metrics(model, val_images, val_labels)
    return model


seed, architecture, augment = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "augment"
data = load_mnist()
settings = TrainingSettings.recommended(architecture, seed=seed, augment=augment)
started = time.perf_counter()
model = fit(settings, data)
train_seconds = time.perf_counter() - started
print(json.dumps({
    "train_seconds": train_seconds,
    "test_accuracy": test_metrics(model, data.test_images, data.test_labels)[1],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


# One recipe against the default mlp, in one process: the fits' wall and CPU times, test accuracy,
# and accuracy on the realistic images and numbers prepared by the parent (an .npz).
CONVNET = """
import json, sys, time
import numpy as np
from tensorflow import keras
import mnist_model.model as networks
from mnist_model import TrainingSettings, load_mnist, training

recipe, seed, prepared = sys.argv[1], int(sys.argv[2]), np.load(sys.argv[3])
layers, epochs, batch, rate = json.loads(sys.argv[4])

def build():
    stack = [keras.Input(shape=(28, 28)), keras.layers.Reshape((28, 28, 1))]
    for filters, kernel, strides, pool in layers:
        stack.append(keras.layers.Conv2D(filters, kernel, strides=strides, activation="relu"))
        if pool:
            stack.append(keras.layers.MaxPooling2D())
    stack += [keras.layers.Flatten(), keras.layers.Dropout(0.1), keras.layers.Dense(10, activation="softmax")]
    return keras.Sequential(stack)

data = load_mnist()
def timed_fit(settings):
    wall, cpu = time.perf_counter(), time.process_time()
    model, _ = training.fit(settings, data)
    return model, time.perf_counter() - wall, time.process_time() - cpu

_, mlp_seconds, _ = timed_fit(TrainingSettings(seed=seed))
if recipe != "recommended":
    networks._cnn = build
settings = TrainingSettings.recommended("cnn", seed=seed)
if recipe != "recommended":
    settings = TrainingSettings(architecture="cnn", epochs=epochs, batch_size=batch, learning_rate=rate, seed=seed)
model, seconds, cpu = timed_fit(settings)
def read(images):
    return model.predict(images, verbose=0, batch_size=2000).argmax(axis=1)
digits = read(prepared["number_digits"])
ends = np.cumsum(prepared["number_lengths"])[:-1]
numbers = ["".join(map(str, chunk)) for chunk in np.split(digits, ends)]
print(json.dumps({
    "mlp_seconds": mlp_seconds, "seconds": seconds, "cpu_seconds": cpu, "ratio": seconds / mlp_seconds,
    "test_accuracy": float((read(data.test_images / 255.0) == data.test_labels).mean()),
    "realistic_0": float((read(prepared["images_0"]) == prepared["labels_0"]).mean()),
    "realistic_1": float((read(prepared["images_1"]) == prepared["labels_1"]).mean()),
    "numbers": sum(a == b for a, b in zip(numbers, prepared["number_labels"])) / len(prepared["number_labels"]),
}))
"""

# name -> ((filters, kernel, strides, max-pool after) per convolution, epochs, batch size, learning rate).
# "recommended" is TrainingSettings.recommended("cnn") as model.py builds it, whatever these say.
CONVNET_RECIPES = {
    "recommended": None,
    "3 conv 16-32-32, 5 epochs, batch 128": ([(16, 5, 2, 0), (32, 3, 2, 0), (32, 3, 1, 0)], 5, 128, 4e-3),
    "3 conv 32-64-64, 5 epochs, batch 256": ([(32, 5, 2, 0), (64, 3, 2, 0), (64, 3, 1, 0)], 5, 256, 4e-3),
    "3 conv 48-96-96, 6 epochs, batch 256": ([(48, 5, 2, 0), (96, 3, 2, 0), (96, 3, 1, 0)], 6, 256, 4e-3),
    "2 conv 32-64 with max-pooling, 6 epochs": ([(32, 3, 1, 1), (64, 3, 1, 1)], 6, 256, 4e-3),
}


def prepare_realistic(folder: Path) -> Path:
    """The realistic sets through preprocessing, once for every recipe: an .npz in ``folder``."""
    import numpy as np

    from benchmarks import realistic_digits as realistic
    from mnist_model.images import preprocess_canvas, preprocess_file

    def prepare(sample):
        if sample.canvas is not None:
            return preprocess_canvas(sample.canvas)
        return preprocess_file(sample.data, name=sample.name)

    arrays = {}
    for seed in (0, 1):
        samples = realistic.realistic_set(300, seed=seed)
        arrays[f"images_{seed}"] = np.stack([prepare(sample).model_input for sample in samples])
        arrays[f"labels_{seed}"] = np.array([sample.label for sample in samples])
    numbers = [(sample, prepare(sample)) for sample in realistic.realistic_numbers(150, seed=0)]
    cut = [(sample, result) for sample, result in numbers if result.is_number]
    arrays["number_digits"] = np.concatenate([result.digit_inputs for _, result in cut])
    arrays["number_lengths"] = np.array([len(result.digits) for _, result in cut])
    # Numbers not cut into digits count as misread: they are padded with labels nothing reads.
    arrays["number_labels"] = np.array([sample.label for sample, _ in cut] + ["x"] * (len(numbers) - len(cut)))
    path = folder / "realistic.npz"
    np.savez(path, **arrays)
    return path


def compare_convnets(seeds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        prepared = prepare_realistic(Path(folder))
        results = {}
        for name, recipe in CONVNET_RECIPES.items():
            for seed in range(seeds):
                kind = "recommended" if recipe is None else "custom"
                results.setdefault(name, []).append(
                    measure(CONVNET, kind, str(seed), str(prepared), json.dumps(recipe or [[], 0, 0, 0]))
                )
                print(f"{name}, seed {seed}: {results[name][-1]}", file=sys.stderr)
    print(f"\n{seeds} seeds; time: median fit against the default mlp's in the same process; accuracy: mean\n")
    print("| recipe | fit / mlp fit | fit (s) | MNIST test | realistic, seed 0 | realistic, seed 1 | numbers read |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        mean = {field: statistics.mean(run[field] for run in runs) for field in runs[0]}
        ratio = statistics.median(run["ratio"] for run in runs)
        seconds = statistics.median(run["seconds"] for run in runs)
        print(
            f"| {name} | {ratio:.1f}x | {seconds:.0f} | {mean['test_accuracy']:.2%} | {mean['realistic_0']:.1%} "
            f"| {mean['realistic_1']:.1%} | {mean['numbers']:.1%} |"
        )
    output = PROJECT / "benchmarks" / "results"
    output.mkdir(parents=True, exist_ok=True)
    (output / "convnets.json").write_text(json.dumps(results, indent=2))


def measure(script: str, *arguments: str) -> dict:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(PROJECT)}
    # From a file rather than ``-c``: AutoGraph reads the source of the reference loop's tf.function.
    with tempfile.NamedTemporaryFile("w", suffix=".py") as file:
        file.write(script)
        file.flush()
        completed = subprocess.run(
            [sys.executable, file.name, *arguments], capture_output=True, text=True, env=environment, cwd=PROJECT
        )
    if completed.returncode != 0:
        sys.exit(f"benchmark child failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-cnn", action="store_true")
    parser.add_argument("--skip-classic", action="store_true", help="leave out the classic Keras recipe")
    parser.add_argument("--convnets", action="store_true", help="compare convnet recipes instead (see above)")
    arguments = parser.parse_args()
    if arguments.convnets:
        compare_convnets(arguments.seeds)
        return

    results = {kind: [] for kind in ("baseline", "mlp", "mlp+augment", "cnn", "reference mlp", "reference mlp+augment")}
    for seed in range(arguments.seeds):
        # Interleaved, so that a slow spell on the machine hits every side alike.
        runs = [("mlp", OURS, "plain"), ("reference mlp", REFERENCE_LOOP, "plain")]
        runs += [("mlp+augment", OURS, "augment"), ("reference mlp+augment", REFERENCE_LOOP, "augment")]
        if not arguments.skip_classic:
            results["baseline"].append(measure(BASELINE, str(seed)))
            print(f"seed {seed} baseline: {results['baseline'][-1]}", file=sys.stderr)
        for kind, script, augment in runs:
            results[kind].append(measure(script, str(seed), "mlp", augment))
            print(f"seed {seed} {kind}: {results[kind][-1]}", file=sys.stderr)
    if not arguments.skip_cnn:
        results["cnn"].append(measure(OURS, "0", "cnn", "augment"))

    def median(kind: str, field: str) -> float:
        return statistics.median(result[field] for result in results[kind])

    def mean(kind: str, field: str) -> float:
        return statistics.mean(result[field] for result in results[kind])

    if results["baseline"]:
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

    print(f"\n{arguments.seeds} seeds; the reference is the hand-written loop fit() used before model.fit\n")
    print(
        "| measure | "
        + " | ".join(f"{kind}: reference loop | {kind}: model.fit | ratio" for kind in ("mlp", "mlp+augment"))
    )
    print("|---|" + "---|---|---|" * 2)
    for label, field, statistic, template in [
        ("training time, median (s)", "train_seconds", median, "{:.1f}"),
        ("test accuracy, mean", "test_accuracy", mean, "{:.2%}"),
        ("peak resident memory, median (MB)", "peak_rss_mb", median, "{:.0f}"),
    ]:
        cells = []
        for kind in ("mlp", "mlp+augment"):
            reference, ours = statistic(f"reference {kind}", field), statistic(kind, field)
            cells += [template.format(reference), template.format(ours), f"{ours / reference:.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("(ratio: model.fit / reference loop)")
    load = statistics.median(result["cache_load_seconds"] for result in results["mlp"])
    print(f"\nloading a cached mlp run (train() called again), median: {load:.2f} s")
    output = PROJECT / "benchmarks" / "results"
    output.mkdir(parents=True, exist_ok=True)
    (output / "training.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
