"""The preprocessing of uploads and drawings, from the file or canvas to the model's input.

:func:`preprocess_file` (uploaded bytes or a file-like object), :func:`preprocess_drawing` (a
canvas's PNG export) and :func:`preprocess_canvas` (an RGBA array) run the steps of the package's
modules in turn and return every intermediate step in a :class:`PreprocessedImage`, so that the
dashboard can show what happened.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image

from mnist_model.images.decoding import (
    ImageError,
    check_dimensions,
    decode,
    read_limited,
    shrink,
    to_arrays,
    upright,
)
from mnist_model.images.normalise import to_mnist, to_uint8
from mnist_model.images.paper import ink_map
from mnist_model.images.segmentation import crop_digit, number_row

# A drawing is the canvas's PNG export: well under a megabyte for the page's 280x280 canvas.
MAX_DRAWING_BYTES = 1024 * 1024
MAX_DRAWING_SCALE = 4


@dataclass(frozen=True)
class PreprocessedImage:
    """Every step from the uploaded or drawn image to the model's input.

    decoded: uint8 (h, w, 3) RGB or (h, w) grey, as decoded (transparency flattened), long side at
        most ``WORK_SIDE``. grey: uint8 (h, w), the same size, white digit on black with the paper
        removed. cropped: uint8 (h', w'), the digit's bounding box in ``grey`` without specks.
    final: uint8 (28, 28), MNIST-style. format: "PNG", "JPEG", "BMP", "GIF", "WEBP" or "canvas".
    notes: what was done beyond the usual, in words, e.g. "inverted: dark ink on light paper".
    digits: for an image of a number (several digits side by side), each digit in MNIST form, uint8
        (28, 28), left to right, and ``cropped`` is the whole number; empty for an image of one digit.
        ``final`` is then the image read as one digit, which it is not.
    """

    decoded: np.ndarray
    grey: np.ndarray
    cropped: np.ndarray
    final: np.ndarray
    format: str
    notes: tuple[str, ...]
    digits: tuple[np.ndarray, ...] = ()

    @property
    def model_input(self) -> np.ndarray:
        """float32 (28, 28) in [0, 1]: ``final / 255``."""
        return self.final.astype(np.float32) / 255.0

    @property
    def is_number(self) -> bool:
        return len(self.digits) > 1

    @property
    def digit_inputs(self) -> np.ndarray:
        """float32 (n, 28, 28) in [0, 1]: each digit of a number, or the one digit, ready for the model."""
        return np.stack(self.digits or (self.final,)).astype(np.float32) / 255.0


def preprocess_file(source: bytes | BinaryIO, *, name: str | None = None) -> PreprocessedImage:
    """Decode an uploaded image file and bring its digit into MNIST form.

    source: the file's bytes, or a binary file-like object read from its current position.
    name: used in messages only; defaults to ``source.name`` when it has one.
    The format is recognised from the content, never from the name. Raises ImageError for
    anything that is not a usable image of a digit.
    """
    label = name or getattr(source, "name", None) or "the file"
    data = read_limited(source, label)
    image, image_format, notes, orientation = decode(data, label)
    image = upright(shrink(image), orientation, notes)
    display, luminance = to_arrays(image, notes)
    return _preprocess(display, luminance, image_format, notes, label)


def preprocess_canvas(rgba: np.ndarray) -> PreprocessedImage:
    """Bring a digit drawn on a canvas into MNIST form.

    rgba: uint8 (h, w, 4), e.g. streamlit-drawable-canvas's ``image_data``: strokes on a transparent
    or coloured background, in any colours. (h, w, 3) without alpha is accepted too.
    Raises ImageError for an array of the wrong shape or type and for an empty canvas.
    """
    if not isinstance(rgba, np.ndarray) or rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
        described = f"{rgba.dtype} {rgba.shape}" if isinstance(rgba, np.ndarray) else type(rgba).__name__
        raise ImageError(f"a canvas must be a uint8 array shaped (height, width, 4) RGBA; got {described}.")
    height, width = rgba.shape[:2]
    check_dimensions(width, height, "the canvas")
    notes: list[str] = []
    image = Image.fromarray(np.ascontiguousarray(rgba))
    display, luminance = to_arrays(image, notes)
    return _preprocess(display, luminance, "canvas", notes, "the canvas")


def preprocess_drawing(data: bytes, size: tuple[int, int]) -> PreprocessedImage:
    """Bring a canvas's PNG export into MNIST form, as :func:`preprocess_canvas` does its array.

    data: the PNG bytes the browser sent, which its user controls, so they are decoded as PNG only
    (never another of Pillow's formats) and must have the canvas's ``size``, (width, height), or up to
    four times it (a high-density screen exports its own pixels). Raises ImageError for anything else
    and for an empty drawing.
    """
    width, height = size

    def fits(shown: tuple[int, int]) -> bool:
        return shown[0] * height == shown[1] * width and width <= shown[0] <= MAX_DRAWING_SCALE * width

    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_DRAWING_BYTES:
        described = f"{len(data):,} bytes" if isinstance(data, (bytes, bytearray)) else type(data).__name__
        raise ImageError(f"a drawing must be a PNG of at most {MAX_DRAWING_BYTES:,} bytes; got {described}.")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            shown = image.size
            rgba = np.asarray(image.convert("RGBA")) if fits(shown) else None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageError(f"the drawing is not a readable PNG image ({type(error).__name__}).") from None
    if rgba is None:
        raise ImageError(f"the drawing is {shown[0]}x{shown[1]} pixels; the canvas is {width}x{height}.")
    return preprocess_canvas(rgba)


def _preprocess(
    display: np.ndarray, luminance: np.ndarray, image_format: str, notes: list[str], label: str
) -> PreprocessedImage:
    ink = ink_map(luminance, notes, label)
    row = number_row(ink)
    cropped = crop_digit(ink, [] if row else notes)
    final = to_mnist(cropped, [] if row else notes)
    digits: tuple[np.ndarray, ...] = ()
    if row:
        digit_notes: list[str] = []
        digits = tuple(to_mnist(part, digit_notes) for part in row.parts)
        cropped = row.whole
        notes.append(f"read as a number of {len(digits)} digits side by side")
        notes.extend(dict.fromkeys(note.split(" (")[0] for note in digit_notes))
    return PreprocessedImage(
        decoded=display,
        grey=to_uint8(ink),
        cropped=to_uint8(cropped),
        final=final,
        format=image_format,
        notes=tuple(notes),
        digits=digits,
    )
