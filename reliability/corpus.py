"""The hostile-input corpus, generated at run time: broken, disguised, oversized and odd image files.

Every case says what a correct system does with it: refuse it with a clear message ("refuse"), or,
for an unusual but genuine image of a digit (16-bit, CMYK, animated, very large, wrong extension),
predict that digit ("predict"). The digits are real MNIST test images, inverted to dark ink on
light paper and enlarged, so the expected answer is their label. Decompression bombs are small
files with huge headers or highly compressible pixels; nothing is large on disk except the one
file that exists to be over the upload limit.

The corpus is a table (:data:`FILES`, :data:`DRAWINGS`) whose rows make their bytes only when asked,
so that tests can be parametrized over its names without building a single file.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_model import images

# MNIST test images used as the digits of valid cases: index -> its label is the expected answer.
DIGIT_INDICES = (0, 1, 2, 3, 4, 7, 11, 18)
# The drawing canvas of the Predict page, (width, height) pixels.
DRAWING_SIZE = (280, 280)
# Files that cost the decoder the most memory or CPU that the limits allow, or would cost far more.
COSTLY = "costly to decode"
# Refused before a pixel is decoded, for what decoding them would cost: the refusal must say so.
NOT_DECODED = "it was not decoded"
# Names that would inject markup if a page rendered them as HTML or Markdown.
HOSTILE_NAMES = (
    "<img src=x onerror=alert(1)>.png",
    "**bold** [click](javascript:alert(1)) ![pixel](x).png",
    ":red[warning] `code` $x^2$ <b>html<b>.png",
)


@dataclass(frozen=True)
class Case:
    """One corpus file: its name, content and the correct outcome.

    expect: "refuse" (a clear message, no prediction) or "predict" (the digit ``digit``).
    browser: whether the browser share of the suite uploads it in quick mode too.
    tags: groups it is reported in besides its own kind, e.g. "costly to decode".
    reason: words a refusal must contain, where the reason matters (refused before decoding, say).
    """

    name: str
    content: bytes
    expect: str
    what: str
    digit: int | None = None
    browser: bool = False
    tags: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def mime(self) -> str:
        suffix = Path(self.name).suffix.lower()
        return {
            ".png": "image/png",
            ".jpg": "image/jpeg",
            ".gif": "image/gif",
            ".webp": "image/webp",
            ".bmp": "image/bmp",
            ".pdf": "application/pdf",
            ".svg": "image/svg+xml",
            ".html": "text/html",
            ".zip": "application/zip",
        }.get(suffix, "application/octet-stream")


def encoded(image: Image.Image, format_name: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def paper_digit(mnist_image: np.ndarray, size: int) -> Image.Image:
    """An MNIST digit (uint8 (28, 28), white on black) as dark ink on light paper, size x size, grey."""
    picture = Image.fromarray(255 - mnist_image).resize((size, size), Image.Resampling.BILINEAR)
    return picture


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_file(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG with the given header; ``rows`` (filtered scanlines) compressed as its only IDAT, or none."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = png_chunk(b"IDAT", zlib.compress(rows, 9)) if rows is not None else png_chunk(b"IDAT", zlib.compress(b""))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + body + png_chunk(b"IEND", b"")


def png_bomb(width: int, height: int, bit_depth: int, colour_type: int, bytes_per_row: int) -> bytes:
    """An honest PNG of zeros: a few hundred kB on disk, ``width * height`` pixels once decoded."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + bytes_per_row)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def gif_header_only(width: int, height: int) -> bytes:
    """A GIF whose screen and frame claim width x height but hold one tiny frame of data."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b"\x3b"


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A JPEG whose baseline frame header (SOF0) is rewritten to claim width x height."""
    start = jpeg.index(b"\xff\xc0")
    return jpeg[: start + 5] + struct.pack(">HH", height, width) + jpeg[start + 9 :]


def bmp_with_size(bmp: bytes, width: int, height: int) -> bytes:
    return bmp[:18] + struct.pack("<ii", width, height) + bmp[26:]


def jpeg_scan_bomb(side: int, scans: int) -> bytes:
    """A blank side x side progressive grey JPEG with empty AC scans added before its end marker, until
    it has ``scans`` in all: each is 10 bytes on disk and one more pass over the image for the decoder."""
    jpeg = encoded(Image.new("L", (side, side), 255), "JPEG", progressive=True, quality=75)
    extra = scans - jpeg.count(b"\xff\xda")
    return jpeg[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x01\x3f\x00" * extra + b"\xff\xd9"


def webp_canvas(width: int, height: int) -> bytes:
    """An extended WebP header (VP8X) claiming a width x height canvas, with no image data."""
    payload = bytes([0, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def random_bytes(count: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()


class Sources:
    """What the corpus files are made from, each made once when first asked for: MNIST test digits on
    paper and the same digit in every format."""

    def __init__(self, test_images: np.ndarray) -> None:
        self.test_images = test_images

    def paper(self, index: int, size: int = 112) -> Image.Image:
        return paper_digit(self.test_images[index], size)

    @cached_property
    def digit(self) -> Image.Image:
        return self.paper(DIGIT_INDICES[0])

    @cached_property
    def png(self) -> bytes:
        return encoded(self.digit, "PNG")

    @cached_property
    def jpeg(self) -> bytes:
        return encoded(self.digit.convert("RGB"), "JPEG", quality=90)

    @cached_property
    def bmp(self) -> bytes:
        return encoded(self.digit, "BMP")

    @cached_property
    def zip_archive(self) -> bytes:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as writer:
            writer.writestr("digit.png", self.png)
        return archive.getvalue()

    def flipped_byte(self) -> bytes:
        corrupt = bytearray(self.png)
        corrupt[len(corrupt) // 2] ^= 0xFF
        return bytes(corrupt)

    def animated(self) -> bytes:
        first, second = self.paper(2).convert("P"), self.paper(3).convert("P")
        return encoded(first, "GIF", save_all=True, append_images=[second], duration=200, loop=0)

    def sixteen_bit(self, index: int, size: int = 112) -> bytes:
        return encoded(Image.fromarray(np.asarray(self.paper(index, size), np.uint16) * 257), "PNG")

    def transparent(self, index: int) -> bytes:
        """A large digit on transparent paper: the ink is the alpha channel."""
        picture = Image.new("LA", (3000, 3000))
        picture.putalpha(Image.fromarray(self.test_images[index]).resize((3000, 3000), Image.Resampling.BILINEAR))
        return encoded(picture, "PNG")

    def exif_rotated(self, index: int) -> bytes:
        """A photo stored turned 90 degrees, with the EXIF orientation that shows it upright."""
        rotated = self.paper(index, 2400).convert("RGB").rotate(90, expand=True)
        exif = Image.Exif()
        exif[0x0112] = 6  # shown turned 90 degrees clockwise, which undoes the rotation above
        return encoded(rotated, "JPEG", exif=exif)


WHITE = Image.new("L", (112, 112), 255)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="112" height="112"><path d="M20 20h70L45 95"/></svg>'
HTML = b"<!DOCTYPE html><html><body><img src='digit.png'><script>alert(1)</script></body></html>"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass(frozen=True)
class Row:
    """One row of the corpus table: a case without its bytes, and how to make them."""

    name: str
    expect: str
    what: str
    make: Callable[[Sources], bytes]
    index: int | None = None  # the MNIST test image a "predict" case shows
    browser: bool = False
    costly: bool = False
    reason: str | None = None

    def case(self, sources: Sources, test_labels: np.ndarray) -> Case:
        digit = int(test_labels[self.index]) if self.index is not None else None
        tags = (COSTLY,) if self.costly else ()
        return Case(self.name, self.make(sources), self.expect, self.what, digit, self.browser, tags, self.reason)


def refuse(name: str, make: Callable[[Sources], bytes], what: str, **flags) -> Row:
    return Row(name, "refuse", what, make, **flags)


def predict(name: str, make: Callable[[Sources], bytes], what: str, index: int, **flags) -> Row:
    return Row(name, "predict", what, make, index=index, **flags)


def _blank(mode: str, colour, format_name: str, size: int = 112, **options) -> Callable[[Sources], bytes]:
    return lambda _: encoded(Image.new(mode, (size, size), colour), format_name, **options)


def _gif(sources: Sources) -> bytes:
    return encoded(sources.digit, "GIF")


def _webp(sources: Sources) -> bytes:
    return encoded(sources.digit, "WEBP", quality=90)


def _blank_animated(_: Sources) -> bytes:
    frame = WHITE.convert("P")
    return encoded(frame, "GIF", save_all=True, append_images=[frame], duration=200)


FILES: tuple[Row, ...] = (
    refuse("empty.png", lambda _: b"", "empty file", browser=True),
    refuse("random-bytes.png", lambda _: random_bytes(4096, 1), "random bytes", browser=True),
    refuse("random-bytes.jpg", lambda _: b"\xff\xd8\xff" + random_bytes(2048, 2), "JPEG magic"),
    refuse("truncated-half.png", lambda s: s.png[: len(s.png) // 2], "truncated PNG", browser=True),
    refuse("truncated-signature.png", lambda s: s.png[:12], "PNG cut inside its header"),
    refuse("truncated.jpg", lambda s: s.jpeg[: len(s.jpeg) // 3], "truncated JPEG", browser=True),
    refuse("truncated.gif", lambda s: _gif(s)[: len(_gif(s)) // 2], "truncated GIF"),
    refuse("truncated.webp", lambda s: _webp(s)[: len(_webp(s)) // 2], "truncated WebP", browser=True),
    refuse("truncated.bmp", lambda s: s.bmp[: len(s.bmp) // 2], "truncated BMP"),
    refuse("corrupt-checksum.png", Sources.flipped_byte, "PNG with a flipped byte in its pixel data"),
    refuse(
        "text-as.png", lambda _: b"just some text pretending to be an image\n" * 20, "text named .png", browser=True
    ),
    refuse("pdf-as.png", lambda _: PDF, "PDF named .png"),
    refuse("html-as.jpg", lambda _: HTML, "HTML named .jpg", browser=True),
    refuse("document.pdf", lambda _: PDF, "PDF", browser=True),
    refuse("drawing.svg", lambda _: SVG, "SVG"),
    refuse("page.html", lambda _: HTML, "HTML"),
    refuse("archive.zip", lambda s: s.zip_archive, "zip holding a digit"),
    refuse("archive-as.png", lambda s: s.zip_archive, "zip named .png", browser=True),
    refuse("gzip-as.png", lambda s: gzip.compress(s.png), "gzip named .png"),
    refuse("tiff-as.png", lambda s: encoded(s.digit, "TIFF"), "TIFF (a format not accepted) named .png"),
    refuse(
        "bomb-1bit-20000.png",
        lambda _: png_bomb(20000, 20000, 1, 0, 2500),
        "1-bit 20000x20000 bomb",
        browser=True,
        costly=True,
    ),
    refuse(
        "bomb-grey-7000.png",
        lambda _: png_bomb(7000, 7000, 8, 0, 7000),
        "49 MP blank bomb just under the cap",
        browser=True,
        costly=True,
    ),
    refuse(
        "bomb-rgba-7000.png",
        lambda _: png_bomb(7000, 7000, 8, 6, 28000),
        "49 MP RGBA bomb (196 MB decoded)",
        costly=True,
        reason=NOT_DECODED,
    ),
    refuse(
        "header-20000.png",
        lambda _: png_file(20000, 20000, 8, 0, None),
        "PNG header claiming 20000x20000",
        browser=True,
    ),
    refuse(
        "header-20000.gif", lambda _: gif_header_only(20000, 20000), "GIF header claiming 20000x20000", browser=True
    ),
    refuse(
        "header-20000.jpg",
        lambda s: jpeg_with_size(s.jpeg, 20000, 20000),
        "JPEG header claiming 20000x20000",
        browser=True,
    ),
    refuse("header-20000.webp", lambda _: webp_canvas(20000, 20000), "WebP header claiming 20000x20000"),
    refuse("header-20000.bmp", lambda s: bmp_with_size(s.bmp, 20000, 20000), "BMP header claiming 20000x20000"),
    refuse("header-zero.png", lambda _: png_file(0, 0, 8, 0, None), "PNG header claiming 0x0", browser=True),
    refuse("header-zero.gif", lambda _: gif_header_only(0, 0), "GIF header claiming 0x0"),
    refuse("header-zero.jpg", lambda s: jpeg_with_size(s.jpeg, 0, 0), "JPEG header claiming 0x0"),
    refuse("header-zero.bmp", lambda s: bmp_with_size(s.bmp, 0, 0), "BMP header claiming 0x0"),
    refuse("tiny-1x1.png", lambda _: encoded(Image.new("L", (1, 1)), "PNG"), "1x1 image"),
    refuse("absurd-aspect.png", lambda _: encoded(Image.new("L", (4000, 20), 255), "PNG"), "4000x20 strip"),
    refuse("blank-white.png", lambda _: encoded(WHITE, "PNG"), "blank white", browser=True),
    refuse("blank-black.jpg", _blank("RGB", 0, "JPEG"), "blank black JPEG"),
    refuse("blank-16bit.png", _blank("I;16", 40000, "PNG"), "blank 16-bit", browser=True),
    refuse("blank-cmyk.jpg", _blank("CMYK", (0, 0, 0, 0), "JPEG"), "blank CMYK"),
    refuse("blank-animated.gif", _blank_animated, "blank animated GIF"),
    refuse(
        "over-10-mb.png",
        lambda s: s.png + random_bytes(11 * 1024 * 1024, 3),
        "a valid PNG padded to 11 MB, over every upload limit",
        browser=True,
    ),
    refuse(
        "scan-bomb.jpg",
        lambda _: jpeg_scan_bomb(7000, 2000),
        "blank 7000x7000 progressive JPEG of 2,000 scans",
        browser=True,
        costly=True,
        reason=NOT_DECODED,
    ),
    refuse(
        "scans-at-the-limit.jpg",
        lambda _: jpeg_scan_bomb(7000, images.MAX_JPEG_SCANS),
        f"blank 7000x7000 progressive JPEG of {images.MAX_JPEG_SCANS} scans, the most decoded",
        costly=True,
    ),
    refuse(
        "progressive-444-5000.jpg",
        _blank("RGB", (255, 255, 255), "JPEG", 5000, progressive=True, subsampling=0),
        "progressive 4:4:4 colour JPEG, 5000x5000 (143 MB of coefficients)",
        costly=True,
        reason=NOT_DECODED,
    ),
    refuse(
        "bomb-16bit-7000.png",
        lambda _: png_bomb(7000, 7000, 16, 0, 14000),
        "uniform 7000x7000 16-bit PNG",
        browser=True,
        costly=True,
    ),
    refuse(
        "bomb-rgb-5200.png",
        lambda _: png_bomb(5200, 5200, 8, 2, 15600),
        "blank 5200x5200 RGB PNG, over 96 MB decoded",
        costly=True,
        reason=NOT_DECODED,
    ),
    refuse(
        "bomb-rgba-4900.png",
        lambda _: png_bomb(4900, 4900, 8, 6, 19600),
        "transparent 4900x4900 RGBA, just under",
        costly=True,
    ),
    refuse(
        "big-blank.webp",
        _blank("RGB", (255, 255, 255), "WEBP", 4000, quality=10, method=0),
        "blank 4000x4000 WebP (its decoder needs 16 bytes a pixel)",
        costly=True,
        reason=NOT_DECODED,
    ),
    refuse(HOSTILE_NAMES[0], lambda _: b"<script>alert(1)</script>", "HTML in the file name", browser=True),
    refuse(HOSTILE_NAMES[1], lambda _: b"", "Markdown in the file name", browser=True),
    refuse(HOSTILE_NAMES[2], lambda _: random_bytes(512, 4), "Streamlit markup in name", browser=True),
    predict("digit.png", lambda s: s.png, "plain PNG digit", 0, browser=True),
    predict("digit-16bit.png", lambda s: s.sixteen_bit(1), "16-bit grey PNG digit", 1, browser=True),
    predict(
        "digit-cmyk.jpg",
        lambda s: encoded(s.paper(7).convert("CMYK"), "JPEG", quality=95),
        "CMYK JPEG digit",
        7,
        browser=True,
    ),
    predict("digit-animated.gif", Sources.animated, "animated GIF, digit in the first frame", 2, browser=True),
    predict(
        "digit-huge.jpg",
        lambda s: encoded(s.paper(3, 6000).convert("RGB"), "JPEG"),
        "6000x6000",
        3,
        browser=True,
        costly=True,
    ),
    predict("digit-large.png", lambda s: encoded(s.paper(4, 3000), "PNG"), "3000x3000 PNG digit", 4),
    predict("digit-png-as.jpg", lambda s: encoded(s.paper(11), "PNG"), "PNG named .jpg", 11, browser=True),
    predict("digit.webp", lambda s: encoded(s.paper(18), "WEBP", quality=90), "WebP digit", 18),
    predict("digit.bmp", lambda s: encoded(s.paper(1), "BMP"), "BMP digit", 1),
    predict("digit-palette.png", lambda s: encoded(s.paper(2).convert("P"), "PNG"), "palette PNG digit", 2),
    predict(
        "digit-16bit-huge.png",
        lambda s: s.sixteen_bit(0, 6000),
        "16-bit grey 6000x6000 PNG digit (shrunk in strips)",
        0,
        costly=True,
    ),
    predict(
        "digit-palette-huge.gif",
        lambda s: encoded(s.paper(2, 6000), "GIF"),
        "6000x6000 GIF digit",
        2,
        costly=True,
    ),
    predict(
        "digit-transparent-large.png",
        lambda s: s.transparent(DIGIT_INDICES[5]),
        "3000x3000 ink on transparent",
        DIGIT_INDICES[5],
    ),
    predict(
        "digit-progressive.jpg",
        lambda s: encoded(s.paper(3, 3000).convert("RGB"), "JPEG", progressive=True),
        "3000x3000 progressive JPEG digit",
        3,
    ),
    predict(
        "digit-exif-rotated.jpg",
        lambda s: s.exif_rotated(DIGIT_INDICES[6]),
        "2400x2400 JPEG upright by EXIF",
        DIGIT_INDICES[6],
    ),
)


def _drawing(scale: int) -> Callable[[Sources], bytes]:
    """A genuine drawing at a screen density: the canvas draws white strokes on black, and exports RGBA
    at the screen's own density."""
    width, height = DRAWING_SIZE

    def make(sources: Sources) -> bytes:
        digit = Image.fromarray(sources.test_images[DIGIT_INDICES[4]])
        return encoded(digit.resize((width * scale, height * scale), Image.Resampling.BILINEAR).convert("RGBA"), "PNG")

    return make


def _drawing_refusal(name: str, make: Callable[[Sources], bytes], what: str) -> Row:
    # Every refusal but the empty canvas's says what a drawing must be.
    return refuse(name, make, what, reason=None if name == "drawing-empty.png" else "drawing")


_BLACK_CANVAS = Image.new("RGBA", DRAWING_SIZE, (0, 0, 0, 255))

# What a hostile client can send as the canvas's drawing (the page takes the bytes of its PNG export,
# which the client controls), and genuine drawings at each screen density.
DRAWINGS: tuple[Row, ...] = (
    _drawing_refusal("drawing-empty.png", lambda _: encoded(_BLACK_CANVAS, "PNG"), "an empty canvas"),
    _drawing_refusal(
        "drawing-wrong-size.png",
        lambda _: encoded(Image.new("RGBA", (300, 280)), "PNG"),
        "300x280, not the canvas's size",
    ),
    _drawing_refusal(
        "drawing-too-dense.png", lambda _: encoded(Image.new("RGBA", (1400, 1400)), "PNG"), "5 times the canvas's size"
    ),
    _drawing_refusal("drawing-bomb.png", lambda _: png_bomb(20000, 20000, 1, 0, 2500), "a 20000x20000 PNG bomb"),
    _drawing_refusal(
        "drawing.tiff", lambda _: encoded(_BLACK_CANVAS.convert("RGB"), "TIFF"), "TIFF, which Pillow would decode"
    ),
    _drawing_refusal("drawing.gif", lambda _: encoded(_BLACK_CANVAS.convert("RGB"), "GIF"), "GIF"),
    _drawing_refusal("drawing.jpg", lambda _: encoded(_BLACK_CANVAS.convert("RGB"), "JPEG"), "JPEG"),
    _drawing_refusal(
        "drawing.eps",
        lambda _: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 280 280\n",
        "EPS, which would run Ghostscript",
    ),
    _drawing_refusal("drawing-truncated.png", lambda s: _drawing(1)(s)[:200], "a truncated PNG"),
    _drawing_refusal("drawing-over-1-mb.png", lambda _: bytes(2 * 1024 * 1024), "2 MB of zeros"),
    _drawing_refusal(
        "drawing-scan-bomb.jpg", lambda _: jpeg_scan_bomb(2800, 2000), "a progressive JPEG of 2,000 scans"
    ),
    *(
        predict(f"drawing-x{scale}.png", _drawing(scale), f"a digit at {scale}x density", DIGIT_INDICES[4])
        for scale in (1, 2, 4)
    ),
)


def names(rows: Iterable[Row], *, browser_only: bool = False) -> list[str]:
    """The names of ``rows`` (only those marked for the browser's quick share, if asked)."""
    return [row.name for row in rows if row.browser or not browser_only]


def build(rows: Iterable[Row], test_images: np.ndarray, test_labels: np.ndarray) -> list[Case]:
    """The cases of ``rows``, made from MNIST test images (uint8 (n, 28, 28)) and their labels (uint8 (n,))."""
    sources = Sources(test_images)
    return [row.case(sources, test_labels) for row in rows]


def hostile_cases(test_images: np.ndarray, test_labels: np.ndarray) -> list[Case]:
    """The whole file corpus."""
    return build(FILES, test_images, test_labels)


def hostile_drawings(test_images: np.ndarray, test_labels: np.ndarray) -> list[Case]:
    """The whole drawing corpus."""
    return build(DRAWINGS, test_images, test_labels)


def write_corpus(folder: Path, cases: list[Case]) -> list[Path]:
    """Write each case into ``folder`` under its own name; returns the paths in the same order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        path = folder / case.name
        path.write_bytes(case.content)
        paths.append(path)
    return paths
