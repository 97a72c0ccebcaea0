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

from mnist_model import images

# MNIST test images used as the digits of valid cases: index -> its label is the expected answer.
DIGIT_INDICES = (0, 1, 2, 3, 4, 7, 11, 18)
# The drawing canvas of the Predict page, (width, height) pixels.
DRAWING_SIZE = (280, 280)
# Files that cost the decoder the most memory or CPU that the limits allow, or would cost far more.
COSTLY = "costly to decode"
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
    # A large digit on transparent paper: the ink is the alpha channel.
    transparent = Image.new("LA", (3000, 3000))
    transparent.putalpha(Image.fromarray(test_images[DIGIT_INDICES[5]]).resize((3000, 3000), Image.Resampling.BILINEAR))
    rotated = paper_digit(test_images[DIGIT_INDICES[6]], 2400).convert("RGB").rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise, which undoes the rotation above
    tiff = encoded(digits[0], "TIFF")

    costly = {
        "bomb-1bit-20000.png",
        "bomb-grey-7000.png",
        "bomb-rgba-7000.png",
        "scan-bomb.jpg",
        "scans-at-the-limit.jpg",
        "progressive-444-5000.jpg",
        "bomb-16bit-7000.png",
        "bomb-rgb-5200.png",
        "bomb-rgba-4900.png",
        "big-blank.webp",
        "digit-huge.jpg",
        "digit-16bit-huge.png",
        "digit-palette-huge.gif",
    }

    # Refused before a pixel is decoded, for what decoding them would cost.
    reasons = {
        "scan-bomb.jpg": "it was not decoded",
        "progressive-444-5000.jpg": "it was not decoded",
        "bomb-rgb-5200.png": "it was not decoded",
        "big-blank.webp": "it was not decoded",
        "bomb-rgba-7000.png": "it was not decoded",
    }

    def refuse(name: str, content: bytes, what: str, browser: bool = False) -> Case:
        tags = (COSTLY,) if name in costly else ()
        return Case(name, content, "refuse", what, browser=browser, tags=tags, reason=reasons.get(name))

    def predict(name: str, content: bytes, what: str, index: int, browser: bool = False) -> Case:
        tags = (COSTLY,) if name in costly else ()
        return Case(name, content, "predict", what, digit=label[index], browser=browser, tags=tags)

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
        refuse("scan-bomb.jpg", jpeg_scan_bomb(7000, 2000), "blank 7000x7000 progressive JPEG of 2,000 scans", True),
        refuse(
            "scans-at-the-limit.jpg",
            jpeg_scan_bomb(7000, images.MAX_JPEG_SCANS),
            f"blank 7000x7000 progressive JPEG of {images.MAX_JPEG_SCANS} scans, the most decoded",
        ),
        refuse(
            "progressive-444-5000.jpg",
            encoded(Image.new("RGB", (5000, 5000), (255, 255, 255)), "JPEG", progressive=True, subsampling=0),
            "progressive 4:4:4 colour JPEG, 5000x5000 (143 MB of coefficients)",
        ),
        refuse("bomb-16bit-7000.png", png_bomb(7000, 7000, 16, 0, 14000), "uniform 7000x7000 16-bit PNG", True),
        refuse("bomb-rgb-5200.png", png_bomb(5200, 5200, 8, 2, 15600), "blank 5200x5200 RGB PNG, over 96 MB decoded"),
        refuse("bomb-rgba-4900.png", png_bomb(4900, 4900, 8, 6, 19600), "transparent 4900x4900 RGBA, just under"),
        refuse(
            "big-blank.webp",
            encoded(Image.new("RGB", (4000, 4000), (255, 255, 255)), "WEBP", quality=10, method=0),
            "blank 4000x4000 WebP (its decoder needs 16 bytes a pixel)",
        ),
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
        predict(
            "digit-16bit-huge.png",
            encoded(Image.fromarray(np.asarray(paper_digit(test_images[0], 6000), np.uint16) * 257), "PNG"),
            "16-bit grey 6000x6000 PNG digit (shrunk in strips)",
            0,
        ),
        predict("digit-palette-huge.gif", encoded(paper_digit(test_images[2], 6000), "GIF"), "6000x6000 GIF digit", 2),
        predict("digit-transparent-large.png", encoded(transparent, "PNG"), "3000x3000 ink on transparent", 7),
        predict(
            "digit-progressive.jpg",
            encoded(paper_digit(test_images[3], 3000).convert("RGB"), "JPEG", progressive=True),
            "3000x3000 progressive JPEG digit",
            3,
        ),
        predict("digit-exif-rotated.jpg", encoded(rotated, "JPEG", exif=exif), "2400x2400 JPEG upright by EXIF", 11),
    ]


def hostile_drawings(test_images: np.ndarray, test_labels: np.ndarray) -> list[Case]:
    """What a hostile client can send as the canvas's drawing (the page takes the bytes of its PNG
    export, which the client controls), and genuine drawings at each screen density."""
    width, height = DRAWING_SIZE
    index = DIGIT_INDICES[4]

    def drawing(scale: int) -> bytes:
        # The canvas draws white strokes on black; the export is RGBA at the screen's own density.
        digit = Image.fromarray(test_images[index]).resize((width * scale, height * scale), Image.Resampling.BILINEAR)
        return encoded(digit.convert("RGBA"), "PNG")

    blank = Image.new("RGBA", DRAWING_SIZE, (0, 0, 0, 255))
    refuse = [
        ("drawing-empty.png", encoded(blank, "PNG"), "an empty canvas"),
        ("drawing-wrong-size.png", encoded(Image.new("RGBA", (300, 280)), "PNG"), "300x280, not the canvas's size"),
        ("drawing-too-dense.png", encoded(Image.new("RGBA", (1400, 1400)), "PNG"), "5 times the canvas's size"),
        ("drawing-bomb.png", png_bomb(20000, 20000, 1, 0, 2500), "a 20000x20000 PNG bomb"),
        ("drawing.tiff", encoded(blank.convert("RGB"), "TIFF"), "TIFF, which Pillow would decode"),
        ("drawing.gif", encoded(blank.convert("RGB"), "GIF"), "GIF"),
        ("drawing.jpg", encoded(blank.convert("RGB"), "JPEG"), "JPEG"),
        ("drawing.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 280 280\n", "EPS, which would run Ghostscript"),
        ("drawing-truncated.png", drawing(1)[:200], "a truncated PNG"),
        ("drawing-over-1-mb.png", bytes(2 * 1024 * 1024), "2 MB of zeros"),
        ("drawing-scan-bomb.jpg", jpeg_scan_bomb(2800, 2000), "a progressive JPEG of 2,000 scans"),
    ]
    # Every refusal but the empty canvas's says what a drawing must be.
    cases = [
        Case(name, content, "refuse", what, reason=None if name == "drawing-empty.png" else "drawing")
        for name, content, what in refuse
    ]
    digit = int(test_labels[index])
    for scale in (1, 2, 4):
        cases.append(Case(f"drawing-x{scale}.png", drawing(scale), "predict", f"a digit at {scale}x density", digit))
    return cases


def write_corpus(folder: Path, cases: list[Case]) -> list[Path]:
    """Write each case into ``folder`` under its own name; returns the paths in the same order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        path = folder / case.name
        path.write_bytes(case.content)
        paths.append(path)
    return paths
