"""The hostile-input corpus, generated at run time: broken, disguised, oversized and odd image files.

Every case says what a correct system does with it: refuse it with a clear message ("refuse"), or,
for an unusual but genuine image of a digit (16-bit, CMYK, animated, very large, wrong extension),
predict that digit ("predict"). The digits are real MNIST test images, inverted to dark ink on
light paper and enlarged, so the expected answer is their label. Decompression bombs are small
files with huge headers or highly compressible pixels; nothing is large on disk except the one
file that exists to be over the upload limit.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# MNIST test images used as the digits of valid cases: index -> its label is the expected answer.
DIGIT_INDICES = (0, 1, 2, 3, 4, 7, 11, 18)
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
    """

    name: str
    content: bytes
    expect: str
    what: str
    digit: int | None = None
    browser: bool = False

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


def webp_canvas(width: int, height: int) -> bytes:
    """An extended WebP header (VP8X) claiming a width x height canvas, with no image data."""
    payload = bytes([0, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def hostile_cases(test_images: np.ndarray, test_labels: np.ndarray) -> list[Case]:
    """The whole corpus, built from MNIST test images (uint8 (n, 28, 28)) and their labels (uint8 (n,))."""
    rng = np.random.default_rng(5)
    digits = {index: paper_digit(test_images[index], 112) for index in DIGIT_INDICES}
    label = {index: int(test_labels[index]) for index in DIGIT_INDICES}
    png = encoded(digits[0], "PNG")
    jpeg = encoded(digits[0].convert("RGB"), "JPEG", quality=90)
    gif = encoded(digits[0], "GIF")
    webp = encoded(digits[0], "WEBP", quality=90)
    bmp = encoded(digits[0], "BMP")
    white = Image.new("L", (112, 112), 255)
    corrupt = bytearray(png)
    corrupt[len(png) // 2] ^= 0xFF
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("digit.png", png)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="112" height="112"><path d="M20 20h70L45 95"/></svg>'
    html = b"<!DOCTYPE html><html><body><img src='digit.png'><script>alert(1)</script></body></html>"
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    sixteen_bit = (np.asarray(digits[1], dtype=np.uint16) * 257).astype(np.uint16)
    animated = encoded(
        digits[2].convert("P"), "GIF", save_all=True, append_images=[digits[3].convert("P")], duration=200, loop=0
    )
    blank_animated = encoded(white.convert("P"), "GIF", save_all=True, append_images=[white.convert("P")], duration=200)
    over_limit = png + rng.integers(0, 256, 11 * 1024 * 1024, dtype=np.uint8).tobytes()
    tiff = encoded(digits[0], "TIFF")

    def refuse(name: str, content: bytes, what: str, browser: bool = False) -> Case:
        return Case(name, content, "refuse", what, browser=browser)

    def predict(name: str, content: bytes, what: str, index: int, browser: bool = False) -> Case:
        return Case(name, content, "predict", what, digit=label[index], browser=browser)

    return [
        refuse("empty.png", b"", "empty file", browser=True),
        refuse("random-bytes.png", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "random bytes", True),
        refuse(
            "random-bytes.jpg", b"\xff\xd8\xff" + rng.integers(0, 256, 2048, dtype=np.uint8).tobytes(), "JPEG magic"
        ),
        refuse("truncated-half.png", png[: len(png) // 2], "truncated PNG", browser=True),
        refuse("truncated-signature.png", png[:12], "PNG cut inside its header"),
        refuse("truncated.jpg", jpeg[: len(jpeg) // 3], "truncated JPEG", browser=True),
        refuse("truncated.gif", gif[: len(gif) // 2], "truncated GIF"),
        refuse("truncated.webp", webp[: len(webp) // 2], "truncated WebP", browser=True),
        refuse("truncated.bmp", bmp[: len(bmp) // 2], "truncated BMP"),
        refuse("corrupt-checksum.png", bytes(corrupt), "PNG with a flipped byte in its pixel data"),
        refuse("text-as.png", b"just some text pretending to be an image\n" * 20, "text named .png", True),
        refuse("pdf-as.png", pdf, "PDF named .png"),
        refuse("html-as.jpg", html, "HTML named .jpg", browser=True),
        refuse("document.pdf", pdf, "PDF", browser=True),
        refuse("drawing.svg", svg, "SVG"),
        refuse("page.html", html, "HTML"),
        refuse("archive.zip", archive.getvalue(), "zip holding a digit"),
        refuse("archive-as.png", archive.getvalue(), "zip named .png", browser=True),
        refuse("gzip-as.png", gzip.compress(png), "gzip named .png"),
        refuse("tiff-as.png", tiff, "TIFF (a format not accepted) named .png"),
        refuse("bomb-1bit-20000.png", png_bomb(20000, 20000, 1, 0, 2500), "1-bit 20000x20000 bomb", True),
        refuse("bomb-grey-7000.png", png_bomb(7000, 7000, 8, 0, 7000), "49 MP blank bomb just under the cap", True),
        refuse("bomb-rgba-7000.png", png_bomb(7000, 7000, 8, 6, 28000), "49 MP RGBA bomb (196 MB decoded)"),
        refuse("header-20000.png", png_file(20000, 20000, 8, 0, None), "PNG header claiming 20000x20000", True),
        refuse("header-20000.gif", gif_header_only(20000, 20000), "GIF header claiming 20000x20000", True),
        refuse("header-20000.jpg", jpeg_with_size(jpeg, 20000, 20000), "JPEG header claiming 20000x20000", True),
        refuse("header-20000.webp", webp_canvas(20000, 20000), "WebP header claiming 20000x20000"),
        refuse("header-20000.bmp", bmp_with_size(bmp, 20000, 20000), "BMP header claiming 20000x20000"),
        refuse("header-zero.png", png_file(0, 0, 8, 0, None), "PNG header claiming 0x0", browser=True),
        refuse("header-zero.gif", gif_header_only(0, 0), "GIF header claiming 0x0"),
        refuse("header-zero.jpg", jpeg_with_size(jpeg, 0, 0), "JPEG header claiming 0x0"),
        refuse("header-zero.bmp", bmp_with_size(bmp, 0, 0), "BMP header claiming 0x0"),
        refuse("tiny-1x1.png", encoded(Image.new("L", (1, 1)), "PNG"), "1x1 image"),
        refuse("absurd-aspect.png", encoded(Image.new("L", (4000, 20), 255), "PNG"), "4000x20 strip"),
        refuse("blank-white.png", encoded(white, "PNG"), "blank white", browser=True),
        refuse("blank-black.jpg", encoded(Image.new("RGB", (112, 112)), "JPEG"), "blank black JPEG"),
        refuse("blank-16bit.png", encoded(Image.new("I;16", (112, 112), 40000), "PNG"), "blank 16-bit", True),
        refuse("blank-cmyk.jpg", encoded(Image.new("CMYK", (112, 112), (0, 0, 0, 0)), "JPEG"), "blank CMYK"),
        refuse("blank-animated.gif", blank_animated, "blank animated GIF"),
        refuse("over-10-mb.png", over_limit, "a valid PNG padded to 11 MB, over every upload limit", True),
        refuse(HOSTILE_NAMES[0], b"<script>alert(1)</script>", "HTML in the file name", browser=True),
        refuse(HOSTILE_NAMES[1], b"", "Markdown in the file name", browser=True),
        refuse(HOSTILE_NAMES[2], rng.integers(0, 256, 512, dtype=np.uint8).tobytes(), "Streamlit markup in name", True),
        predict("digit.png", png, "plain PNG digit", 0, browser=True),
        predict("digit-16bit.png", encoded(Image.fromarray(sixteen_bit), "PNG"), "16-bit grey PNG digit", 1, True),
        predict("digit-cmyk.jpg", encoded(digits[7].convert("CMYK"), "JPEG", quality=95), "CMYK JPEG digit", 7, True),
        predict("digit-animated.gif", animated, "animated GIF, digit in the first frame", 2, browser=True),
        predict(
            "digit-huge.jpg", encoded(paper_digit(test_images[3], 6000).convert("RGB"), "JPEG"), "6000x6000", 3, True
        ),
        predict("digit-large.png", encoded(paper_digit(test_images[4], 3000), "PNG"), "3000x3000 PNG digit", 4),
        predict("digit-png-as.jpg", encoded(digits[11], "PNG"), "PNG named .jpg", 11, browser=True),
        predict("digit.webp", encoded(digits[18], "WEBP", quality=90), "WebP digit", 18),
        predict("digit.bmp", encoded(digits[1], "BMP"), "BMP digit", 1),
        predict("digit-palette.png", encoded(digits[2].convert("P"), "PNG"), "palette PNG digit", 2),
    ]


def write_corpus(folder: Path, cases: list[Case]) -> list[Path]:
    """Write each case into ``folder`` under its own name; returns the paths in the same order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        path = folder / case.name
        path.write_bytes(case.content)
        paths.append(path)
    return paths
