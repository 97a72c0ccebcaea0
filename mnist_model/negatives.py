"""Things that are not digits, made by code, in the form preprocessing gives an upload.

The digit detector (:mod:`mnist_model.detector`) learns from them what a digit is not: letters and
symbols, shapes, scribbles, textures and blobs. Each is drawn as an ink map (white on black, float in
[0, 1]), then cropped and normalised by the very steps that bring an uploaded image into MNIST form,
so that the detector sees non-digits as it will meet them. Letters and symbols come from Pillow's
built-in font and the DejaVu fonts where installed, at any weight, slant and size, bent by an
elastic warp as handwriting bends them; only the letters that are written exactly like a digit
(O, o, I, l, i) are left out.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_model.images.normalise import to_mnist
from mnist_model.images.segmentation import crop_digit

# Letters and signs that are not written like a digit.
GLYPHS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz#%&*+<=>?@$~^{}[]€£¥§¶©®±÷×∞πΩ"
KINDS = ("glyph", "shape", "scribble", "texture", "blob")
_SIDE = 96
# Fonts used beside Pillow's own where installed: the DejaVu family, which most Linux systems have.
FONT_FOLDERS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
FONT_FAMILY = "DejaVu"


def negatives(count: int, seed: int = 0) -> np.ndarray:
    """uint8 (count, 28, 28): non-digits in MNIST form, the kinds in turn; the same for a seed."""
    rng = np.random.default_rng(seed)
    makers = {"glyph": _glyph, "shape": _shape, "scribble": _scribble, "texture": _texture, "blob": _blob}
    result = np.zeros((count, 28, 28), dtype=np.uint8)
    for index in range(count):
        for _ in range(10):
            ink = makers[KINDS[index % len(KINDS)]](rng)
            if rng.random() < 0.3:
                grey = Image.fromarray(np.clip(ink * 255, 0, 255).astype(np.uint8))
                ink = np.asarray(grey.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0))), dtype=np.float32) / 255
            if ink.max() <= 0.05:
                continue
            final = _mnist_form(ink)
            # A thin upright mark (a dash on its end, a sliver of a blob) is what a 1 looks like: not used.
            if np.flatnonzero(final.max(axis=0) > 64).size >= 7:
                break
        result[index] = final
    return result


def rendered_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (count, 28, 28) digits drawn exactly as the letters and symbols are, and their labels.

    The detector learns from them too, as digits, so that what sets a non-digit apart is its shape
    and not the way it was drawn.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    pictures = np.stack([_mnist_form(_glyph(rng, str(label))) for label in labels])
    return pictures, labels.astype(np.uint8)


def blurred_scans(digits: np.ndarray, labels: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (count, 28, 28): digits chosen from uint8 (n, 28, 28) ``digits`` as a tiny, out-of-focus
    scan of them comes out of preprocessing (8 to 16 pixels high, blurred by 0.4 to 1 of those
    pixels), and their labels (from ``labels``). Learnt as digits: blur must not make a digit look
    like something else."""
    rng = np.random.default_rng(seed)
    result = np.zeros((count, 28, 28), dtype=np.uint8)
    picked = rng.integers(0, len(digits), count)
    for index, chosen in enumerate(picked):
        side = int(rng.integers(8, 17))
        small = Image.fromarray(digits[chosen]).resize((side, side), Image.Resampling.BOX)
        small = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0)))
        ink = np.asarray(small.resize((side * 6, side * 6), Image.Resampling.BILINEAR), dtype=np.float32) / 255
        result[index] = _mnist_form(ink) if ink.max() > 0.05 else digits[chosen]
    return result, np.asarray(labels)[picked]


def _mnist_form(ink: np.ndarray) -> np.ndarray:
    """The crop and normalisation of an upload's ink map (specks dropped, 20x20 box, centred by mass)."""
    ink = np.clip(ink / max(float(ink.max()), 1e-6), 0, 1).astype(np.float32)
    return to_mnist(crop_digit(ink, []), [])


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    canvas = Image.new("F", (_SIDE, _SIDE), 0.0)
    return canvas, ImageDraw.Draw(canvas)


def _finish(canvas: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """A random rotation and shear, as a hand or a camera gives."""
    shear = rng.uniform(-0.3, 0.3)
    canvas = canvas.transform(
        canvas.size, Image.Transform.AFFINE, (1, shear, -shear * _SIDE / 2, 0, 1, 0), Image.Resampling.BILINEAR
    )
    return np.asarray(canvas.rotate(rng.uniform(-25, 25), Image.Resampling.BILINEAR), dtype=np.float32)


def _glyph(rng: np.random.Generator, text: str | None = None) -> np.ndarray:
    canvas, draw = _canvas()
    size = int(rng.integers(40, 80))
    fonts = _fonts()
    if fonts and rng.random() < 0.7:
        font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), size)
    else:
        font = ImageFont.load_default(size)
    if text is None:
        text = GLYPHS[rng.integers(len(GLYPHS))]
        if rng.random() < 0.15:
            text += GLYPHS[rng.integers(len(GLYPHS))]  # two letters, as in a word
    weight = int(rng.integers(0, max(1, size // 12)))
    draw.text((_SIDE / 2, _SIDE / 2), text, font=font, fill=1.0, anchor="mm", stroke_width=weight, stroke_fill=1.0)
    return _elastic(_finish(canvas, rng), rng)


@cache
def _fonts() -> list[Path]:
    found = []
    for folder in FONT_FOLDERS:
        if folder.is_dir():
            found += sorted(path for path in folder.rglob(f"{FONT_FAMILY}*.ttf"))
    return found


def _elastic(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bend a picture by a smooth random displacement field (bilinear resampling)."""
    strength = rng.uniform(2, 8)
    fields = []
    for _ in range(2):
        coarse = rng.standard_normal((6, 6)).astype(np.float32)
        fields.append(
            np.asarray(Image.fromarray(coarse).resize(values.shape[::-1], Image.Resampling.BICUBIC)) * strength
        )
    ys, xs = np.mgrid[0 : values.shape[0], 0 : values.shape[1]].astype(np.float32)
    ys = np.clip(ys + fields[0], 0, values.shape[0] - 1.001)
    xs = np.clip(xs + fields[1], 0, values.shape[1] - 1.001)
    top, left = ys.astype(np.int64), xs.astype(np.int64)
    dy, dx = ys - top, xs - left
    return (
        values[top, left] * (1 - dy) * (1 - dx)
        + values[top + 1, left] * dy * (1 - dx)
        + values[top, left + 1] * (1 - dy) * dx
        + values[top + 1, left + 1] * dy * dx
    )


def _shape(rng: np.random.Generator) -> np.ndarray:
    canvas, draw = _canvas()
    centre, radius = _SIDE / 2, rng.uniform(18, 40)
    kind = rng.integers(6)
    width = int(rng.integers(2, 10))
    filled = rng.random() < 0.4
    if kind <= 2:  # a triangle, square, pentagon... or a star
        corners = int(rng.integers(3, 9))
        star = kind == 2
        angles = np.linspace(0, 2 * math.pi, corners * (2 if star else 1), endpoint=False) + rng.uniform(0, math.pi)
        radii = np.where(np.arange(len(angles)) % 2, radius * rng.uniform(0.35, 0.6), radius) if star else radius
        points = [
            (centre + r * math.cos(a), centre + r * math.sin(a))
            for a, r in zip(angles, np.broadcast_to(radii, angles.shape), strict=True)
        ]
        if filled:
            draw.polygon(points, fill=1.0)
        else:
            draw.line([*points, points[0]], fill=1.0, width=width, joint="curve")
    elif kind == 3:  # a rectangle or a frame
        half_width, half_height = radius, radius * rng.uniform(0.3, 1.0)
        box = (centre - half_width, centre - half_height, centre + half_width, centre + half_height)
        draw.rectangle(box, fill=1.0 if filled else None, outline=1.0, width=width)
    elif kind == 4:  # a cross, a plus or an arrow
        draw.line((centre - radius, centre, centre + radius, centre), fill=1.0, width=width)
        if rng.random() < 0.5:
            draw.line((centre, centre - radius, centre, centre + radius), fill=1.0, width=width)
        else:
            head = radius * 0.5
            draw.line((centre + radius - head, centre - head, centre + radius, centre), fill=1.0, width=width)
            draw.line((centre + radius - head, centre + head, centre + radius, centre), fill=1.0, width=width)
    else:  # a filled disc with a mark across, or a crossed circle
        box = (centre - radius, centre - radius, centre + radius, centre + radius)
        draw.ellipse(box, fill=1.0 if filled else None, outline=1.0, width=width)
        draw.line(
            (centre - radius, centre + radius, centre + radius, centre - radius),
            fill=0.0 if filled else 1.0,
            width=width,
        )
    return _finish(canvas, rng)


def _scribble(rng: np.random.Generator) -> np.ndarray:
    """A smooth random stroke with many turns, or a zigzag, or a spiral."""
    canvas, draw = _canvas()
    width = int(rng.integers(3, 10))
    kind = rng.integers(3)
    if kind == 0:
        controls = rng.uniform(12, _SIDE - 12, (int(rng.integers(6, 12)), 2))
        t = np.linspace(0, 1, 120)
        # A Catmull-Rom-like smooth path: interpolate the control points with a cubic in each coordinate.
        positions = np.linspace(0, 1, len(controls))
        path = np.stack([np.interp(t, positions, controls[:, axis]) for axis in (0, 1)], axis=1)
        kernel = np.ones(9) / 9
        path = np.stack([np.convolve(np.pad(path[:, axis], 4, mode="edge"), kernel, "valid") for axis in (0, 1)], 1)
    elif kind == 1:
        turns = int(rng.integers(4, 10))
        xs = np.linspace(12, _SIDE - 12, turns)
        ys = np.where(np.arange(turns) % 2, rng.uniform(12, 40, turns), rng.uniform(56, _SIDE - 12, turns))
        path = np.stack([xs, ys], axis=1)
    else:
        angles = np.linspace(0, rng.uniform(3, 6) * math.pi, 200)
        radii = np.linspace(3, 40, 200)
        path = np.stack([_SIDE / 2 + radii * np.cos(angles), _SIDE / 2 + radii * np.sin(angles)], axis=1)
    draw.line([tuple(point) for point in path], fill=1.0, width=width, joint="curve")
    return _finish(canvas, rng)


def _texture(rng: np.random.Generator) -> np.ndarray:
    """Stripes, a grid, a checkerboard, dots or hatching filling most of the frame."""
    ys, xs = np.mgrid[0:_SIDE, 0:_SIDE].astype(np.float32)
    period = rng.uniform(5, 16)
    angle = rng.uniform(0, math.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    across = -xs * math.sin(angle) + ys * math.cos(angle)
    kind = rng.integers(4)
    if kind == 0:
        pattern = np.sin(2 * math.pi * along / period) > rng.uniform(-0.3, 0.5)
    elif kind == 1:
        pattern = (np.abs(np.sin(math.pi * along / period)) < 0.25) | (np.abs(np.sin(math.pi * across / period)) < 0.25)
    elif kind == 2:
        pattern = (np.sin(math.pi * along / period) * np.sin(math.pi * across / period)) > 0
    else:
        pattern = (np.sin(2 * math.pi * along / period) * np.sin(2 * math.pi * across / period)) > 0.5
    if rng.random() < 0.4:  # a grain of random fine detail, as cloth, wood or gravel has
        cells = int(rng.integers(16, 48))
        grain = np.asarray(
            Image.fromarray(rng.standard_normal((cells, cells)).astype(np.float32)).resize((_SIDE, _SIDE))
        )
        pattern = grain + 0.8 * pattern > rng.uniform(0.0, 0.8)
    margin = int(rng.integers(0, 20))
    pattern[:margin], pattern[_SIDE - margin :], pattern[:, :margin], pattern[:, _SIDE - margin :] = (
        False,
        False,
        False,
        False,
    )
    return pattern.astype(np.float32)


def _blob(rng: np.random.Generator) -> np.ndarray:
    """A cloud of smooth random ink, as a photo of some object or a smudge gives."""
    cells = int(rng.integers(5, 30))
    noise = rng.standard_normal((cells, cells)).astype(np.float32)
    field = np.asarray(Image.fromarray(noise).resize((_SIDE, _SIDE), Image.Resampling.BICUBIC))
    return (field > rng.uniform(0.0, 1.2)).astype(np.float32)
