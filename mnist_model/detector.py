"""Is it a digit at all? A small network that tells digits from everything else.

A classifier of ten digits names a digit for anything it is shown, a letter or a photo of a cat
alike, and often with high confidence; a threshold on that confidence cannot separate the two (at
0.9, half the non-digits pass and some real digits are stopped). The detector answers the other
question. It is a small convnet of eleven classes, the ten digits and "not a digit", trained on the
MNIST training digits against generated non-digits (:mod:`mnist_model.negatives`: letters and
symbols, shapes, scribbles, textures, blobs), all in the MNIST form that preprocessing gives an
upload, with the same random warps and stroke changes as the classifiers' training. Learning which
digit each one is, not only that it is one, makes it learn the digits' shapes rather than what sets
its generated non-digits apart: it then stops twice as many of the letters it never saw (see the
README). Its score is the probability that the image shows a digit, any digit; below ``THRESHOLD``
the answer is "not a digit".

It is trained once per MNIST copy (two to three minutes on two cores) and kept in the artifacts folder (or
``$MNIST_DETECTOR_DIR``), whichever classifier is in use. TensorFlow is imported only by the functions that
train or run it, so the engine's coordinator can find and keep its file without loading it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnist_model import artifacts, negatives
from mnist_model.data import IMAGE_SIZE, MnistData

if TYPE_CHECKING:
    from tensorflow import keras

# Bump when the detector's network, data or training change, so that a cached one is retrained.
VERSION = 4
NEGATIVES = 12_000
# Digits drawn like the negatives (same font, warps and normalisation), learnt as digits.
RENDERED_DIGITS = 5_000
# MNIST digits as tiny blurred scans of them come out of preprocessing, learnt as digits.
BLURRED_SCANS = 4_000
EPOCHS = 4
# Its last class: not a digit.
OTHER = 10
# A score under this is "not a digit": the detector finds "not a digit" more likely than all ten digits
# together. Not tuned on the sets it is measured on (see the README).
THRESHOLD = 0.5
# The share of the 20x20 box a preprocessed image may cover with ink (> 0.5) and still be a digit: no
# realistic upload in the generated sets passes 50%, and 0.2% of MNIST's training digits pass 55%.
MAX_COVERAGE = 0.55
DIGIT_BOX_AREA = 20 * 20


def reason(scores: np.ndarray, inputs: np.ndarray | None = None, whole: np.ndarray | None = None) -> str | None:
    """Why an image is not a digit, or None when every part of it looks like one.

    scores: the detector's, for the image's digit or each digit of a number. inputs: those digits,
    float32 (n, 28, 28) in MNIST form as preprocessing gives them; whole: the image read as one digit
    (for a number, what its digits are cut from). The coverage of ink is judged on both, so that a
    texture cut into stripes like the digits of a number is still seen as one.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    which = (lambda index: "it") if len(scores) == 1 else (lambda index: f"mark {index + 1} of the {len(scores)}")
    # Preprocessing brings strokes to MNIST's width, so a digit never covers much of its 20x20 box.
    for pictures, name in ((whole, lambda index: "it"), (inputs, which)):
        if pictures is None:
            continue
        coverage = (np.asarray(pictures).reshape(-1, 28 * 28) > 0.5).sum(axis=1) / DIGIT_BOX_AREA
        fullest = int(np.argmax(coverage))
        if coverage[fullest] > MAX_COVERAGE:
            return (
                f"{name(fullest)} covers {coverage[fullest]:.0%} of its box with ink, where a digit's strokes "
                f"cover at most {MAX_COVERAGE:.0%}: a pattern, a texture or a filled shape"
            )
    worst = int(np.argmin(scores))
    if scores[worst] >= THRESHOLD:
        return None
    what = "it does not look like" if len(scores) == 1 else f"{which(worst)} side by side does not look like"
    return (
        f"{what} a handwritten or printed digit (digit score {scores[worst]:.0%}, under {THRESHOLD:.0%}): "
        "more like a letter, a symbol, a shape or a scribble"
    )


def build_detector() -> keras.Model:
    """float32 (n, 28, 28) in [0, 1] -> (n, 11): the probabilities of the ten digits and of OTHER."""
    from tensorflow import keras

    return keras.Sequential(
        [
            keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE), name="image"),
            keras.layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1), name="channel"),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv_1"),
            keras.layers.MaxPooling2D(name="pool_1"),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv_2"),
            keras.layers.MaxPooling2D(name="pool_2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation="relu", name="dense"),
            keras.layers.Dense(OTHER + 1, activation="softmax", name="classes"),
        ],
        name="digit_detector",
    )


def train_detector(data: MnistData, seed: int = 0, verbose: int = 0) -> keras.Model:
    """A detector trained on ``data``'s training digits against generated non-digits."""
    import tensorflow as tf
    from tensorflow import keras

    from mnist_model.augment import RandomDistortions

    keras.utils.set_random_seed(seed)
    made = negatives.negatives(NEGATIVES, seed=seed)
    drawn, drawn_labels = negatives.rendered_digits(RENDERED_DIGITS, seed=seed)
    blurred, blurred_labels = negatives.blurred_scans(data.train_images, data.train_labels, BLURRED_SCANS, seed=seed)
    pictures = np.concatenate([data.train_images, drawn, blurred, made])
    classes = np.concatenate([data.train_labels, drawn_labels, blurred_labels, np.full(len(made), OTHER)])
    # Digits and non-digits weigh the same in the loss, however many of each there are.
    is_other = classes == OTHER
    weights = np.where(is_other, 0.5 * len(pictures) / is_other.sum(), 0.5 * len(pictures) / (~is_other).sum())
    dataset = (
        tf.data.Dataset.from_tensor_slices((pictures, classes.astype(np.int32), weights.astype(np.float32)))
        .shuffle(len(pictures), seed=seed)
        .batch(256)
        .map(lambda x, y, w: (tf.cast(x, tf.float32) / 255.0, y, w), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    detector = build_detector()
    trainer = keras.Sequential([RandomDistortions(seed=seed, name="distortions"), detector])
    trainer.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    trainer.fit(dataset, epochs=EPOCHS, verbose=verbose)
    return detector


def detector_path(folder: Path, data: MnistData) -> Path:
    """The detector's file for ``data`` in ``folder`` (see :func:`mnist_model.config.detector_dir`)."""
    return Path(folder) / f"detector-{data.fingerprint[:16]}-v{VERSION}.keras"


def load(data: MnistData, folder: Path) -> DigitDetector:
    """The detector for ``data``: from the artifacts folder, or trained now and saved there (kept in
    memory only when the folder cannot be written). A damaged or planted file is trained anew."""
    content = read(data, folder)
    if content is not None:
        try:
            return DigitDetector(artifacts.load_model_bytes(content))
        except (ValueError, OSError, artifacts.UnsafeModelError):
            pass
    content = artifacts.model_to_bytes(train_detector(data))
    save(data, folder, content)
    return DigitDetector(artifacts.load_model_bytes(content))


def read(data: MnistData, folder: Path) -> bytes | None:
    try:
        return detector_path(folder, data).read_bytes()
    except OSError:
        return None


def save(data: MnistData, folder: Path, content: bytes) -> None:
    """Write the detector's file atomically; a folder that cannot be written is no error."""
    path = detector_path(folder, data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".partial")
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except OSError:
        pass


def discard(data: MnistData, folder: Path) -> None:
    """Remove a detector file that could not be used, so that the next one is trained anew."""
    with contextlib.suppress(OSError):
        detector_path(folder, data).unlink()


class DigitDetector:
    """Digit scores for images in MNIST form; safe to share between threads."""

    def __init__(self, model: keras.Model):
        import tensorflow as tf

        self.model = model
        signature = tf.TensorSpec(shape=(None, IMAGE_SIZE, IMAGE_SIZE), dtype=tf.float32)
        forward = tf.function(lambda x: model(x, training=False)).get_concrete_function(signature)
        self._forward = lambda batch: forward(tf.constant(batch))

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        """float32 (n,): the probability that each of float32 (n, 28, 28) in [0, 1] shows a digit."""
        batch = np.asarray(inputs, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        return 1.0 - self._forward(batch).numpy()[:, OTHER]
