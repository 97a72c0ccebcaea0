"""A realistic digit test set, made by code: what people photograph, scan, export and draw.

Each sample is one digit in one of five styles: printed fonts photographed on paper, handwriting
fonts photographed on paper or a board, hand-drawn strokes (jittered polylines with a round pen),
canvas drawings (transparent exports and raw RGBA arrays), and low-resolution scans. The paper is
grey, tinted, unevenly lit and noisy; the digit is rotated, sheared, blurred, off-centre and of any
size, dark on light or light on dark. Files are written in every accepted format and mode (PNG
L/LA/RGB/RGBA/P/P with transparency/16-bit grey, JPEG grey/RGB/CMYK with EXIF orientation, BMP,
GIF including animated, WebP lossy and lossless with alpha), from 12-pixel scans to 12-megapixel
photos. Everything is seeded, so a seed names one exact set.

Fonts come from Debian packages (fonts-dejavu, fonts-liberation, fonts-freefont-ttf for print;
fonts-dkg-handwriting, fonts-breip, fonts-humor-sans, fonts-sjfonts, fonts-bwht, fonts-comic-neue,
fonts-rufscript, fonts-kaushanscript for handwriting); missing ones are skipped and Pillow's built-in
font stands in when none is installed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_FOLDERS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
PRINTED_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "LiberationSans-Regular.ttf",
    "LiberationSans-Bold.ttf",
    "LiberationSans-Italic.ttf",
    "LiberationSansNarrow-Regular.ttf",
    "LiberationSerif-Regular.ttf",
    "LiberationSerif-Bold.ttf",
    "FreeSans.ttf",
    "FreeSansBold.ttf",
    "FreeSerif.ttf",
    "FreeSerifItalic.ttf",
    "FreeMono.ttf",
)
HANDWRITING_FONTS = (
    "dkg.ttf",
    "dkgBd.ttf",
    "dkgIt.ttf",
    "Breip.ttf",
    "Humor-Sans.ttf",
    "SteveHand.ttf",
    "BecauseWeBuild-Regular.otf",
    "BecauseWeConnect-Regular.otf",
    "BecauseWeCreate-Regular.otf",
    "BecauseWeLearn-Regular.otf",
    "BecauseWeMentor-Regular.otf",
    "BecauseWeOrganize-Regular.otf",
    "ComicNeue-Regular.otf",
    "ComicNeue-Bold.otf",
    "ComicNeue-Italic.otf",
    "Rufscript010.ttf",
    "KaushanScript-Regular.otf",
)
STYLES = ("printed", "handwriting font", "drawn strokes", "canvas", "low-res scan")
# The kinds of image that real uploads are misread on, mixed into the styles above: printed digits
# outlined (hollow) or very bold, canvas digits drawn with a very thin pen, scans blurred and tiny.
HARD_KINDS = ("outlined", "bold", "thin strokes", "blurry scan")
# How a file is written: (Pillow format, mode, extra), cycled through so every one is used.
OPAQUE_ENCODINGS = (
    ("PNG", "L", ""),
    ("PNG", "RGB", ""),
    ("PNG", "P", ""),
    ("PNG", "I;16", ""),
    ("JPEG", "RGB", ""),
    ("JPEG", "L", ""),
    ("JPEG", "CMYK", ""),
    ("JPEG", "RGB", "exif"),
    ("BMP", "RGB", ""),
    ("BMP", "L", ""),
    ("BMP", "P", ""),
    ("GIF", "P", ""),
    ("GIF", "P", "animated"),
    ("WEBP", "RGB", "lossy"),
    ("WEBP", "RGB", "lossless"),
)
TRANSPARENT_ENCODINGS = (
    ("PNG", "RGBA", ""),
    ("PNG", "LA", ""),
    ("PNG", "P", "transparency"),
    ("WEBP", "RGBA", "lossless"),
    ("GIF", "P", "transparency"),
)


@dataclass(frozen=True)
class Sample:
    """One test image: an encoded file (``data``) or a canvas array (``canvas``, uint8 (h, w, 4)).

    label: what it shows, the digit (an int) or the number (a string such as "2026"), or None for an
    image without a digit, whose ``kind`` ("letter", "texture"...) says what it holds instead.
    """

    name: str
    label: int | str | None
    style: str
    data: bytes | None = None
    canvas: np.ndarray | None = None
    kind: str = "digit"


def font_paths(names: tuple[str, ...]) -> list[Path]:
    """The installed fonts among ``names``, in that order."""
    found = _installed_fonts()
    return [found[name] for name in names if name in found]


@cache
def _installed_fonts() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in FONT_FOLDERS:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in (".ttf", ".otf"):
                    found.setdefault(path.name, path)
    return found


def realistic_set(count: int = 300, seed: int = 0) -> list[Sample]:
    """``count`` samples, labels 0-9 in turn, styles mixed in fixed proportions; the same for a seed."""
    rng = np.random.default_rng(seed)
    # The hard kinds are chosen from a stream of their own, so the other images stay as they were.
    hard = np.random.default_rng([seed, 1])
    printed = font_paths(PRINTED_FONTS)
    handwriting = font_paths(HANDWRITING_FONTS)
    # Large photos are slow to make; a handful show that phone-size images work.
    large_every = 40
    samples = []
    opaque_turn = transparent_turn = 0
    for index in range(count):
        label = index % 10
        style = STYLES[(index // 10) % len(STYLES)]
        draw, weight, blur = hard.random(), hard.uniform(0.03, 0.07), hard.uniform(0.5, 1.0)
        kind = "digit"
        if style == "printed" and draw < 0.5:
            kind = "outlined" if draw < 0.25 else "bold"
        elif (style == "canvas" and draw < 0.3) or (style == "low-res scan" and draw < 0.35):
            kind = "thin strokes" if style == "canvas" else "blurry scan"
        if style == "canvas":
            as_array = index % 3 == 0
            canvas_or_rgba = _canvas_digit(
                label, rng, transparent=None if as_array else rng.random() < 0.7, thin=kind == "thin strokes"
            )
            if as_array:
                name = f"{index:03d}-canvas-array-{label}" + ("-thin" if kind != "digit" else "")
                samples.append(Sample(name, label, style, canvas=canvas_or_rgba, kind=kind))
                continue
            encoding = TRANSPARENT_ENCODINGS[transparent_turn % len(TRANSPARENT_ENCODINGS)]
            transparent_turn += 1
            image = Image.fromarray(canvas_or_rgba)
        else:
            large = index % large_every == large_every - 1
            encoding = ("JPEG", "RGB", "exif") if large else OPAQUE_ENCODINGS[opaque_turn % len(OPAQUE_ENCODINGS)]
            opaque_turn += not large
            if style == "printed":
                outline, bold = (weight if kind == "outlined" else 0), (weight if kind == "bold" else 0)
                coverage = _font_digit(label, printed, rng, outline=outline, bold=bold)
                image = _photograph(coverage, rng, large=large)
            elif style == "handwriting font":
                coverage = _font_digit(label, handwriting or printed, rng)
                image = _photograph(coverage, rng, large=large)
            elif style == "drawn strokes":
                coverage = drawn_digit(label, rng)
                image = _photograph(coverage, rng, large=large)
            else:
                fonts = handwriting or printed
                coverage = drawn_digit(label, rng) if rng.random() < 0.5 else _font_digit(label, fonts, rng)
                image = _scan(coverage, rng, blur=blur if kind == "blurry scan" else 0.0)
        data = _encode(image, encoding, rng)
        format_name, mode, extra = encoding
        suffix = f"{format_name.lower()}-{mode.replace(';', '')}{'-' + extra if extra else ''}"
        if kind != "digit":
            suffix = f"{kind.replace(' ', '-')}-{suffix}"
        name = f"{index:03d}-{style.replace(' ', '-')}-{label}-{suffix}"
        samples.append(Sample(name, label, style, data=data, kind=kind))
    return samples


def realistic_numbers(count: int = 100, seed: int = 0) -> list[Sample]:
    """``count`` images of numbers of 2 to 4 digits, in the five styles of :func:`realistic_set`.

    Printed and handwriting fonts set the whole number as text, with the font's own spacing or with
    the letters set wider or tighter by hand; drawn numbers are drawn digits of slightly varying
    size and baseline in a row, one in ten with neighbours touching.
    """
    rng = np.random.default_rng(seed)
    printed = font_paths(PRINTED_FONTS)
    handwriting = font_paths(HANDWRITING_FONTS)
    samples = []
    for index in range(count):
        length = 2 + index % 3
        number = str(int(rng.integers(1, 10))) + "".join(str(int(d)) for d in rng.integers(0, 10, length - 1))
        style = STYLES[(index // 3) % len(STYLES)]
        if style == "printed":
            coverage = _font_number(number, printed, rng)
        elif style == "handwriting font" or (style == "low-res scan" and rng.random() < 0.5):
            coverage = _font_number(number, handwriting or printed, rng)
        else:
            coverage = _drawn_number(number, rng)
        if style == "canvas":
            ink = _place(coverage, 280, 280, rng.uniform(0.5, 0.95), rng, fit=True)
            rgba = np.zeros((280, 280, 4), dtype=np.uint8)
            rgba[..., :3] = np.clip(ink * 255 + 0.5, 0, 255).astype(np.uint8)[..., None]
            rgba[..., 3] = 255
            samples.append(Sample(f"{index:03d}-canvas-{number}", number, style, canvas=rgba, kind="number"))
            continue
        if style == "low-res scan":
            image = _scan(coverage, rng, aspect=coverage.shape[1] / coverage.shape[0])
        else:
            image = _photograph(coverage, rng, large=False, aspect=rng.uniform(0.45, 1.1))
        encoding = OPAQUE_ENCODINGS[index % len(OPAQUE_ENCODINGS)]
        format_name, mode, extra = encoding
        suffix = f"{format_name.lower()}-{mode.replace(';', '')}{'-' + extra if extra else ''}"
        data = _encode(image, encoding, rng)
        samples.append(
            Sample(f"{index:03d}-{style.replace(' ', '-')}-{number}-{suffix}", number, style, data, kind="number")
        )
    return samples


NON_DIGIT_KINDS = ("letter", "symbol", "shape", "scribble", "texture", "object")
# Every letter but those written exactly like a digit (O, o, I, l, i).
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz"
SYMBOLS = "#%&*+=?@$<>~^{}[]€£¥§¶©®±÷×∞πΩ✓♥★☺"


def realistic_non_digits(count: int = 120, seed: int = 0) -> list[Sample]:
    """``count`` images without a digit, photographed, scanned or drawn as :func:`realistic_set` does.

    Letters and symbols are set in the installed print and handwriting fonts other than those the
    detector learns from (Pillow's own and DejaVu); shapes, scribbles, textures and objects are
    drawn here with other code than the detector's generator.
    """
    rng = np.random.default_rng(seed)
    # Not the DejaVu fonts, which the detector's own generator uses where they are installed.
    names = tuple(name for name in PRINTED_FONTS + HANDWRITING_FONTS if not name.startswith("DejaVu"))
    fonts = font_paths(names)
    samples = []
    for index in range(count):
        kind = NON_DIGIT_KINDS[index % len(NON_DIGIT_KINDS)]
        style = ("photo", "photo", "canvas", "low-res scan")[(index // len(NON_DIGIT_KINDS)) % 4]
        coverage = _non_digit(kind, fonts, rng)
        if style == "canvas":
            ink = _place(coverage, 280, 280, rng.uniform(0.4, 0.9), rng, fit=True)
            rgba = np.zeros((280, 280, 4), dtype=np.uint8)
            rgba[..., :3] = _as_uint8(ink)[..., None]
            rgba[..., 3] = 255
            samples.append(Sample(f"{index:03d}-canvas-{kind}", None, style, canvas=rgba, kind=kind))
            continue
        image = _scan(coverage, rng) if style == "low-res scan" else _photograph(coverage, rng, large=False)
        encoding = OPAQUE_ENCODINGS[index % len(OPAQUE_ENCODINGS)]
        data = _encode(image, encoding, rng)
        samples.append(
            Sample(f"{index:03d}-{style.replace(' ', '-')}-{kind}-{encoding[0].lower()}", None, style, data, kind=kind)
        )
    return samples


def _non_digit(kind: str, fonts: list[Path], rng: np.random.Generator) -> np.ndarray:
    """float32 coverage, tight around something that is no digit."""
    if kind in ("letter", "symbol"):
        text = (LETTERS if kind == "letter" else SYMBOLS)[rng.integers(len(LETTERS if kind == "letter" else SYMBOLS))]
        size = int(rng.integers(60, 140))
        font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), size) if fonts else ImageFont.load_default(size)
        canvas = Image.new("L", (size * 2, size * 2), 0)
        ImageDraw.Draw(canvas).text((size, size), text, font=font, fill=255, anchor="mm")
        if canvas.getbbox() is None:  # a sign this font lacks
            ImageDraw.Draw(canvas).text((size, size), "#", font=ImageFont.load_default(size), fill=255, anchor="mm")
        return _tight(_warp(canvas, rng))
    side = 200
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    pen = int(rng.integers(4, 16))
    if kind == "shape":
        corners = int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
        radii = rng.uniform(50, 90, corners)
        points = [(100 + r * math.cos(a), 100 + r * math.sin(a)) for a, r in zip(angles, radii, strict=True)]
        if rng.random() < 0.5:
            draw.polygon(points, fill=255)
        else:
            draw.line([*points, points[0]], fill=255, width=pen, joint="curve")
        if rng.random() < 0.4:  # with a mark inside or across
            draw.line((40, 100, 160, 100), fill=0 if rng.random() < 0.5 else 255, width=pen)
    elif kind == "scribble":
        points = [(float(x), float(y)) for x, y in rng.uniform(20, 180, (int(rng.integers(7, 15)), 2))]
        draw.line(points, fill=255, width=pen, joint="curve")
    elif kind == "texture":
        ys, xs = np.mgrid[0:side, 0:side]
        weave = (
            np.sin(xs / rng.uniform(3, 9)) + np.sin((xs + ys) / rng.uniform(3, 9)) + rng.normal(0, 0.4, (side, side))
        )
        return (weave > rng.uniform(0.2, 1.0)).astype(np.float32)
    else:  # an object: overlapping filled ellipses and boxes, as a photo of a key, a cup or a leaf gives
        for _ in range(int(rng.integers(2, 5))):
            x, y = rng.uniform(40, 160, 2)
            w, h = rng.uniform(20, 70, 2)
            box = (x - w, y - h, x + w, y + h)
            (draw.ellipse if rng.random() < 0.6 else draw.rectangle)(box, fill=int(rng.integers(150, 256)))
    return _tight(_warp(canvas, rng))


def _font_number(number: str, fonts: list[Path], rng: np.random.Generator) -> np.ndarray:
    """A number set in a font: as text, or (one time in three) letter by letter with wider or tighter spacing."""
    size = int(rng.integers(60, 140))
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), size) if fonts else ImageFont.load_default(size)
    canvas = Image.new("L", (size * (len(number) + 2), size * 2), 0)
    draw = ImageDraw.Draw(canvas)
    if rng.random() < 2 / 3:
        draw.text((size // 2, size // 4), number, font=font, fill=255)
    else:
        x = size / 2
        tracking = rng.uniform(-0.04, 0.3) * size
        for character in number:
            draw.text((x, size // 4), character, font=font, fill=255)
            x += draw.textlength(character, font=font) + tracking
    return _tight(_warp(canvas, rng, max_degrees=6.0))


def _drawn_number(number: str, rng: np.random.Generator) -> np.ndarray:
    """Drawn digits side by side: heights within 10%, baselines within 6%, gaps of 5-45% of a digit's
    height, or (one number in ten) touching."""
    height = int(rng.integers(70, 130))
    pen = max(2, int(height * rng.uniform(0.06, 0.14)))
    touching = rng.random() < 0.1
    digits = [
        drawn_digit(int(character), rng, height=int(height * rng.uniform(0.9, 1.1)), pen=pen) for character in number
    ]
    gaps = [int(height * (rng.uniform(-0.04, 0.0) if touching else rng.uniform(0.05, 0.45))) for _ in digits]
    offsets = [int(height * rng.uniform(-0.06, 0.06)) for _ in digits]
    total_width = sum(digit.shape[1] for digit in digits) + sum(gaps) + 2 * height
    scene = np.zeros((2 * height, total_width), dtype=np.float32)
    x = height // 2
    for digit, gap, offset in zip(digits, gaps, offsets, strict=True):
        top = height // 2 + offset + (height - digit.shape[0]) // 2
        region = scene[top : top + digit.shape[0], x : x + digit.shape[1]]
        np.maximum(region, digit[: region.shape[0], : region.shape[1]], out=region)
        x += digit.shape[1] + gap
    return _tight(Image.fromarray(_as_uint8(scene)))


def _as_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)


# Digit shapes: a coverage mask (float32, 0 = paper, 1 = ink) tightly around the digit.


def _font_digit(
    label: int, fonts: list[Path], rng: np.random.Generator, outline: float = 0.0, bold: float = 0.0
) -> np.ndarray:
    """A font's digit; ``outline`` draws only its outline (hollow), ``bold`` thickens it, each with a
    line of that fraction of the font size."""
    size = int(rng.integers(60, 140))
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), size) if fonts else ImageFont.load_default(size)
    canvas = Image.new("L", (size * 2, size * 2), 0)
    line = max(2, round(size * (outline or bold))) if outline or bold else 0
    ImageDraw.Draw(canvas).text(
        (size // 2, size // 4), str(label), font=font, fill=0 if outline else 255, stroke_width=line, stroke_fill=255
    )
    return _tight(_warp(canvas, rng))


def _warp(mask: Image.Image, rng: np.random.Generator, max_degrees: float = 12.0) -> Image.Image:
    """Rotate and shear a mask a little, as a hand or a tilted camera does."""
    shear = rng.uniform(-0.2, 0.2)
    width, height = mask.size
    sheared = mask.transform(
        (width, height),
        Image.Transform.AFFINE,
        (1, shear, -shear * height / 2, 0, 1, 0),
        resample=Image.Resampling.BICUBIC,
    )
    return sheared.rotate(rng.uniform(-max_degrees, max_degrees), Image.Resampling.BICUBIC, expand=True)


def _tight(mask: Image.Image) -> np.ndarray:
    box = mask.getbbox()
    cropped = mask.crop(box) if box else mask
    return np.asarray(cropped, dtype=np.float32) / 255.0


def _arc(
    centre_x: float, centre_y: float, radius_x: float, radius_y: float, start: float, end: float
) -> list[tuple[float, float]]:
    """Points along an elliptic arc; angles in degrees, 0 = right, 90 = down (image coordinates)."""
    steps = max(4, int(abs(end - start) / 10))
    angles = np.radians(np.linspace(start, end, steps))
    return [(centre_x + radius_x * math.cos(a), centre_y + radius_y * math.sin(a)) for a in angles]


def _templates(label: int, variant: int) -> list[list[tuple[float, float]]]:
    """Strokes of a handwritten digit in a unit box (x right, y down); ``variant`` picks a writing habit."""
    if label == 0:
        return [_arc(0.5, 0.5, 0.32 + 0.04 * variant, 0.48, -80, 290)]
    if label == 1:
        stem = [(0.55, 0.0), (0.5, 1.0)]
        return [[(0.35, 0.2), *stem]] if variant else [stem]
    if label == 2:
        return [_arc(0.5, 0.3, 0.32, 0.28, 190, 380) + [(0.18, 1.0), (0.85, 0.98)]]
    if label == 3:
        return [_arc(0.45, 0.26, 0.3, 0.25, 200, 450) + _arc(0.45, 0.74, 0.34, 0.26, -90, 160)]
    if label == 4:
        if variant:
            return [[(0.7, 1.0), (0.68, 0.0), (0.1, 0.68), (0.92, 0.66)]]
        return [[(0.3, 0.0), (0.15, 0.6), (0.9, 0.6)], [(0.7, 0.2), (0.68, 1.0)]]
    if label == 5:
        return [[(0.8, 0.0), (0.28, 0.02), (0.22, 0.45)] + _arc(0.48, 0.7, 0.34, 0.3, -140, 150)]
    if label == 6:
        return [[(0.75, 0.0)] + _arc(0.62, 0.62, 0.45, 0.62, 240, 180) + _arc(0.5, 0.72, 0.3, 0.27, 180, 540)]
    if label == 7:
        strokes = [[(0.12, 0.02), (0.88, 0.0), (0.42, 1.0)]]
        return strokes + [[(0.35, 0.52), (0.82, 0.5)]] if variant else strokes
    if label == 8:
        return [_arc(0.5, 0.25, 0.27, 0.24, 90, 450) + _arc(0.5, 0.73, 0.33, 0.26, -90, 270)]
    return [_arc(0.5, 0.3, 0.3, 0.28, 0, 360) + [(0.8, 0.3), (0.72 - 0.2 * variant, 1.0)]]


def drawn_digit(
    label: int,
    rng: np.random.Generator,
    height: int | None = None,
    pen: int | None = None,
    variant: int | None = None,
    pen_factor: float = 1.0,
) -> np.ndarray:
    """float32 (h, w) coverage of a digit drawn with a round pen along jittered template strokes.

    height and pen (in pixels) and the writing ``variant`` (0 or 1) are random unless given; a random
    pen is scaled by ``pen_factor``. The strokes are drawn at 4x and reduced, for smooth edges.
    """
    scale = 4
    height = height or int(rng.integers(70, 130))
    width = int(height * rng.uniform(0.55, 0.85))
    pen = pen or max(1, round(max(2, int(height * rng.uniform(0.06, 0.16))) * pen_factor))
    margin = pen + 4
    canvas = Image.new("L", ((width + 2 * margin) * scale, (height + 2 * margin) * scale), 0)
    draw = ImageDraw.Draw(canvas)
    for stroke in _templates(label, int(rng.integers(2)) if variant is None else variant):
        points = np.array(stroke, dtype=np.float64)
        # A smooth random wobble along the stroke, plus a little jitter of every point.
        wobble = np.cumsum(rng.normal(0, 0.012, points.shape), axis=0)
        points = points + wobble - wobble.mean(axis=0) + rng.normal(0, 0.008, points.shape)
        pixels = [((margin + x * width) * scale, (margin + y * height) * scale) for x, y in points]
        draw.line(pixels, fill=255, width=pen * scale, joint="curve")
        radius = pen * scale / 2
        for x, y in (pixels[0], pixels[-1]):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    reduced = canvas.resize((canvas.width // scale, canvas.height // scale), Image.Resampling.BOX)
    return _tight(_warp(reduced, rng, max_degrees=8.0))


# Scenes: the digit on paper, on a board, on a canvas, through a scanner.


def _paper(height: int, width: int, rng: np.random.Generator, dark: bool) -> np.ndarray:
    """float32 (h, w, 3) RGB: a tinted, unevenly lit, noisy surface."""
    base = rng.uniform(0.05, 0.3) if dark else rng.uniform(0.55, 0.97)
    tint = rng.uniform(-0.05, 0.05, 3)
    ys = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * math.pi)
    lighting = rng.uniform(0, 0.18) * (math.cos(angle) * xs + math.sin(angle) * ys)
    vignette = -rng.uniform(0, 0.15) * (xs * xs + ys * ys)
    level = base + lighting + vignette
    surface = level[..., None] + tint[None, None, :]
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * rng.uniform(0.0, 0.04)
    return np.clip(surface + noise, 0, 1).astype(np.float32)


def _place(
    coverage: np.ndarray, height: int, width: int, fraction: float, rng: np.random.Generator, fit: bool = False
) -> np.ndarray:
    """Scale the digit to ``fraction`` of the scene's short side (or with ``fit``, to that fraction of
    the largest size that fits, as for a wide number) and put it anywhere inside."""
    digit = Image.fromarray(coverage)
    if fit:
        scale = fraction * min(height / digit.height, width / digit.width)
    else:
        scale = max(6, int(min(height, width) * fraction)) / max(digit.size)
    size = (max(1, round(digit.width * scale)), max(1, round(digit.height * scale)))
    resized = np.clip(np.asarray(digit.resize(size, Image.Resampling.BILINEAR)), 0, 1)
    scene = np.zeros((height, width), dtype=np.float32)
    top = int(rng.integers(0, max(1, height - size[1] + 1)))
    left = int(rng.integers(0, max(1, width - size[0] + 1)))
    scene[top : top + size[1], left : left + size[0]] = resized[: height - top, : width - left]
    return scene


def _photograph(
    coverage: np.ndarray, rng: np.random.Generator, large: bool, aspect: float | None = None
) -> Image.Image:
    """The digit on paper (dark ink) or a board (light chalk), photographed: blur, noise, specks.

    aspect: the photo's height over its width, random from 0.6 to 1.5 unless given (a number is
    photographed wider than tall, at least 160 pixels across). Scenes are composed at most 500
    pixels across and then enlarged, which keeps large photos quick to make (camera pictures are
    smooth at the pixel level anyway).
    """
    if large:
        width = int(rng.choice([2000, 3000, 4000]))
        height = width * 3 // 4
    elif aspect is None:
        width = int(rng.integers(48, 900))
        height = int(width * rng.uniform(0.6, 1.5))
    else:
        width = int(rng.integers(160, 900))
        height = int(width * aspect)
    scale = min(1.0, 500 / max(width, height))
    scene_width, scene_height = round(width * scale), round(height * scale)
    dark = rng.random() < 0.3
    paper = _paper(scene_height, scene_width, rng, dark)
    ink_colour = rng.uniform(0.8, 1.0, 3) if dark else rng.choice([[0.05, 0.05, 0.08], [0.1, 0.15, 0.45]])
    ink_colour = np.asarray(ink_colour, dtype=np.float32) + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    fraction = rng.uniform(0.25, 0.85) if aspect is None else rng.uniform(0.4, 0.9)
    ink = _place(coverage, scene_height, scene_width, fraction, rng, fit=aspect is not None) * rng.uniform(0.75, 1.0)
    scene = paper * (1 - ink[..., None]) + ink_colour[None, None, :] * ink[..., None]
    for _ in range(int(rng.integers(0, 4))):
        # Specks of dust or dirt, each a few pixels across.
        radius = max(1, int(min(scene_height, scene_width) * rng.uniform(0.003, 0.012)))
        y, x = int(rng.integers(scene_height)), int(rng.integers(scene_width))
        patch = (slice(max(0, y - radius), y + radius), slice(max(0, x - radius), x + radius))
        scene[patch] = ink_colour * 0.7 + paper[y, x] * 0.3
    image = Image.fromarray(np.clip(scene * 255 + 0.5, 0, 255).astype(np.uint8))
    blur = rng.uniform(0, 1.2)
    if blur > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    return image.resize((width, height), Image.Resampling.BICUBIC) if scale < 1 else image


def _scan(coverage: np.ndarray, rng: np.random.Generator, aspect: float = 1.0, blur: float = 0.0) -> Image.Image:
    """A low-resolution greyscale scan: the digit nearly fills a small, noisy, grey image.

    aspect: the width over the height of what is scanned (about 1 for a digit, more for a number).
    blur: if not 0, out of focus by that many of the scan's pixels, tiny (14 to 20 pixels high) and
    with grey ink (at least 0.5 darker than the paper before the blur).
    """
    side = int(rng.integers(12, 40))
    if blur:
        side = 14 + side % 7
    width = int(side * aspect * rng.uniform(0.8, 1.3))
    scene_height, scene_width = side * 8, width * 8
    ink = _place(coverage, scene_height, scene_width, rng.uniform(0.6, 0.9), rng, fit=aspect != 1.0)
    paper = rng.uniform(0.6, 0.95)
    pen = rng.uniform(0.0, 0.3)
    scene = paper - (paper - pen) * ink
    if blur:
        scene = paper - (paper - min(max(pen, 0.2), paper - 0.5)) * ink
        grey = Image.fromarray(np.clip(scene * 255 + 0.5, 0, 255).astype(np.uint8))
        scene = np.asarray(grey.filter(ImageFilter.GaussianBlur(8 * blur)), dtype=np.float32) / 255
    small = Image.fromarray(scene.astype(np.float32)).resize((width, side), Image.Resampling.BOX)
    values = np.asarray(small) + rng.normal(0, rng.uniform(0, 0.03), (side, width))
    return Image.fromarray(np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")


def _canvas_digit(label: int, rng: np.random.Generator, transparent: bool | None, thin: bool = False) -> np.ndarray:
    """uint8 (280, 280, 4): a digit drawn on a 280x280 canvas as streamlit-drawable-canvas returns it.

    transparent: strokes on a transparent background, or on an opaque one; None chooses at random.
    thin: drawn with a pen a quarter as wide as usual (1.5 to 4% of the digit's height).
    """
    fonts = font_paths(HANDWRITING_FONTS)
    drawn = rng.random() < 0.7 or not fonts or thin
    coverage = drawn_digit(label, rng, pen_factor=0.25 if thin else 1.0) if drawn else _font_digit(label, fonts, rng)
    ink = _place(coverage, 280, 280, rng.uniform(0.3, 0.9), rng)
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    if transparent is None:
        transparent = bool(rng.random() < 0.4)
    if transparent:
        # The stroke colour with the coverage as alpha; under the background, either the same
        # colour or black, as canvas libraries differ.
        stroke = rng.choice([[0, 0, 0], [255, 255, 255], [30, 60, 200], [200, 30, 30]])
        rgba[..., :3] = stroke
        if rng.random() < 0.5:
            rgba[ink == 0, :3] = 0
        rgba[..., 3] = np.clip(ink * 255 + 0.5, 0, 255).astype(np.uint8)
    else:
        white_on_black = rng.random() < 0.5
        paper, stroke = ([0, 0, 0], [255, 255, 255]) if white_on_black else ([255, 255, 255], [0, 0, 0])
        colour = np.asarray(paper, np.float32) * (1 - ink[..., None]) + np.asarray(stroke, np.float32) * ink[..., None]
        rgba[..., :3] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
        rgba[..., 3] = 255
    return rgba


# Encoding


def _encode(image: Image.Image, encoding: tuple[str, str, str], rng: np.random.Generator) -> bytes:
    format_name, mode, extra = encoding
    buffer = io.BytesIO()
    options: dict = {}
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey)
    elif mode == "P" and extra == "transparency":
        image = _palette_with_transparency(image)
        options["transparency"] = 0
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    else:
        image = image.convert(mode)
    if format_name == "JPEG":
        options["quality"] = int(rng.integers(60, 95))
        if extra == "exif":
            # Store the picture turned on its side and say so in EXIF, as phone cameras do.
            orientation = int(rng.choice([3, 6, 8]))
            turn = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
            image = image.transpose(turn[orientation])
            exif = Image.Exif()
            exif[0x0112] = orientation
            options["exif"] = exif.tobytes()
    if format_name == "WEBP":
        options["lossless"] = extra == "lossless"
        options.update(quality=80, method=0)
    if format_name == "GIF" and extra == "animated":
        later = Image.new("P", image.size, 0)
        later.putpalette(image.getpalette())
        options.update(save_all=True, append_images=[later, later], duration=200, loop=0)
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def _palette_with_transparency(image: Image.Image) -> Image.Image:
    """A palette image whose index 0 is fully transparent where alpha is low (binary transparency)."""
    rgba = image.convert("RGBA")
    opaque = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    indices = np.asarray(opaque, dtype=np.uint8) + 1
    indices[np.asarray(rgba)[..., 3] < 128] = 0
    palette = [0, 0, 0] + opaque.getpalette()[: 255 * 3]
    result = Image.fromarray(indices)
    result.putpalette(palette)
    return result
