"""Real images in: MNIST-style preprocessing of uploaded files and canvas drawings.

MNIST digits are white on black, scaled to fit a 20x20 box with their aspect ratio kept, and centred
by their centre of mass in a 28x28 frame; a photo that is merely resized to 28x28 is classified at
about chance level. :func:`preprocess_file` (uploaded bytes or a file-like object) and
:func:`preprocess_canvas` (an RGBA drawing) bring any digit image into that form and return every
intermediate step, so that the dashboard can show what happened. Anything that is not a usable
digit image is refused with :class:`ImageError`, whose message says what was wrong and what is
accepted; untrusted files are size-checked from their header before any pixel is decoded.

The steps: decode (content-sniffed, first frame, EXIF orientation, reduced-size JPEG decoding),
flatten transparency and colour to grey, fit and subtract the paper's background (a robust quadratic
surface, so uneven lighting and grey paper do not matter), decide the polarity from which side of
the background the ink lies, find the digit among specks with a coarse connected-component pass,
normalise the stroke width, fit it into 20x20 and centre it by mass in 28x28.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnist_model.data import IMAGE_SIZE

# Pillow's names for the formats we accept; every other decoder is switched off for uploads.
ACCEPTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
# The largest upload read, in bytes.
MAX_BYTES = 10 * 1024 * 1024
# A drawing is the canvas's PNG export: well under a megabyte for the page's 280x280 canvas.
MAX_DRAWING_BYTES = 1024 * 1024
MAX_DRAWING_SCALE = 4
# The largest image accepted, in pixels (width x height as the file's header states it).
MAX_PIXELS = 50_000_000
# The shortest side accepted, in pixels.
MIN_SIDE = 8
# The most elongated image accepted: long side over short side.
MAX_ASPECT_RATIO = 10.0
# Images are worked on (and ``decoded`` is returned) with their long side at most this many pixels.
WORK_SIDE = 512
# The decoder's cost is bounded before it starts, from the file's header and markers alone: the
# memory it needs at full size (Pillow holds 1, 2 or 4 bytes a pixel; a progressive JPEG holds
# every DCT coefficient, 2 bytes each, until its last scan; a baseline JPEG is decoded at reduced
# size and needs little), and the scans of a JPEG, each of which makes the decoder pass over the
# whole image again. Progressive JPEGs from ordinary encoders have 10 scans or fewer.
MAX_DECODE_BYTES = 96 * 2**20
MAX_JPEG_SCANS = 100
# Pillow's WebP reader decodes through libwebp's animation decoder, which keeps a canvas of its own:
# 15 bytes a pixel at the peak, measured on 8-megapixel images.
WEBP_BYTES_PER_PIXEL = 16
# A large image is shrunk in strips of this many output rows, converted from its decoded mode on
# the way, so that no full-size copy is made beside the decoded pixels.
SHRINK_STRIP_ROWS = 16

# MNIST fits each digit into a box this size, keeping its aspect ratio.
DIGIT_BOX = 20
# MNIST's mean centre of mass, in pixel indices of the 28x28 frame (measured on the training set).
MNIST_CENTRE = 14.0

# The smallest ink-to-paper contrast, as a fraction of the full grey range, taken as a digit.
MIN_CONTRAST = 0.08
# MNIST strokes are 2.1 to 4.4 pixels wide (5th to 95th percentile, twice area over boundary, at
# half intensity). Strokes outside MIN..MAX are brought to TARGET, which suited the models best.
MIN_STROKE_WIDTH = 2.0
MAX_STROKE_WIDTH = 4.4
TARGET_STROKE_WIDTH = 2.5
# An outlined (hollow) glyph encloses its own body: a hole that is long and narrow, as a stroke is,
# unlike the round counters of 0, 4, 6, 8 and 9. A hole at least this many times longer than wide
# (its area over its width squared), covering at least this share of the glyph's box and at least
# half as wide as the ink lines, is filled. On the generated test sets of seeds 0 to 5 this fills 86
# of 91 outlined digits and 1 of 1,396 ordinary ones (and 1 of the 300 numbers of seeds 0 and 1).
OUTLINE_BODY_ELONGATION = 6.0
OUTLINE_BODY_SHARE = 0.1
# Connected components are found on a grid of at most this many cells along the long side.
COMPONENT_GRID = 48
# Numbers are segmented on a finer grid (cells across the long side), so that the narrow gaps
# between neighbouring digits stay open; a row of more digits than this is not read as a number.
NUMBER_GRID = 128
MAX_NUMBER_DIGITS = 8

_ACCEPTED = (
    f"Accepted: PNG, JPEG, BMP, GIF or WebP images of a digit or a number, up to {MAX_BYTES // (1024 * 1024)} MB "
    f"and {MAX_PIXELS // 1_000_000} megapixels, at least {MIN_SIDE}x{MIN_SIDE} pixels."
)


class ImageError(ValueError):
    """An image that cannot be used; the message says what was wrong and what is accepted."""


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
    data = _read_limited(source, label)
    image, image_format, notes, orientation = _decode(data, label)
    image = _upright(_shrink(image), orientation, notes)
    display, luminance = _to_arrays(image, notes)
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
    _check_dimensions(width, height, "the canvas")
    notes: list[str] = []
    image = Image.fromarray(np.ascontiguousarray(rgba))
    display, luminance = _to_arrays(image, notes)
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


# Reading and decoding


def _read_limited(source: bytes | BinaryIO, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        try:
            data = source.read(MAX_BYTES + 1)
        except UnicodeDecodeError as error:
            raise ImageError(f"{label} must be opened in binary mode ('rb'). {_ACCEPTED}") from error
        except (OSError, ValueError) as error:
            raise ImageError(f"{label} could not be read ({error}). {_ACCEPTED}") from error
        if not isinstance(data, bytes):
            raise ImageError(f"{label} must be opened in binary mode ('rb'). {_ACCEPTED}")
    else:
        raise ImageError(f"an upload must be bytes or a binary file object, not {type(source).__name__}.")
    if not data:
        raise ImageError(f"{label} is empty (0 bytes). {_ACCEPTED}")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{label} is larger than {MAX_BYTES // (1024 * 1024)} MB. {_ACCEPTED}")
    return data


def _sniff_non_image(data: bytes) -> str | None:
    """Name a common non-image file type from its first bytes, or None."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf"):
        return "a PDF document"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "an SVG drawing (vector images are not accepted: export it as PNG)"
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if head.startswith(b"<?xml"):
        return "an XML document"
    if head.startswith((b"pk\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"rar!")):
        return "an archive"
    try:
        text = data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(character.isprintable() or character in "\t\r\n\f" for character in text):
        return "a text file"
    return None


def _check_dimensions(width: int, height: int, label: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), over the limit of "
            f"{MAX_PIXELS // 1_000_000} megapixels; it was not decoded (it may be a decompression bomb). {_ACCEPTED}"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{label} is only {width}x{height} pixels, too small to hold a digit. {_ACCEPTED}")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageError(
            f"{label} is {width}x{height} pixels, too elongated to be one digit (sides more than "
            f"{MAX_ASPECT_RATIO:g}:1). Crop it to the digit. {_ACCEPTED}"
        )


def _bomb_error(label: str) -> ImageError:
    """Pillow refused the header's size outright: far beyond our own limit."""
    return ImageError(
        f"{label} has far more pixels than the limit of {MAX_PIXELS // 1_000_000} megapixels; it was not decoded "
        f"(it may be a decompression bomb). {_ACCEPTED}"
    )


def _decode(data: bytes, label: str) -> tuple[Image.Image, str, list[str], int]:
    """Open, check the header and the decoder's cost, and decode the first frame at a useful size.

    Returns the image, its format, notes, and its EXIF orientation (1: upright), which is undone
    once the image is small (see :func:`_upright`).
    """
    non_image = _sniff_non_image(data)
    if non_image is not None:
        raise ImageError(f"{label} is {non_image}, not an image. {_ACCEPTED}")
    notes: list[str] = []
    # Pillow's decoders raise many exception types on malformed input; the untrusted file is the
    # cause of any of them, so each becomes an ImageError rather than a traceback.
    try:
        # Phone cameras often write MPO, a JPEG with extra pictures; Pillow's JPEG opener handles it.
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise _bomb_error(label) from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{label} is not an image in a format we read. {_ACCEPTED}") from error
    except Exception as error:
        raise ImageError(f"{label} has a corrupt image header ({error}). {_ACCEPTED}") from error
    image_format = "JPEG" if image.format == "MPO" else str(image.format)
    width, height = image.size
    _check_dimensions(width, height, label)
    if image_format == "JPEG":
        _check_jpeg_cost(data, width, height, label)
    else:
        per_pixel = WEBP_BYTES_PER_PIXEL if image_format == "WEBP" else _BYTES_PER_PIXEL.get(image.mode, 4)
        shown = {"WEBP": "WebP"}.get(image_format, image_format)
        _check_decode_memory(width * height * per_pixel, f"{shown} image", label)
    try:
        if image_format == "PNG":
            # verify() checks chunk checksums, which decoding alone does not; it needs a fresh file.
            Image.open(io.BytesIO(data), formats=("PNG",)).verify()
        if getattr(image, "is_animated", False):
            what = {"GIF": "animated GIF", "JPEG": "multi-picture JPEG (MPO)"}.get(
                image_format, f"animated {image_format}"
            )
            notes.append(f"{what}: used the first frame")
        if image_format == "JPEG":
            scale = WORK_SIDE / max(width, height)
            if scale < 0.5:
                image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
                if image.size != (width, height):
                    notes.append(f"decoded at reduced size {image.size[0]}x{image.size[1]} from {width}x{height}")
        image.load()
        orientation = image.getexif().get(0x0112, 1)
    except Image.DecompressionBombError as error:
        raise _bomb_error(label) from error
    except Exception as error:
        raise ImageError(f"{label} is a damaged or truncated {image_format} file ({error}). {_ACCEPTED}") from error
    return image, image_format, notes, orientation if orientation in _ORIENTATIONS else 1


# Pillow's bytes per pixel for the modes its decoders produce (every other mode takes 4).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# A JPEG marker: 0xFF, then a byte that is not stuffing (0x00), a restart marker or fill (0xFF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Start-of-frame markers (every 0xC0 to 0xCF but DHT, JPG and DAC), and the progressive ones.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9


def _check_decode_memory(needed: int, what: str, label: str) -> None:
    if needed > MAX_DECODE_BYTES:
        raise ImageError(
            f"{label} is a {what} that would take {needed / 2**20:.0f} MB to decode, over the limit of "
            f"{MAX_DECODE_BYTES // 2**20} MB; it was not decoded. Save it smaller (a digit needs no more than "
            f"a few hundred pixels a side), or as an ordinary JPEG. {_ACCEPTED}"
        )


def _check_jpeg_cost(data: bytes, width: int, height: int, label: str) -> None:
    """Refuse a JPEG whose scans or coefficient memory would make decoding it costly, before decoding."""
    scans, progressive, blocks = _jpeg_layout(data, MAX_JPEG_SCANS)
    if scans > MAX_JPEG_SCANS:
        raise ImageError(
            f"{label} is a JPEG of more than {MAX_JPEG_SCANS} scans (ordinary progressive JPEGs have about "
            f"10); it was not decoded, since every scan makes the decoder go over the whole image again. "
            f"{_ACCEPTED}"
        )
    if progressive:
        # libjpeg keeps every coefficient of a progressive image, 64 of 2 bytes in each 8x8 block.
        _check_decode_memory(blocks * 128 or width * height * 6, f"progressive JPEG of {width}x{height} pixels", label)


def _jpeg_layout(data: bytes, scan_limit: int) -> tuple[int, bool, int]:
    """From a JPEG's markers alone: its scans (counted up to one past ``scan_limit``), whether its
    frame is progressive, and its frame's 8x8 blocks over all components (0 if no frame was read).

    Marker segments are skipped by their stated length, so pictures inside them (an EXIF
    thumbnail) are not counted; entropy-coded data is skipped to the next real marker.
    """
    scans, progressive, blocks = 0, False, 0
    position = 2  # after the start-of-image marker
    while scans <= scan_limit:
        found = _JPEG_MARKER.search(data, position)
        if found is None:
            break
        position = found.start()
        marker = data[position + 1]
        if marker == _JPEG_EOI:
            break
        if marker == 0x01:  # TEM: no length
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _JPEG_FRAMES:
            progressive |= marker in _JPEG_PROGRESSIVE
            blocks = _jpeg_frame_blocks(data[position + 4 : position + 2 + length])
        elif marker == _JPEG_SOS:
            scans += 1
        position += 2 + max(length, 2)
    return scans, progressive, blocks


def _jpeg_frame_blocks(frame: bytes) -> int:
    """The 8x8 blocks of a start-of-frame segment's components, each at its own sampling."""
    if len(frame) < 6:
        return 0
    height, width, count = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big"), frame[5]
    sampling = [(frame[6 + 3 * i + 1] >> 4, frame[6 + 3 * i + 1] & 15) for i in range(count) if 8 + 3 * i < len(frame)]
    if not sampling:
        return 0
    most_h = max(max(h for h, _ in sampling), 1)
    most_v = max(max(v for _, v in sampling), 1)
    return sum(
        math.ceil(math.ceil(width * h / most_h) / 8) * math.ceil(math.ceil(height * v / most_v) / 8)
        for h, v in sampling
    )


# The modes a strip is converted to before it is reduced, where the decoded mode cannot be reduced
# as it is (palette indices and 1-bit pixels cannot be averaged, 16-bit grey has no reducer) or should
# be premultiplied by its alpha first, as Pillow's own resizing does; and the mode the result is given.
_SHRINK_MODES = {
    "1": ("L", "L"),
    "P": ("RGB", "RGB"),
    "PA": ("RGBa", "RGBA"),
    "LA": ("La", "LA"),
    "RGBA": ("RGBa", "RGBA"),
    "I;16": ("I", "I;16"),
    "I;16L": ("I", "I;16"),
    "I;16B": ("I", "I;16"),
    "I;16N": ("I", "I;16"),
}
_REDUCIBLE = frozenset({"L", "RGB", "CMYK", "I", "F"})
# EXIF orientations and the transposition that makes each upright.
_ORIENTATIONS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _shrink(image: Image.Image) -> Image.Image:
    """Reduce a large image by a whole factor, leaving at least twice the working size for the final
    resize (as Pillow's ``reducing_gap=2`` does), strip by strip, so that the decoded pixels are
    never copied at full size. A small image is returned as it is."""
    factor = max(image.size) // (2 * WORK_SIDE)
    if factor < 2:
        return image
    if image.mode in _REDUCIBLE:
        return image.reduce(factor)
    if image.mode == "P" and "transparency" in image.info:
        working, result = "RGBa", "RGBA"
    else:
        working, result = _SHRINK_MODES.get(image.mode, ("RGBA", "RGBA"))
    width, height = image.size
    small = Image.new(working, (math.ceil(width / factor), math.ceil(height / factor)))
    rows = factor * SHRINK_STRIP_ROWS
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(top + rows, height)))
        if working == "RGBa" and strip.mode != "RGBA":
            strip = strip.convert("RGBA")
        small.paste(strip.convert(working).reduce(factor), (0, top // factor))
    return small.convert(result)


def _upright(image: Image.Image, orientation: int, notes: list[str]) -> Image.Image:
    """Undo an EXIF orientation other than 1 (upright)."""
    method = _ORIENTATIONS.get(orientation)
    if method is None:
        return image
    notes.append(f"rotated upright as its EXIF orientation ({orientation}) says")
    return image.transpose(method)


def _to_arrays(image: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Shrink to the working size, flatten transparency, and return display pixels and luminance.

    Returns uint8 (h, w, 3) or (h, w) for display and float32 (h, w) luminance in [0, 1].
    """
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Only a small image gets here (see _shrink): the float copy costs little.
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        notes.append(f"{'16-bit' if top > 255 else 'integer'} grey scaled to 8 bits")
        image = Image.fromarray(np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8))
    elif mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB")
        image = image.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    if image.mode in ("LA", "RGBA") and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert(image.mode[:-1])
    if max(image.size) > WORK_SIDE:
        scale = WORK_SIDE / max(image.size)
        size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if image.mode in ("LA", "RGBA"):
        image = _flatten_alpha(image, notes)
    pixels = np.asarray(image)
    luminance = np.asarray(image.convert("L") if image.mode == "RGB" else image, dtype=np.float32) / 255.0
    return pixels, luminance


def _flatten_alpha(image: Image.Image, notes: list[str]) -> Image.Image:
    """Composite an LA or RGBA image onto a background chosen so that whatever is drawn stays visible.

    When most of the image is transparent, the opaque part is the drawing (a canvas export), so the
    background is white under dark strokes and black under light ones. Otherwise the transparent
    part is just outside the picture and gets the picture's own typical grey. Returns L or RGB.
    """
    # Every other pixel is plenty to choose a background colour.
    grey = np.asarray(image.convert("L"))[::2, ::2]
    alpha = np.asarray(image.getchannel("A"))[::2, ::2]
    opaque = alpha >= 128
    if opaque.mean() < 0.5:
        weights = alpha.astype(np.float32)
        total = float(weights.sum())
        drawn = float((grey * weights).sum()) / total if total > 0 else 0.0
        level = 255 if drawn < 128 else 0
        notes.append(f"transparent background: composited onto {'white' if level else 'black'}")
    else:
        level = int(np.median(grey[opaque]))
    background = Image.new("RGBA", image.size, (level, level, level, 255))
    flattened = Image.alpha_composite(background, image.convert("RGBA"))
    return flattened.convert("RGB" if image.mode == "RGBA" else "L")


# From grey to MNIST


def _preprocess(
    display: np.ndarray, luminance: np.ndarray, image_format: str, notes: list[str], label: str
) -> PreprocessedImage:
    ink = _ink_map(luminance, notes, label)
    row = _number_row(ink)
    cropped = _crop_digit(ink, [] if row else notes)
    final = _to_mnist(cropped, [] if row else notes)
    digits: tuple[np.ndarray, ...] = ()
    if row:
        digit_notes: list[str] = []
        digits = tuple(_to_mnist(part, digit_notes) for part in row.parts)
        cropped = row.whole
        notes.append(f"read as a number of {len(digits)} digits side by side")
        notes.extend(dict.fromkeys(note.split(" (")[0] for note in digit_notes))
    return PreprocessedImage(
        decoded=display,
        grey=_to_uint8(ink),
        cropped=_to_uint8(cropped),
        final=final,
        format=image_format,
        notes=tuple(notes),
        digits=digits,
    )


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)


def _box3(values: np.ndarray) -> np.ndarray:
    """Mean over each pixel's 3x3 neighbourhood (edges repeated)."""
    padded = np.pad(values, 1, mode="edge")
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0


def _fit_background(luminance: np.ndarray) -> tuple[np.ndarray, float]:
    """A smooth model of the paper, and the noise around it.

    A quadratic surface is fitted to a subsample, first to the border (mostly paper), then
    repeatedly to the pixels it explains, so that the ink drops out as outliers. Images under 32
    pixels a side, where the digit fills most of the frame, get a constant instead. Returns float32
    (h, w) background and the robust standard deviation of the paper around it.
    """
    height, width = luminance.shape
    step = max(1, int(math.sqrt(height * width / 4096)))
    sample = luminance[::step, ::step]
    ys = np.linspace(-1, 1, height, dtype=np.float32)
    xs = np.linspace(-1, 1, width, dtype=np.float32)
    sample_y, sample_x = np.meshgrid(ys[::step], xs[::step], indexing="ij")
    quadratic = min(height, width) >= 32
    columns = [np.ones_like(sample_x)]
    if quadratic:
        columns += [sample_x, sample_y, sample_x * sample_x, sample_x * sample_y, sample_y * sample_y]
    design = np.stack([column.ravel() for column in columns], axis=1)
    values = sample.ravel()
    ring = max(1, round(0.06 * min(sample.shape)))
    border = np.zeros(sample.shape, dtype=bool)
    border[:ring], border[-ring:], border[:, :ring], border[:, -ring:] = True, True, True, True
    chosen = border.ravel()
    for _ in range(3):
        # Normal equations: a 6x6 solve is far quicker than lstsq's SVD, and the columns are tame.
        subset = design[chosen]
        gram = subset.T @ subset + 1e-6 * np.eye(subset.shape[1], dtype=np.float32)
        coefficients = np.linalg.solve(gram, subset.T @ values[chosen])
        residuals = values - design @ coefficients
        sigma = 1.4826 * float(np.median(np.abs(residuals[chosen])))
        chosen = np.abs(residuals) <= max(2.5 * sigma, 0.02)
    background = np.full((height, width), coefficients[0], dtype=np.float32)
    if quadratic:
        c = coefficients
        background += c[1] * xs[None, :] + c[2] * ys[:, None] + c[3] * (xs * xs)[None, :]
        background += c[4] * ys[:, None] * xs[None, :] + c[5] * (ys * ys)[:, None]
    return background, sigma


def _otsu(values: np.ndarray) -> float:
    """The threshold that best splits ``values`` (float, 1-D) into two classes (Otsu's method)."""
    counts, edges = np.histogram(values, bins=64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def _ink_map(luminance: np.ndarray, notes: list[str], label: str) -> np.ndarray:
    """float32 (h, w) in [0, 1]: how much ink each pixel holds, 0 on the paper."""
    background, sigma = _fit_background(luminance)
    residual = luminance - background
    # The ink is on whichever side of the paper holds more contrast beyond the noise: a digit is a
    # minority of the pixels, so the paper fit is not pulled towards it.
    margin = max(3 * sigma, 0.02)
    darker = float(np.clip(-residual - margin, 0, None).sum())
    lighter = float(np.clip(residual - margin, 0, None).sum())
    if darker > lighter:
        residual = -residual
        notes.append("inverted: dark ink on light paper")
    smoothed = _box3(residual)
    peak = float(smoothed.max())
    if peak < max(MIN_CONTRAST, 4 * sigma):
        raise ImageError(
            f"no digit found in {label}: the image is blank or uniform (contrast {max(peak, 0):.0%} against "
            f"noise {sigma:.0%}). Show one dark digit on light paper or one light digit on a dark background."
        )
    candidates = smoothed[smoothed > max(2 * sigma, 0.25 * peak)]
    threshold = min(max(_otsu(candidates), 0.3 * peak), 0.7 * peak)
    ink_level = float(np.percentile(residual[smoothed > threshold], 75))
    floor = max(2 * sigma, 0.15 * ink_level)
    ink = np.clip((residual - floor) / max(ink_level - floor, 1e-3), 0, 1)
    # Salt noise is dropped: a pixel counts only where its neighbourhood holds ink too.
    ink[smoothed < 0.5 * threshold] = 0
    return ink.astype(np.float32)


def _components(cells: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean grid: int32 labels (0 = empty, 1...) and their count.

    Scan-line labelling: each row's runs of set cells join the runs they touch in the row above,
    with a union-find over run labels, so the Python work grows with the number of runs, not cells.
    """
    labels = np.zeros(cells.shape, dtype=np.int32)
    parent = [0]

    def root(label: int) -> int:
        while parent[label] != label:
            parent[label] = parent[parent[label]]
            label = parent[label]
        return label

    steps = np.diff(np.pad(cells, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    run_rows, run_starts = np.nonzero(steps == 1)
    run_ends = np.nonzero(steps == -1)[1]
    runs_by_row: list[list[tuple[int, int]]] = [[] for _ in range(cells.shape[0])]
    for row_index, start, end in zip(run_rows.tolist(), run_starts.tolist(), run_ends.tolist(), strict=True):
        runs_by_row[row_index].append((start, end))
    previous: list[tuple[int, int, int]] = []
    for row_index, runs in enumerate(runs_by_row):
        current = []
        for start, end in runs:
            label = 0
            for above_start, above_end, above_label in previous:
                # Runs [start, end) and [above_start, above_end) touch, diagonals included.
                if above_start <= end and above_end >= start:
                    above_root = root(above_label)
                    if label == 0:
                        label = above_root
                    elif above_root != label:
                        parent[max(label, above_root)] = min(label, above_root)
                        label = min(label, above_root)
            if label == 0:
                label = len(parent)
                parent.append(label)
            labels[row_index, start:end] = label
            current.append((start, end, label))
        previous = current
    roots = np.array([root(label) for label in range(len(parent))], dtype=np.int32)
    unique_roots, consecutive = np.unique(roots, return_inverse=True)
    # Root 0 (empty) is always present and sorts first, so it maps to 0.
    return consecutive.astype(np.int32)[labels], len(unique_roots) - 1


def _crop_digit(ink: np.ndarray, notes: list[str]) -> np.ndarray:
    """float32 (h', w'): the digit's bounding box in ``ink``, with specks and clutter outside it removed.

    Components are found on a coarse grid of cells, which also bridges small gaps in a stroke. The
    main component is the heaviest, with those touching the image border discounted (paper edges,
    shadows); nearby components of some weight join it (a detached bar of a 5 or 7).
    """
    height, width = ink.shape
    cell = max(1, math.ceil(max(height, width) / COMPONENT_GRID))
    grid_height, grid_width = math.ceil(height / cell), math.ceil(width / cell)
    padded = np.zeros((grid_height * cell, grid_width * cell), dtype=np.float32)
    padded[:height, :width] = ink
    mass = padded.reshape(grid_height, cell, grid_width, cell).sum(axis=(1, 3))
    labels, count = _components(mass > 0)
    if count > 1:
        masses = np.bincount(labels.ravel(), weights=mass.ravel())[1:]
        boxes = []
        for index in range(1, count + 1):
            rows, cols = np.nonzero(labels == index)
            boxes.append((rows.min(), rows.max() + 1, cols.min(), cols.max() + 1))
        touches = np.array(
            [
                top == 0 or left == 0 or bottom == grid_height or right == grid_width
                for top, bottom, left, right in boxes
            ]
        )
        main = int(np.argmax(masses * np.where(touches, 0.3, 1.0)))
        kept = [main]
        top, bottom, left, right = boxes[main]
        main_extent = max(bottom - top, right - left)
        for index in np.argsort(-masses):
            other_top, other_bottom, other_left, other_right = boxes[index]
            extent = max(other_bottom - other_top, other_right - other_left)
            # A detached part of a digit (the bar of a 5) is long or heavy; a speck or dot is neither.
            part_like = extent >= 0.3 * main_extent or masses[index] >= 0.3 * masses[main]
            if index == main or masses[index] < 0.05 * masses[main] or not part_like:
                continue
            if touches[index] and not touches[main]:
                continue
            gap = max(other_top - bottom, top - other_bottom, other_left - right, left - other_right, 0)
            if gap <= 0.25 * max(bottom - top, right - left):
                kept.append(int(index))
                top, bottom = min(top, other_top), max(bottom, other_bottom)
                left, right = min(left, other_left), max(right, other_right)
        if len(kept) < count:
            notes.append(f"ignored {count - len(kept)} speck(s) or smudge(s) away from the digit")
        keep_cells = np.isin(labels, np.array(kept) + 1)
        keep = np.repeat(np.repeat(keep_cells, cell, axis=0), cell, axis=1)[:height, :width]
        ink = np.where(keep, ink, 0)
    return _tight_crop(ink)


# Whole numbers


@dataclass(frozen=True)
class _Row:
    """A number found in an ink map: the whole of it, and each digit, left to right (float32 crops)."""

    whole: np.ndarray
    parts: tuple[np.ndarray, ...]


@dataclass
class _Glyph:
    """Components that stand above one another (a digit and its detached bar), in grid cells."""

    top: int
    bottom: int
    left: int
    right: int
    mass: float
    members: list[int]

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def joins(self, top: int, bottom: int, left: int, right: int) -> bool:
        """Whether a component in that box belongs to this glyph: it shares most of the narrower one's
        columns, is close, and either stands above or below (a detached bar) or is centred within the
        other's columns (a stroke across the other's span), unlike the slanted neighbours of italic digits."""
        shared = min(self.right, right) - max(self.left, left)
        if shared < 0.4 * max(1, min(self.width, right - left)):
            return False
        vertical = min(self.bottom, bottom) - max(self.top, top)  # negative: the gap between them
        if vertical < -0.3 * max(self.height, bottom - top):
            return False  # a speck well below or above
        beside = vertical >= 0.5 * min(self.height, bottom - top)
        centred = self.left <= (left + right) / 2 <= self.right or left <= (self.left + self.right) / 2 <= right
        return not beside or centred

    def add(self, index: int, top: int, bottom: int, left: int, right: int, mass: float) -> None:
        self.top, self.bottom = min(self.top, top), max(self.bottom, bottom)
        self.left, self.right = min(self.left, left), max(self.right, right)
        self.mass += mass
        self.members.append(index)


def _number_row(ink: np.ndarray, cell: int | None = None) -> _Row | None:
    """The digits of an image that shows a number, or None for an image of one digit.

    A number is two or more glyphs of about the same height side by side on one line, with nothing
    else of weight beside them. Components stacked above one another are one glyph (a 5 and its
    detached bar). A glyph much wider than tall is cut where touching digits meet, at a column of
    little ink in its middle, or else taken apart pixel by pixel (``cell`` 1) in its solid ink if its
    digits only came close. Anything less clear is left to the one-digit reading.
    """
    height, width = ink.shape
    cell = cell or max(1, math.ceil(max(height, width) / NUMBER_GRID))
    grid_height, grid_width = math.ceil(height / cell), math.ceil(width / cell)
    padded = np.zeros((grid_height * cell, grid_width * cell), dtype=np.float32)
    padded[:height, :width] = ink
    mass = padded.reshape(grid_height, cell, grid_width, cell).sum(axis=(1, 3))
    columns, rows = np.flatnonzero(mass.any(axis=0)), np.flatnonzero(mass.any(axis=1))
    if len(columns) == 0:
        return None
    # The common case, and a quick way out: ink in every column of a box narrower than tall is one digit.
    if len(columns) == columns[-1] - columns[0] + 1 and len(columns) < 0.9 * (rows[-1] - rows[0] + 1):
        return None
    labels, count = _components(mass > 0)
    masses = np.bincount(labels.ravel(), weights=mass.ravel(), minlength=count + 1)[1:]
    rows, cols = np.nonzero(labels)
    which = labels[rows, cols] - 1
    tops, lefts = np.full(count, grid_height), np.full(count, grid_width)
    bottoms, rights = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64)
    np.minimum.at(tops, which, rows)
    np.minimum.at(lefts, which, cols)
    np.maximum.at(bottoms, which, rows + 1)
    np.maximum.at(rights, which, cols + 1)
    glyphs: list[_Glyph] = []
    for index in np.argsort(-masses, kind="stable"):
        box = int(tops[index]), int(bottoms[index]), int(lefts[index]), int(rights[index])
        top, bottom, left, right = box
        touches = top == 0 or left == 0 or bottom == grid_height or right == grid_width
        # A paper edge or shadow runs along the image's length; a digit of a tight crop spans its height.
        frame = touches and max(bottom - top, right - left) >= 0.9 * max(grid_height, grid_width)
        if masses[index] < 0.01 * masses.sum() or frame:
            continue
        joined = next((glyph for glyph in glyphs if glyph.joins(*box)), None)
        if joined is None:
            glyphs.append(_Glyph(*box, float(masses[index]), [int(index)]))
        else:
            joined.add(int(index), *box, float(masses[index]))
    if not glyphs:
        return None
    tallest = max(glyph.height for glyph in glyphs)
    digits = sorted((glyph for glyph in glyphs if glyph.height >= 0.45 * tallest), key=lambda glyph: glyph.left)
    typical_mass = float(np.median([glyph.mass for glyph in digits]))
    for glyph in glyphs:
        # Specks, dots and dashes are short; something taller and of weight is no digit of the row.
        if glyph not in digits and glyph.height >= 0.3 * tallest and glyph.mass >= 0.3 * typical_mass:
            return None
    reference = max(digits, key=lambda glyph: glyph.height)
    for earlier, later in zip(digits[:-1], digits[1:], strict=True):
        gap = later.left - earlier.right
        if gap > 1.5 * tallest:
            return None  # too far apart to be one number
        aligned = min(abs(earlier.top - later.top), abs(earlier.bottom - later.bottom)) <= 0.12 * tallest
        if 0 <= gap < 0.07 * tallest and min(earlier.height, later.height) < 0.75 * tallest and not aligned:
            # A short part close beside a tall one, level with neither its top nor its bottom: more
            # likely one digit with a break in a stroke (a 4 whose stem does not meet its bar).
            return None
    for glyph in digits:
        if min(glyph.bottom, reference.bottom) - max(glyph.top, reference.top) < 0.5 * glyph.height:
            return None  # not on one line

    def ink_of(glyphs: list[_Glyph]) -> np.ndarray:
        cells = np.isin(labels, np.array([member for glyph in glyphs for member in glyph.members]) + 1)
        keep = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height, :width]
        return _tight_crop(np.where(keep, ink, 0))

    parts = []
    for glyph in digits:
        glyph_ink = ink_of([glyph])
        # Touching digits: a lone glyph much wider than tall, or a glyph of a row a little wider than tall.
        wide = (1.2 if len(digits) == 1 else 0.8) * glyph.height * cell
        columns = glyph_ink.sum(axis=0)
        cuts = _touching_cuts(columns, wide, 0.8 * glyph.height * cell)
        # Digits that only came close, apart in their solid ink though blur or the grid joined them.
        solid = np.where(glyph_ink >= 0.5, glyph_ink, 0)
        apart = _number_row(solid, cell=1) if not cuts and cell > 1 and len(columns) > wide else None
        if apart is not None:
            parts.extend(apart.parts)
            continue
        edges = [0, *cuts, len(columns)]
        parts.extend(glyph_ink[:, start:end] for start, end in zip(edges[:-1], edges[1:], strict=True))
    parts = [_tight_crop(part) for part in parts if part.any()]
    if not 2 <= len(parts) <= MAX_NUMBER_DIGITS:
        return None
    return _Row(whole=ink_of(digits), parts=tuple(parts))


def _touching_cuts(columns: np.ndarray, wide: float, wide_after: float) -> list[int]:
    """Where to cut a glyph of touching digits, given its ink per column; none for one digit.

    A span wider than ``wide`` pixels is cut at the column of least ink in its middle half, if that
    column holds under a quarter of the span's typical column; each side, once cut, is looked at again as a
    span of a row, wider than ``wide_after``.
    """
    typical = float(np.median(columns[columns > 0])) if columns.any() else 0.0

    def cuts(start: int, end: int, wide: float) -> list[int]:
        span = end - start
        if span <= wide:
            return []
        low, high = start + span // 4, end - span // 4
        # The least ink, and of two nearly as thin, the one nearer the middle.
        offsets = np.abs(np.arange(low, high) - (start + end) / 2) / max(1, high - low)
        column = low + int(np.argmin(columns[low:high] + 0.1 * typical * offsets))
        if columns[column] > 0.25 * typical:
            return []
        return [*cuts(start, column, wide_after), column, *cuts(column, end, wide_after)]

    return cuts(0, len(columns), wide)


def _tight_crop(values: np.ndarray) -> np.ndarray:
    """The bounding box of the non-zero pixels (empty for an empty picture)."""
    rows, cols = np.flatnonzero(values.any(axis=1)), np.flatnonzero(values.any(axis=0))
    if len(rows) == 0:
        return values[:0, :0]
    return values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a boolean (h, w) mask: twice its area over its boundary length."""
    area = int(mask.sum())
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return 2 * area / max(area - int(interior.sum()), 1)


def _outline_body(mask: np.ndarray) -> np.ndarray:
    """The holes of a boolean (h, w) glyph that are the body of an outlined digit (see
    OUTLINE_BODY_ELONGATION): a boolean (h, w) mask, empty for an ordinary digit.

    The holes are measured at half resolution, which is four times cheaper and still resolves the
    narrowest body (about 2 pixels wide there)."""
    height, width = mask.shape
    half = _resize(mask.astype(np.float32), max(1, width // 2), max(1, height // 2)) > 0.35
    labels, count = _components(np.pad(~half, 1, constant_values=True))
    outside, labels = labels[0, 0], labels[1:-1, 1:-1]
    ink_width = _stroke_width(half)
    body = np.zeros_like(half)
    for label in range(1, count + 1):
        if label == outside:
            continue
        hole = labels == label
        area = int(hole.sum())
        if area < OUTLINE_BODY_SHARE * half.size:
            continue
        # Its width: one more than twice the erosions it takes to vanish.
        erosions, eroded = 0, _tight_crop(hole)
        while eroded.any():
            eroded = _repeat_3x3(eroded, np.minimum, 1)
            erosions += 1
        hole_width = 2 * erosions - 1
        if area >= OUTLINE_BODY_ELONGATION * hole_width**2 and hole_width >= ink_width / 2:
            body |= hole
    if not body.any():
        return np.zeros_like(mask)
    # Back at full resolution, grown by two pixels to meet the outline's lines, never over them.
    return _repeat_3x3(_resize(body.astype(np.float32), width, height) > 0.5, np.maximum, 2) & ~mask


def _repeat_3x3(values: np.ndarray, combine: np.ufunc, times: int) -> np.ndarray:
    """Apply a 3x3 maximum (dilation) or minimum (erosion) filter ``times`` times."""
    for _ in range(times):
        padded = np.pad(values, 1)
        rows = combine(combine(padded[:-2], padded[1:-1]), padded[2:])
        values = combine(combine(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])
    return values


def _resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    resized = Image.fromarray(values.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0, 1)


def _to_mnist(cropped: np.ndarray, notes: list[str]) -> np.ndarray:
    """uint8 (28, 28): fit the digit into 20x20 keeping its aspect ratio, centre it by mass in 28x28."""
    height, width = cropped.shape
    scale = DIGIT_BOX / max(height, width)
    # Stroke width is judged and corrected at four times the final scale, where one 3x3 dilation
    # widens a stroke by half a final pixel.
    work = _resize(cropped, max(1, round(width * 4 * scale)), max(1, round(height * 4 * scale)))
    body = _outline_body(work > 0.5)
    if body.any():
        work = np.where(body, 1.0, work)
        notes.append("filled an outlined (hollow) digit")
    width_now = _stroke_width(work > 0.5) / 4
    if width_now < MIN_STROKE_WIDTH:
        steps = min(6, round((TARGET_STROKE_WIDTH - width_now) * 2))
        work = _repeat_3x3(work, np.maximum, steps)
        if steps:
            notes.append(f"thickened thin strokes ({width_now:.1f} px at 28x28)")
    elif width_now > MAX_STROKE_WIDTH:
        steps = min(6, round((width_now - TARGET_STROKE_WIDTH) * 2))
        work = _repeat_3x3(work, np.minimum, steps)
        if steps:
            notes.append(f"thinned bold strokes ({width_now:.1f} px at 28x28)")
    digit_width = max(1, round(width * scale))
    digit_height = max(1, round(height * scale))
    digit = _resize(work, digit_width, digit_height)
    top_value = float(digit.max())
    if top_value > 0:
        digit = np.clip(digit / top_value, 0, 1)
    total = float(digit.sum())
    if total > 0:
        centre_y = float((digit.sum(axis=1) * np.arange(digit_height)).sum() / total)
        centre_x = float((digit.sum(axis=0) * np.arange(digit_width)).sum() / total)
    else:
        centre_y, centre_x = (digit_height - 1) / 2, (digit_width - 1) / 2
    top = int(np.clip(round(MNIST_CENTRE - centre_y), 0, IMAGE_SIZE - digit_height))
    left = int(np.clip(round(MNIST_CENTRE - centre_x), 0, IMAGE_SIZE - digit_width))
    final = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    final[top : top + digit_height, left : left + digit_width] = digit
    return _to_uint8(final)
