"""Accuracy on realistic images: the generated set of benchmarks/realistic_digits.py, through preprocessing.

The generated set stands in for real uploads: 300 images in every style, format and mode (seed 0),
a fifth of them of the kinds real uploads are misread on (outlined and bold printed digits, thin
canvas strokes, blurry tiny scans). The target is 98% with the default model (the convnet) on real
uploads; it reads 99.0% of this set (the dense network 95.7%; see the README), so the bar here is
what it reaches today, less a margin. Naive resizing to 28x28 scores 10-15%.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks.realistic_digits import (
    HANDWRITING_FONTS,
    HARD_KINDS,
    PRINTED_FONTS,
    STYLES,
    Sample,
    font_paths,
    realistic_numbers,
    realistic_set,
)
from mnist_model.images import PreprocessedImage, preprocess_canvas, preprocess_file

TARGET_ACCURACY = 0.97
# Outlined (hollow) printed digits, which preprocessing fills: 97% of seeds 0 and 1's are read right today.
TARGET_OUTLINED = 0.9
SET_SIZE = 300
# Numbers of 2-4 digits: the share cut into the right number of digits, and the share the default
# model reads exactly (93% of seed 0's today; the target is 90%).
NUMBER_SET_SIZE = 150
TARGET_SEGMENTED = 0.93
TARGET_NUMBERS_READ = 0.9
FONT_PACKAGES = (
    "fonts-dejavu fonts-liberation fonts-freefont-ttf fonts-dkg-handwriting fonts-breip fonts-humor-sans "
    "fonts-sjfonts fonts-bwht fonts-comic-neue fonts-rufscript fonts-kaushanscript"
)


@pytest.fixture(scope="module")
def fonts_installed() -> None:
    """The set the figures describe needs its fonts: missing ones are an error in CI, a skip locally."""
    wanted = PRINTED_FONTS + HANDWRITING_FONTS
    missing = len(wanted) - len(font_paths(wanted))
    if missing:
        message = f"{missing} of the set's {len(wanted)} fonts are missing: apt-get install {FONT_PACKAGES}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return realistic_set(SET_SIZE, seed=0)


def prepare(sample: Sample) -> PreprocessedImage:
    if sample.canvas is not None:
        return preprocess_canvas(sample.canvas)
    return preprocess_file(sample.data, name=sample.name)


@pytest.fixture(scope="module")
def prepared(samples) -> list[PreprocessedImage]:
    """Every sample through preprocessing; none may be refused."""
    return [prepare(sample) for sample in samples]


@pytest.fixture(scope="module")
def preprocessed(prepared) -> np.ndarray:
    """float32 (n, 28, 28): every sample's model input."""
    return np.stack([result.model_input for result in prepared])


@pytest.fixture(scope="module")
def numbers() -> list[tuple[Sample, PreprocessedImage]]:
    return [(sample, prepare(sample)) for sample in realistic_numbers(NUMBER_SET_SIZE, seed=0)]


def naive_input(sample: Sample) -> np.ndarray:
    """What a plain resize gives: grey, squashed to 28x28, no inversion, no cropping."""
    image = Image.fromarray(sample.canvas) if sample.canvas is not None else Image.open(io.BytesIO(sample.data))
    return np.asarray(image.convert("L").resize((28, 28)), dtype=np.float32) / 255.0


@pytest.mark.slow
def test_set_covers_every_style_format_and_size(samples):
    assert {sample.style for sample in samples} == set(STYLES)
    assert {sample.kind for sample in samples} == {"digit", *HARD_KINDS}
    formats = {Image.open(io.BytesIO(sample.data)).format for sample in samples if sample.data is not None}
    assert formats == {"PNG", "JPEG", "BMP", "GIF", "WEBP"}
    sizes = [max(Image.open(io.BytesIO(sample.data)).size) for sample in samples if sample.data is not None]
    assert min(sizes) <= 16 and max(sizes) >= 4000
    assert sum(sample.canvas is not None for sample in samples) >= 15


@pytest.mark.slow
def test_every_realistic_image_is_accepted(preprocessed, samples):
    assert preprocessed.shape == (len(samples), 28, 28)
    assert (preprocessed.max(axis=(1, 2)) == 1.0).all()


@pytest.mark.slow
def test_no_realistic_digit_is_read_as_a_number(prepared, samples):
    split = [sample.name for sample, result in zip(samples, prepared, strict=True) if result.is_number]
    assert split == []


@pytest.mark.slow
def test_realistic_numbers_are_cut_into_their_digits(fonts_installed, numbers):
    right = [len(result.digits) == len(sample.label) for sample, result in numbers]
    wrong = [
        f"{sample.name}: {len(result.digits)}" for (sample, result), ok in zip(numbers, right, strict=True) if not ok
    ]
    assert np.mean(right) >= TARGET_SEGMENTED, wrong


@pytest.fixture(scope="module")
def default_model(default_run):
    return default_run.model


@pytest.mark.integration
def test_default_model_reads_realistic_images(fonts_installed, default_model, preprocessed, samples):
    labels = np.array([sample.label for sample in samples])
    predicted = default_model.predict(preprocessed, verbose=0).argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    styles = np.array([sample.style for sample in samples])
    by_style = {style: round(float((predicted == labels)[styles == style].mean()), 3) for style in STYLES}
    kinds = np.array([sample.kind for sample in samples])
    by_kind = {kind: round(float((predicted == labels)[kinds == kind].mean()), 3) for kind in HARD_KINDS}
    assert accuracy >= TARGET_ACCURACY, f"accuracy {accuracy:.3f} by style {by_style}, hard kinds {by_kind}"
    assert by_kind["outlined"] >= TARGET_OUTLINED, by_kind


@pytest.mark.integration
def test_naive_resizing_is_near_chance(default_model, samples):
    labels = np.array([sample.label for sample in samples])
    naive = np.stack([naive_input(sample) for sample in samples])
    accuracy = float((default_model.predict(naive, verbose=0).argmax(axis=1) == labels).mean())
    assert accuracy < 0.3


@pytest.mark.integration
def test_default_model_reads_realistic_numbers(fonts_installed, default_model, numbers):
    cut = [(sample, result) for sample, result in numbers if result.is_number]
    digits = default_model.predict(np.concatenate([result.digit_inputs for _, result in cut]), verbose=0).argmax(axis=1)
    ends = np.cumsum([len(result.digits) for _, result in cut])
    read = ["".join(map(str, chunk)) for chunk in np.split(digits, ends[:-1])]
    exact = sum(text == sample.label for text, (sample, _) in zip(read, cut, strict=True)) / len(numbers)
    assert exact >= TARGET_NUMBERS_READ, f"{exact:.3f}"
