"""Decoding untrusted image files: the security boundary of the preprocessing.

An upload is whatever its sender made it, so everything here is bounded before any pixel is
decoded: the file's size, the pixels its header states, the memory the decoder will need at full
size and, for a JPEG, its scans, each of which makes the decoder pass over the whole image again.
The format is recognised from the content (PNG, JPEG, BMP, GIF or WebP; every other decoder of
Pillow's is off), the first frame is used, a large image is decoded at reduced size (JPEG) or shrunk
in strips from its decoded mode, the EXIF orientation is undone and transparency is flattened onto
a background that keeps whatever is drawn visible. Anything else is refused with
:class:`ImageError`, whose message says what was wrong and what is accepted.
"""

from __future__ import annotations

import io
import math
import re
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow's names for the formats we accept; every other decoder is switched off for uploads.
ACCEPTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
# The largest upload read, in bytes.
MAX_BYTES = 10 * 1024 * 1024
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

ACCEPTED = (
    f"Accepted: PNG, JPEG, BMP, GIF or WebP images of a digit or a number, up to {MAX_BYTES // (1024 * 1024)} MB "
    f"and {MAX_PIXELS // 1_000_000} megapixels, at least {MIN_SIDE}x{MIN_SIDE} pixels."
)


class ImageError(ValueError):
    """An image that cannot be used; the message says what was wrong and what is accepted."""


def read_limited(source: bytes | BinaryIO, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        try:
            data = source.read(MAX_BYTES + 1)
        except UnicodeDecodeError as error:
            raise ImageError(f"{label} must be opened in binary mode ('rb'). {ACCEPTED}") from error
        except (OSError, ValueError) as error:
            raise ImageError(f"{label} could not be read ({error}). {ACCEPTED}") from error
        if not isinstance(data, bytes):
            raise ImageError(f"{label} must be opened in binary mode ('rb'). {ACCEPTED}")
    else:
        raise ImageError(f"an upload must be bytes or a binary file object, not {type(source).__name__}.")
    if not data:
        raise ImageError(f"{label} is empty (0 bytes). {ACCEPTED}")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{label} is larger than {MAX_BYTES // (1024 * 1024)} MB. {ACCEPTED}")
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


def check_dimensions(width: int, height: int, label: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), over the limit of "
            f"{MAX_PIXELS // 1_000_000} megapixels; it was not decoded (it may be a decompression bomb). {ACCEPTED}"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{label} is only {width}x{height} pixels, too small to hold a digit. {ACCEPTED}")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageError(
            f"{label} is {width}x{height} pixels, too elongated to be one digit (sides more than "
            f"{MAX_ASPECT_RATIO:g}:1). Crop it to the digit. {ACCEPTED}"
        )


def _bomb_error(label: str) -> ImageError:
    """Pillow refused the header's size outright: far beyond our own limit."""
    return ImageError(
        f"{label} has far more pixels than the limit of {MAX_PIXELS // 1_000_000} megapixels; it was not decoded "
        f"(it may be a decompression bomb). {ACCEPTED}"
    )


def decode(data: bytes, label: str) -> tuple[Image.Image, str, list[str], int]:
    """Open, check the header and the decoder's cost, and decode the first frame at a useful size.

    Returns the image, its format, notes, and its EXIF orientation (1: upright), which is undone
    once the image is small (see :func:`upright`).
    """
    non_image = _sniff_non_image(data)
    if non_image is not None:
        raise ImageError(f"{label} is {non_image}, not an image. {ACCEPTED}")
    notes: list[str] = []
    # Pillow's decoders raise many exception types on malformed input; the untrusted file is the
    # cause of any of them, so each becomes an ImageError rather than a traceback.
    try:
        # Phone cameras often write MPO, a JPEG with extra pictures; Pillow's JPEG opener handles it.
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise _bomb_error(label) from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{label} is not an image in a format we read. {ACCEPTED}") from error
    except Exception as error:
        raise ImageError(f"{label} has a corrupt image header ({error}). {ACCEPTED}") from error
    image_format = "JPEG" if image.format == "MPO" else str(image.format)
    width, height = image.size
    check_dimensions(width, height, label)
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
        raise ImageError(f"{label} is a damaged or truncated {image_format} file ({error}). {ACCEPTED}") from error
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
            f"a few hundred pixels a side), or as an ordinary JPEG. {ACCEPTED}"
        )


def _check_jpeg_cost(data: bytes, width: int, height: int, label: str) -> None:
    """Refuse a JPEG whose scans or coefficient memory would make decoding it costly, before decoding."""
    scans, progressive, blocks = jpeg_layout(data, MAX_JPEG_SCANS)
    if scans > MAX_JPEG_SCANS:
        raise ImageError(
            f"{label} is a JPEG of more than {MAX_JPEG_SCANS} scans (ordinary progressive JPEGs have about "
            f"10); it was not decoded, since every scan makes the decoder go over the whole image again. "
            f"{ACCEPTED}"
        )
    if progressive:
        # libjpeg keeps every coefficient of a progressive image, 64 of 2 bytes in each 8x8 block.
        _check_decode_memory(blocks * 128 or width * height * 6, f"progressive JPEG of {width}x{height} pixels", label)


def jpeg_layout(data: bytes, scan_limit: int) -> tuple[int, bool, int]:
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
SHRINK_MODES = {
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


def shrink(image: Image.Image) -> Image.Image:
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
        working, result = SHRINK_MODES.get(image.mode, ("RGBA", "RGBA"))
    width, height = image.size
    small = Image.new(working, (math.ceil(width / factor), math.ceil(height / factor)))
    rows = factor * SHRINK_STRIP_ROWS
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(top + rows, height)))
        if working == "RGBa" and strip.mode != "RGBA":
            strip = strip.convert("RGBA")
        small.paste(strip.convert(working).reduce(factor), (0, top // factor))
    return small.convert(result)


def upright(image: Image.Image, orientation: int, notes: list[str]) -> Image.Image:
    """Undo an EXIF orientation other than 1 (upright)."""
    method = _ORIENTATIONS.get(orientation)
    if method is None:
        return image
    notes.append(f"rotated upright as its EXIF orientation ({orientation}) says")
    return image.transpose(method)


def to_arrays(image: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Shrink to the working size, flatten transparency, and return display pixels and luminance.

    Returns uint8 (h, w, 3) or (h, w) for display and float32 (h, w) luminance in [0, 1].
    """
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Only a small image gets here (see shrink): the float copy costs little.
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
