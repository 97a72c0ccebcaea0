"""Write the bad-file corpus: files that preprocessing must refuse (or, for the animated GIF, accept).

Run from the project root with ``python tests/corpus/make_corpus.py``; the files are committed, so
this only documents how each was made and remakes them if the corpus ever has to change. The test
table in ``tests/test_images.py`` says what each must produce.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CORPUS = Path(__file__).resolve().parent


def _digit_image(size: int = 64) -> Image.Image:
    """A dark 7 on light paper, size x size RGB."""
    image = Image.new("RGB", (size, size), (235, 235, 230))
    draw = ImageDraw.Draw(image)
    draw.line(
        [(size * 0.25, size * 0.2), (size * 0.75, size * 0.2), (size * 0.45, size * 0.85)],
        fill=(20, 20, 20),
        width=size // 10,
    )
    return image


def _encoded(image: Image.Image, format_name: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _one_bit_png(width: int, height: int) -> bytes:
    """An honest, all-black 1-bit PNG: tiny on disk, huge once decoded (a decompression bomb)."""
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _gif_header_only(width: int, height: int) -> bytes:
    """A GIF whose header claims width x height but which holds one tiny frame of data."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b"\x3b"


def corpus_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    png = _encoded(_digit_image(), "PNG")
    jpeg = _encoded(_digit_image(), "JPEG", quality=90)
    corrupt = bytearray(png)
    corrupt[len(png) // 2] ^= 0xFF  # Inside IDAT: the chunk's checksum no longer matches.
    frames = [Image.new("P", (64, 64), 0) for _ in range(3)]
    ImageDraw.Draw(frames[0]).line([(16, 13), (48, 13), (29, 54)], fill=255, width=6)
    for frame in frames:
        frame.putpalette([0, 0, 0] * 255 + [255, 255, 255])
    noisy_paper = 200 + 25 * np.linspace(-1, 1, 240)[None, :] + rng.normal(0, 6, (180, 240))
    return {
        "empty.png": b"",
        "random-bytes.png": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated.png": png[: len(png) * 2 // 3],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "corrupt-checksum.png": bytes(corrupt),
        "text.png": b"This is a note, not a picture of a digit.\nIt was saved with the wrong name.\n",
        "document.png": b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n",
        "drawing.png": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28">'
        b'<text x="8" y="22">7</text></svg>\n',
        "page.png": b"<!DOCTYPE html><html><body><img src='digit.png'></body></html>\n",
        "archive.png": _gzip(b"digit" * 100),
        "bomb.png": _one_bit_png(20000, 20000),
        "over-pixel-cap.png": _one_bit_png(10000, 8000),
        "huge-header.gif": _gif_header_only(30000, 30000),
        "tiny.png": _encoded(Image.new("L", (5, 5), 255), "PNG"),
        "absurd-aspect.png": _encoded(Image.new("L", (2000, 20), 255), "PNG"),
        "blank.png": _encoded(Image.new("RGB", (200, 200), (255, 255, 255)), "PNG"),
        "uniform-grey.jpg": _encoded(Image.new("L", (300, 200), 128), "JPEG"),
        "blank-paper.jpg": _encoded(Image.fromarray(np.clip(noisy_paper, 0, 255).astype(np.uint8)), "JPEG"),
        "animated.gif": _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
    }


def _gzip(payload: bytes) -> bytes:
    import gzip

    return gzip.compress(payload, mtime=0)


if __name__ == "__main__":
    for name, content in corpus_files().items():
        (CORPUS / name).write_bytes(content)
        print(f"{name}: {len(content)} bytes")
