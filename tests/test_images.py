"""Preprocessing of uploads and drawings: MNIST conventions, every format and mode, and bad files.

Most checks are references: the same digit is shown clean (white strokes on a black canvas) and in
some harder form (paper, lighting, format, rotation, transparency...), and both must come out as
nearly the same 28x28 image.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageFilter

from benchmarks.realistic_digits import drawn_digit
from mnist_model import images
from mnist_model.images import (
    ImageError,
    PreprocessedImage,
    decoding,
    preprocess_canvas,
    preprocess_drawing,
    preprocess_file,
    segmentation,
)
from reliability.corpus import jpeg_scan_bomb, png_file

CORPUS = Path(__file__).resolve().parent / "corpus"


def seven(height: int = 120, pen: int = 12) -> np.ndarray:
    """float32 (h, w) coverage of a handwritten 7, the same on every call."""
    return drawn_digit(7, np.random.default_rng(7), height=height, pen=pen, variant=0)


def four(height: int = 120, pen: int = 12) -> np.ndarray:
    return drawn_digit(4, np.random.default_rng(4), height=height, pen=pen, variant=0)


def canvas_of(coverage: np.ndarray, size: int = 280) -> np.ndarray:
    """uint8 (size, size, 4): white strokes on an opaque black canvas, digit in the middle."""
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    top, left = (size - coverage.shape[0]) // 2, (size - coverage.shape[1]) // 2
    region = rgba[top : top + coverage.shape[0], left : left + coverage.shape[1], :3]
    region[:] = np.round(coverage * 255)[..., None].astype(np.uint8)
    return rgba


def paper_photo(
    coverage: np.ndarray,
    *,
    size: tuple[int, int] = (320, 240),
    at: tuple[int, int] = (40, 150),
    paper: float = 0.92,
    ink: float = 0.1,
    gradient: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """uint8 (h, w, 3): the digit in ink on paper. at: (top, left); gradient: paper brightness change
    from left to right edge; noise: standard deviation of Gaussian noise (fractions of full scale)."""
    width, height = size
    scene = np.full((height, width), paper, dtype=np.float32)
    scene += gradient * (np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :])
    top, left = at
    patch = scene[top : top + coverage.shape[0], left : left + coverage.shape[1]]
    patch[:] = patch * (1 - coverage) + ink * coverage
    scene += np.random.default_rng(seed).normal(0, noise, scene.shape).astype(np.float32)
    grey = np.clip(scene * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def encoded(image: Image.Image | np.ndarray, format_name: str = "PNG", **options) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Pearson correlation of two images' pixels: 1 for the same picture, about 0 for unrelated ones."""
    return float(np.corrcoef(first.ravel().astype(np.float64), second.ravel().astype(np.float64))[0, 1])


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The clean 7, as a canvas drawing comes out: uint8 (28, 28)."""
    return preprocess_canvas(canvas_of(seven())).final


# MNIST conventions


def test_final_fits_a_20_pixel_box_centred_by_mass_like_mnist(reference):
    rows = np.flatnonzero(reference.max(axis=1))
    cols = np.flatnonzero(reference.max(axis=0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20
    total = reference.sum(dtype=np.float64)
    centre_y = (reference.sum(axis=1) * np.arange(28)).sum() / total
    centre_x = (reference.sum(axis=0) * np.arange(28)).sum() / total
    assert abs(centre_y - images.MNIST_CENTRE) <= 0.5 and abs(centre_x - images.MNIST_CENTRE) <= 0.5
    assert reference.max() == 255 and reference[0].max() == reference[:, 0].max() == 0


def test_model_input_is_final_scaled_to_unit_floats():
    result = preprocess_canvas(canvas_of(seven()))
    assert result.model_input.dtype == np.float32 and result.model_input.shape == (28, 28)
    np.testing.assert_allclose(result.model_input, result.final / 255.0, rtol=1e-6)


def test_every_step_is_returned_for_display():
    result = preprocess_file(encoded(paper_photo(seven())), name="seven.png")
    assert isinstance(result, PreprocessedImage)
    assert result.decoded.dtype == np.uint8 and result.decoded.shape[:2] == (240, 320)
    assert result.grey.dtype == np.uint8 and result.grey.shape == (240, 320)
    # The crop is the digit's box in the grey image: about the size the digit was drawn at.
    assert result.cropped.dtype == np.uint8 and abs(result.cropped.shape[0] - seven().shape[0]) <= 4
    assert result.final.dtype == np.uint8 and result.final.shape == (28, 28)
    assert result.format == "PNG"


def test_digit_anywhere_and_at_any_size_comes_out_the_same(reference):
    small_in_corner = paper_photo(seven(height=60, pen=6), size=(900, 700), at=(620, 20))
    large_off_centre = paper_photo(seven(height=400, pen=40), size=(800, 600), at=(150, 380))
    for scene in (small_in_corner, large_off_centre):
        assert similarity(preprocess_file(encoded(scene)).final, reference) > 0.9


def stroke_width(image: np.ndarray) -> float:
    """Mean stroke width in pixels of the pixels above half intensity: twice the area over the boundary."""
    mask = np.pad(image > 127, 1)
    interior = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    area = int(mask.sum())
    return 2 * area / max(area - int(interior.sum()), 1)


def test_thin_pen_strokes_are_thickened_to_mnist_width():
    # A 3-pixel pen on a 200-pixel digit would be 0.3 pixels wide at 28x28; MNIST strokes are 2-4.
    result = preprocess_file(encoded(paper_photo(seven(height=200, pen=3), size=(400, 300), at=(40, 100))))
    assert any(note.startswith("thickened thin strokes") for note in result.notes)
    assert 2.0 <= stroke_width(result.final) <= 4.0


def outlined(coverage: np.ndarray, body: int = 13, line: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A bold copy of a digit's coverage (its strokes grown by ``body`` - 1 pixels), and the outline of
    that copy, drawn with lines ``line`` pixels wide: the same digit, solid and hollow."""
    glyph = Image.fromarray(np.round(np.pad(coverage, body) * 255).astype(np.uint8))
    bold = glyph.filter(ImageFilter.MaxFilter(body))
    inside = bold.filter(ImageFilter.MinFilter(2 * line + 1))
    solid = np.asarray(bold, np.float32) / 255
    return solid, solid - np.asarray(inside, np.float32) / 255


def test_an_outlined_digit_is_filled_and_reads_like_the_solid_one():
    solid, hollow = outlined(seven(height=160, pen=10))
    filled = preprocess_canvas(canvas_of(hollow))
    assert "filled an outlined (hollow) digit" in filled.notes
    assert similarity(filled.final, preprocess_canvas(canvas_of(solid)).final) > 0.9


def test_an_outlined_zero_is_filled_around_its_counter():
    solid, hollow = outlined(drawn_digit(0, np.random.default_rng(0), height=160, pen=10, variant=0))
    filled = preprocess_canvas(canvas_of(hollow))
    assert "filled an outlined (hollow) digit" in filled.notes
    assert similarity(filled.final, preprocess_canvas(canvas_of(solid)).final) > 0.9
    assert filled.final[13:16, 13:16].max() < 64  # the counter, about the centre of mass, stays open


@pytest.mark.parametrize("digit", [0, 4, 6, 8, 9])
@pytest.mark.parametrize("pen", [4, 12])
def test_the_counters_of_ordinary_digits_are_never_filled(digit, pen):
    for variant in (0, 1):
        coverage = drawn_digit(digit, np.random.default_rng(digit), height=160, pen=pen, variant=variant)
        assert not any("outlined" in note for note in preprocess_canvas(canvas_of(coverage)).notes)


# Polarity and paper


def test_dark_ink_on_light_paper_is_inverted_to_white_on_black(reference):
    result = preprocess_file(encoded(paper_photo(seven())))
    assert "inverted: dark ink on light paper" in result.notes
    assert similarity(result.final, reference) > 0.95
    assert result.grey[0, 0] == 0 and result.grey.max() == 255


def test_light_strokes_on_dark_are_kept_as_they_are(reference):
    result = preprocess_file(encoded(paper_photo(seven(), paper=0.15, ink=0.85)))
    assert not any(note.startswith("inverted") for note in result.notes)
    assert similarity(result.final, reference) > 0.95


@pytest.mark.parametrize(
    ("paper", "ink", "gradient", "noise"),
    [
        (0.7, 0.25, 0.0, 0.0),  # grey paper, grey pencil
        (0.75, 0.1, 0.5, 0.0),  # lit from one side: paper from 0.5 to 1.0 across the image
        (0.85, 0.1, 0.3, 0.06),  # uneven and noisy
        (0.2, 0.9, 0.3, 0.05),  # chalk on an unevenly lit board
    ],
)
def test_uneven_grey_or_noisy_paper_gives_the_clean_digit(reference, paper, ink, gradient, noise):
    scene = paper_photo(seven(), paper=paper, ink=ink, gradient=gradient, noise=noise)
    assert similarity(preprocess_file(encoded(scene)).final, reference) > 0.9


def test_slight_blur_is_tolerated(reference):
    blurred = Image.fromarray(paper_photo(seven())).filter(ImageFilter.GaussianBlur(2))
    assert similarity(preprocess_file(encoded(blurred)).final, reference) > 0.9


def test_slight_rotation_of_a_photo_matches_the_same_rotation_drawn():
    tilted_photo = Image.fromarray(paper_photo(seven())).rotate(10, Image.Resampling.BICUBIC, fillcolor=(235,) * 3)
    tilted_drawing = Image.fromarray(canvas_of(seven())).rotate(10, Image.Resampling.BICUBIC, fillcolor=(0, 0, 0, 255))
    photo_final = preprocess_file(encoded(tilted_photo)).final
    assert similarity(photo_final, preprocess_canvas(np.asarray(tilted_drawing)).final) > 0.9


def test_specks_away_from_the_digit_are_ignored(reference):
    scene = paper_photo(seven())
    for top, left in ((10, 10), (200, 30), (220, 300)):
        scene[top : top + 5, left : left + 5] = 20
    result = preprocess_file(encoded(scene))
    assert similarity(result.final, reference) > 0.95
    assert any("speck" in note for note in result.notes)


def test_a_detached_stroke_of_the_digit_is_kept():
    # A 4 whose stem does not touch the rest: both parts must be in the crop.
    coverage = np.zeros((120, 90), dtype=np.float32)
    coverage[0:70, 8:18] = 1  # down-stroke
    coverage[60:70, 8:85] = 1  # cross-stroke
    coverage[20:120, 62:72] = 1  # stem
    coverage[58:72, 55:79] = 0  # a gap around the crossing
    result = preprocess_file(encoded(paper_photo(coverage)))
    assert result.cropped.shape == pytest.approx((120, 77), abs=3)
    assert not result.is_number


# Whole numbers


def number_photo(labels: str, *, gaps: float = 0.25, height: int = 100, seed: int = 0) -> np.ndarray:
    """uint8 (h, w, 3): drawn digits side by side in ink on paper, ``gaps`` times the height apart
    (negative: overlapping, so that neighbours touch)."""
    rng = np.random.default_rng(seed)
    digits = [drawn_digit(int(label), rng, height=height, pen=height // 10, variant=0) for label in labels]
    width = sum(digit.shape[1] for digit in digits) + int(gaps * height) * (len(digits) - 1)
    coverage = np.zeros((height + 20, width), dtype=np.float32)
    left = 0
    for digit in digits:
        region = coverage[10 : 10 + digit.shape[0], left : left + digit.shape[1]]
        np.maximum(region, digit[: region.shape[0], : region.shape[1]], out=region)
        left += digit.shape[1] + int(gaps * height)
    return paper_photo(coverage, size=(width + 120, height + 100), at=(30, 60))


def test_a_number_is_cut_into_its_digits_left_to_right():
    result = preprocess_file(encoded(number_photo("2026")))
    assert result.is_number and len(result.digits) == 4
    assert any("number of 4 digits" in note for note in result.notes)
    rng = np.random.default_rng(0)
    for label, digit in zip("2026", result.digits, strict=True):
        alone = preprocess_canvas(canvas_of(drawn_digit(int(label), rng, height=100, pen=10, variant=0))).final
        assert digit.shape == (28, 28) and digit.dtype == np.uint8
        assert similarity(digit, alone) > 0.8, label
    assert result.digit_inputs.shape == (4, 28, 28) and result.digit_inputs.max() == 1.0


@pytest.mark.parametrize("labels", ["730", "3390"])
def test_touching_digits_are_cut_where_they_meet(labels):
    result = preprocess_file(encoded(number_photo(labels, gaps=-0.02)))
    assert segmentation.components(result.grey > 0)[1] < len(labels)  # they do touch
    assert len(result.digits) == len(labels)


def test_digits_set_so_close_that_their_boxes_overlap_are_taken_apart():
    # Apart on paper, but overlapping columns: no vertical cut separates them, their pixels do.
    assert len(preprocess_file(encoded(number_photo("2026", gaps=-0.08))).digits) == 4


def test_a_tightly_cropped_number_is_read_whole():
    rng = np.random.default_rng(3)
    digits = [drawn_digit(label, rng, height=90, pen=9, variant=0) for label in (1, 9, 8, 4)]
    row = np.zeros((max(d.shape[0] for d in digits), sum(d.shape[1] + 12 for d in digits) - 12), np.float32)
    left = 0
    for digit in digits:
        row[: digit.shape[0], left : left + digit.shape[1]] = digit
        left += digit.shape[1] + 12
    scene = np.round((1 - row) * 255).astype(np.uint8)  # dark ink touching every edge
    assert len(preprocess_file(encoded(scene)).digits) == 4


def test_specks_and_a_detached_bar_do_not_change_the_count():
    scene = number_photo("57", gaps=0.3)
    scene[5:9, 5:9] = 20  # a speck in the corner
    scene[100:104, 200:204] = 20  # and one below the digits
    assert len(preprocess_file(encoded(scene)).digits) == 2


def test_one_digit_is_not_a_number_and_keeps_digit_inputs():
    result = preprocess_file(encoded(paper_photo(seven())))
    assert not result.is_number and result.digits == ()
    np.testing.assert_array_equal(result.digit_inputs, result.model_input[np.newaxis])


def test_digits_far_apart_or_on_two_lines_are_not_read_as_a_number():
    rng = np.random.default_rng(0)
    one, two = (drawn_digit(label, rng, height=80, pen=8, variant=0) for label in (1, 2))
    far = np.zeros((80, 400), dtype=np.float32)
    far[:, : one.shape[1]] = one[:80]
    far[:, 400 - two.shape[1] :] = two[:80]
    stacked = np.zeros((200, 80), dtype=np.float32)
    stacked[:80, : one.shape[1]] = one[:80]
    stacked[110:190, : two.shape[1]] = two[:80]
    for coverage in (far, stacked):
        scene = paper_photo(coverage, size=(coverage.shape[1] + 80, coverage.shape[0] + 80), at=(40, 40))
        assert not preprocess_file(encoded(scene)).is_number


def test_random_noise_without_a_digit_is_refused():
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    with pytest.raises(ImageError, match="no digit"):
        preprocess_file(encoded(noise), name="noise.png")


# Formats and modes


def _photo_image() -> Image.Image:
    return Image.fromarray(paper_photo(seven(), paper=0.9, ink=0.15))


def _with_alpha(mode: str) -> Image.Image:
    """Dark strokes on a transparent background, as canvas exports are."""
    coverage = np.zeros((240, 320), dtype=np.float32)
    coverage[40 : 40 + seven().shape[0], 150 : 150 + seven().shape[1]] = seven()
    rgba = np.zeros((240, 320, 4), dtype=np.uint8)
    rgba[..., :3] = 30
    rgba[..., 3] = np.round(coverage * 255).astype(np.uint8)
    return Image.fromarray(rgba).convert(mode)


def _sixteen_bit() -> Image.Image:
    grey = np.asarray(_photo_image().convert("L"), dtype=np.uint16) * 257
    return Image.fromarray(grey)


def _palette_with_transparency() -> tuple[Image.Image, dict]:
    alpha = np.asarray(_with_alpha("RGBA"))[..., 3]
    indices = np.where(alpha >= 128, 1, 0).astype(np.uint8)
    image = Image.fromarray(indices)
    image.putpalette([255, 255, 255, 20, 20, 20])
    return image, {"transparency": 0}


ENCODINGS = [
    ("PNG", lambda: (_photo_image().convert("L"), {})),
    ("PNG", lambda: (_photo_image(), {})),
    ("PNG", lambda: (_photo_image().convert("P", palette=Image.Palette.ADAPTIVE), {})),
    ("PNG", lambda: (_sixteen_bit(), {})),
    ("PNG", lambda: (_with_alpha("RGBA"), {})),
    ("PNG", lambda: (_with_alpha("LA"), {})),
    ("PNG", _palette_with_transparency),
    ("JPEG", lambda: (_photo_image(), {"quality": 85})),
    ("JPEG", lambda: (_photo_image().convert("L"), {"quality": 85})),
    ("JPEG", lambda: (_photo_image().convert("CMYK"), {"quality": 85})),
    ("BMP", lambda: (_photo_image(), {})),
    ("BMP", lambda: (_photo_image().convert("L"), {})),
    ("BMP", lambda: (_photo_image().convert("P", palette=Image.Palette.ADAPTIVE), {})),
    ("GIF", lambda: (_photo_image().convert("P", palette=Image.Palette.ADAPTIVE), {})),
    ("GIF", _palette_with_transparency),
    ("WEBP", lambda: (_photo_image(), {"quality": 80})),
    ("WEBP", lambda: (_with_alpha("RGBA"), {"lossless": True})),
]


@pytest.mark.parametrize(
    ("format_name", "make"),
    ENCODINGS,
    ids=[f"{format_name}-{index}" for index, (format_name, _) in enumerate(ENCODINGS)],
)
def test_every_format_and_mode_gives_the_clean_digit(reference, format_name, make):
    image, options = make()
    result = preprocess_file(encoded(image, format_name, **options))
    assert result.format == format_name
    assert similarity(result.final, reference) > 0.9, (image.mode, result.notes)


# Eight times larger (2560x1920), every encoding but RGB BMP fits the upload limit of 10 MB.
LARGE_ENCODINGS = [(index, encoding) for index, encoding in enumerate(ENCODINGS) if index != 10]


@pytest.mark.parametrize(
    ("format_name", "make"),
    [encoding for _, encoding in LARGE_ENCODINGS],
    ids=[f"{encoding[0]}-{index}" for index, encoding in LARGE_ENCODINGS],
)
def test_every_format_and_mode_enlarged_past_twice_the_working_size_gives_the_clean_digit(reference, format_name, make):
    image, options = make()
    large = image.resize((image.width * 8, image.height * 8), Image.Resampling.NEAREST)
    if large.mode == "P":
        large.info.update(image.info)
    result = preprocess_file(encoded(large, format_name, **options))
    assert max(result.decoded.shape[:2]) == images.WORK_SIDE
    assert similarity(result.final, reference) > 0.9, (image.mode, result.notes)


@pytest.mark.parametrize("mode", ["1", "P", "PA", "LA", "RGBA", "I;16", "I;16B"])
def test_shrinking_in_strips_equals_converting_the_whole_image_then_reducing(mode):
    rng = np.random.default_rng(3)
    if mode.startswith("I;16"):
        image = Image.frombytes(mode, (2100, 1300), rng.integers(0, 256, 2100 * 1300 * 2, dtype=np.uint8).tobytes())
    else:
        image = Image.fromarray(rng.integers(0, 256, (1300, 2100, 4), dtype=np.uint8)).convert(mode)
    working, result = {"1": ("L", "L"), "P": ("RGB", "RGB"), "PA": ("RGBa", "RGBA")}.get(
        mode, decoding.SHRINK_MODES.get(mode, (None, None))
    )
    whole = (image.convert("RGBA") if working == "RGBa" else image).convert(working).reduce(2).convert(result)
    shrunk = decoding.shrink(image)
    assert shrunk.mode == whole.mode and shrunk.size == whole.size == (1050, 650)
    assert np.array_equal(np.asarray(shrunk), np.asarray(whole))


def _refuse_to_decode(monkeypatch) -> None:
    def refuse(self):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding(monkeypatch):
    bomb = jpeg_scan_bomb(7000, 2000)
    assert len(bomb) < 400_000
    _refuse_to_decode(monkeypatch)
    with pytest.raises(ImageError, match="a JPEG of more than 100 scans .* it was not decoded"):
        preprocess_file(bomb, name="bomb.jpg")


def test_a_jpeg_of_as_many_scans_as_allowed_is_decoded():
    at_limit = jpeg_scan_bomb(200, images.MAX_JPEG_SCANS)
    assert decoding.jpeg_layout(at_limit, images.MAX_JPEG_SCANS)[0] == images.MAX_JPEG_SCANS
    with pytest.raises(ImageError, match="no digit found"):
        preprocess_file(at_limit, name="blank.jpg")
    with pytest.raises(ImageError, match="more than 100 scans"):
        preprocess_file(jpeg_scan_bomb(200, images.MAX_JPEG_SCANS + 1), name="blank.jpg")


def test_jpeg_scans_are_counted_from_the_markers_only():
    plain = encoded(_photo_image(), "JPEG", quality=85)
    progressive = encoded(_photo_image(), "JPEG", quality=85, progressive=True)
    grey = encoded(_photo_image().convert("L"), "JPEG", progressive=True)
    # Marker-like bytes inside a segment (an EXIF thumbnail, say) are not scans.
    segment = b"\xff\xda" * 500
    hidden = plain[:2] + b"\xff\xe1" + (len(segment) + 2).to_bytes(2, "big") + segment + plain[2:]
    blocks = 40 * 30 + 2 * 20 * 15  # 4:2:0 colour: one full-size channel and two of a quarter
    assert decoding.jpeg_layout(plain, 100) == (1, False, blocks)
    assert decoding.jpeg_layout(hidden, 100) == (1, False, blocks)
    assert decoding.jpeg_layout(progressive, 100) == (10, True, blocks)
    assert decoding.jpeg_layout(grey, 100) == (6, True, 40 * 30)
    assert similarity(preprocess_file(hidden).final, preprocess_file(plain).final) == 1.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: _with_size(encoded(_photo_image(), "JPEG", progressive=True, subsampling=0), 5000, 5000),
            "progressive JPEG of 5000x5000 pixels that would take 143 MB to decode",
        ),
        (lambda: png_file(5200, 5200, 8, 2, None), "PNG image that would take 103 MB to decode"),
        (
            lambda: encoded(Image.new("RGB", (2600, 2600), "white"), "WEBP", quality=10, method=0),
            "WebP image that would take 103 MB to decode",
        ),
    ],
    ids=["progressive-jpeg", "png", "webp"],
)
def test_an_image_that_would_take_too_much_memory_to_decode_is_refused_first(monkeypatch, make, message):
    data = make()
    _refuse_to_decode(monkeypatch)
    with pytest.raises(ImageError, match=re.escape(message) + ".*it was not decoded"):
        preprocess_file(data, name="large")


def test_the_largest_sixteen_bit_png_allowed_is_shrunk_without_a_full_size_float_copy():
    side = 6000  # 72 MB decoded: under the limit; as float32 at full size it took 144 MB more
    grey = np.asarray(_photo_image().convert("L").resize((side, side // 4 * 3)), dtype=np.uint16) * 257
    result = preprocess_file(encoded(Image.fromarray(grey), "PNG"))
    assert "16-bit grey scaled to 8 bits" in result.notes
    assert max(result.decoded.shape[:2]) == images.WORK_SIDE


def test_exif_orientation_is_applied_after_a_large_image_is_shrunk(reference):
    upright = _photo_image().resize((2560, 1920), Image.Resampling.NEAREST)
    exif = Image.Exif()
    exif[0x0112] = 6
    result = preprocess_file(encoded(upright.transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif.tobytes()))
    assert "rotated upright as its EXIF orientation (6) says" in result.notes
    assert result.decoded.shape[:2] == (384, 512)
    assert similarity(result.final, reference) > 0.9


def _with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (any start-of-frame marker) claims width x height."""
    start = next(jpeg.index(marker) for marker in (b"\xff\xc0", b"\xff\xc2") if marker in jpeg)
    return jpeg[: start + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[start + 9 :]


def test_format_is_recognised_by_content_not_by_name():
    result = preprocess_file(encoded(_photo_image(), "PNG"), name="scan.jpg")
    assert result.format == "PNG"


def test_cmyk_and_sixteen_bit_are_converted_with_a_note():
    assert "CMYK converted to RGB" in preprocess_file(encoded(_photo_image().convert("CMYK"), "JPEG")).notes
    assert "16-bit grey scaled to 8 bits" in preprocess_file(encoded(_sixteen_bit(), "PNG")).notes


def test_transparent_export_is_composited_onto_a_contrasting_background(reference):
    result = preprocess_file(encoded(_with_alpha("RGBA")))
    assert "transparent background: composited onto white" in result.notes
    assert result.decoded[0, 0].tolist() == [255, 255, 255]
    assert similarity(result.final, reference) > 0.95


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(reference, orientation):
    upright = _photo_image()
    stored = upright.transpose(
        {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = preprocess_file(encoded(stored, "JPEG", quality=90, exif=exif.tobytes()))
    assert any("EXIF orientation" in note for note in result.notes)
    assert result.decoded.shape[:2] == (240, 320)
    assert similarity(result.final, reference) > 0.9


def test_phone_size_jpeg_is_decoded_at_reduced_size(reference):
    photo = Image.fromarray(paper_photo(seven(), size=(400, 300), at=(60, 160))).resize((4000, 3000))
    result = preprocess_file(encoded(photo, "JPEG", quality=85))
    assert "decoded at reduced size 1000x750 from 4000x3000" in result.notes
    assert max(result.decoded.shape[:2]) == images.WORK_SIDE
    assert similarity(result.final, reference) > 0.9


def test_multi_picture_jpeg_uses_the_first_picture(reference):
    blank = Image.new("RGB", (320, 240), "white")
    result = preprocess_file(encoded(_photo_image(), "MPO", save_all=True, append_images=[blank]))
    assert result.format == "JPEG"
    assert "multi-picture JPEG (MPO): used the first frame" in result.notes
    assert similarity(result.final, reference) > 0.9


def test_tiny_8x8_image_is_read():
    tiny = np.full((8, 8), 230, dtype=np.uint8)
    tiny[1:7, 4] = 20  # a 1
    result = preprocess_file(encoded(tiny))
    rows = np.flatnonzero(result.final.max(axis=1))
    cols = np.flatnonzero(result.final.max(axis=0))
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 <= 10


# Canvas drawings


@pytest.mark.parametrize(
    ("stroke", "background", "under_transparent"),
    [
        ((255, 255, 255), None, "stroke"),  # white strokes on a transparent canvas
        ((0, 0, 0), None, "black"),  # black strokes on a transparent canvas whose RGB is black
        ((200, 30, 30), None, "black"),  # red strokes, same
        ((20, 40, 200), (250, 240, 120), None),  # blue strokes on an opaque yellow canvas
        ((0, 0, 0), (255, 255, 255), None),  # black on white
    ],
)
def test_canvas_strokes_in_any_colour_give_the_clean_digit(reference, stroke, background, under_transparent):
    coverage = canvas_of(seven())[..., 0].astype(np.float32) / 255
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    if background is None:
        rgba[..., :3] = stroke if under_transparent == "stroke" else 0
        rgba[coverage > 0, :3] = stroke
        rgba[..., 3] = np.round(coverage * 255).astype(np.uint8)
    else:
        mixed = np.array(background) * (1 - coverage[..., None]) + np.array(stroke) * coverage[..., None]
        rgba[..., :3] = np.round(mixed).astype(np.uint8)
        rgba[..., 3] = 255
    result = preprocess_canvas(rgba)
    assert result.format == "canvas"
    assert similarity(result.final, reference) > 0.95


@pytest.mark.parametrize(
    "canvas",
    [
        np.zeros((280, 280, 4), dtype=np.uint8),  # untouched transparent canvas
        np.full((280, 280, 4), 255, dtype=np.uint8),  # untouched white canvas
    ],
    ids=["transparent", "white"],
)
def test_empty_canvas_says_no_digit(canvas):
    with pytest.raises(ImageError, match="no digit found in the canvas"):
        preprocess_canvas(canvas)


@pytest.mark.parametrize(
    "canvas",
    [
        np.zeros((280, 280, 4), dtype=np.float32),
        np.zeros((280, 280), dtype=np.uint8),
        np.zeros((280, 280, 5), dtype=np.uint8),
        [[0, 0, 0, 0]],
    ],
    ids=["float", "grey", "five-channels", "list"],
)
def test_canvas_of_the_wrong_type_or_shape_is_refused(canvas):
    with pytest.raises(ImageError, match=r"uint8 array shaped \(height, width, 4\)"):
        preprocess_canvas(canvas)


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=options.pop("format", "PNG"), **options)
    return buffer.getvalue()


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_a_canvas_png_export_reads_like_its_pixels_at_any_screen_density(reference, scale):
    drawing = Image.fromarray(canvas_of(seven())).resize((280 * scale, 280 * scale), Image.Resampling.NEAREST)
    result = preprocess_drawing(png_bytes(drawing), (280, 280))
    assert similarity(result.final, reference) > 0.95


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (png_bytes(Image.new("RGBA", (300, 280))), "the drawing is 300x280 pixels; the canvas is 280x280"),
        (png_bytes(Image.new("RGBA", (1400, 1400))), "the drawing is 1400x1400 pixels"),
        (png_bytes(Image.new("RGB", (280, 280)), format="TIFF"), "not a readable PNG"),
        (png_bytes(Image.new("RGB", (280, 280)), format="GIF"), "not a readable PNG"),
        (png_bytes(Image.new("RGB", (280, 280)), format="JPEG"), "not a readable PNG"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 280 280\n", "not a readable PNG"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a readable PNG"),
        (bytes(2 * 1024 * 1024), "at most 1,048,576 bytes; got 2,097,152 bytes"),
        ("data:image/png;base64,", "got str"),
    ],
    ids=["wrong-size", "too-large", "tiff", "gif", "jpeg", "eps", "truncated", "over-a-megabyte", "text"],
)
def test_a_drawing_that_is_not_the_canvass_png_is_refused(data, message):
    with pytest.raises(ImageError, match=re.escape(message)):
        preprocess_drawing(data, (280, 280))


# Bad files: the corpus

CORPUS_EXPECTATIONS = {
    "empty.png": "is empty (0 bytes)",
    "random-bytes.png": "is not an image in a format we read",
    "truncated.png": "damaged or truncated PNG",
    "truncated.jpg": "damaged or truncated JPEG",
    "corrupt-checksum.png": "damaged or truncated PNG",
    "text.png": "is a text file, not an image",
    "document.png": "is a PDF document, not an image",
    "drawing.png": "is an SVG drawing",
    "page.png": "is an HTML page, not an image",
    "archive.png": "is an archive, not an image",
    "bomb.png": "decompression bomb",
    "over-pixel-cap.png": "80 megapixels), over the limit of 50 megapixels",
    "huge-header.gif": "decompression bomb",
    "tiny.png": "only 5x5 pixels, too small",
    "absurd-aspect.png": "too elongated to be one digit",
    "blank.png": "no digit found",
    "uniform-grey.jpg": "no digit found",
    "blank-paper.jpg": "no digit found",
}


@pytest.mark.parametrize(("name", "message"), sorted(CORPUS_EXPECTATIONS.items()))
def test_bad_file_is_refused_with_a_specific_message(name, message):
    with pytest.raises(ImageError) as raised:
        preprocess_file((CORPUS / name).read_bytes(), name=name)
    text = str(raised.value)
    assert message in text
    assert text.startswith(name) or f"in {name}:" in text
    # Every refusal also says what would be accepted.
    assert "Accepted: PNG, JPEG, BMP, GIF or WebP" in text or "Show one dark digit" in text


def test_every_corpus_file_has_an_expectation():
    files = {path.name for path in CORPUS.iterdir() if path.suffix != ".py"}
    assert files == set(CORPUS_EXPECTATIONS) | {"animated.gif"}


def test_animated_gif_uses_its_first_frame(reference):
    result = preprocess_file((CORPUS / "animated.gif").read_bytes(), name="animated.gif")
    assert "animated GIF: used the first frame" in result.notes
    # The first frame holds a 7 drawn as two straight strokes; the later frames are blank.
    assert result.final.max() == 255 and similarity(result.final, reference) > 0.6


def test_pixel_cap_is_checked_from_the_header_before_decoding(monkeypatch):
    def refuse_to_decode(self):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    with pytest.raises(ImageError, match="over the limit of 50 megapixels"):
        preprocess_file((CORPUS / "over-pixel-cap.png").read_bytes(), name="over-pixel-cap.png")


class CountingStream(io.RawIOBase):
    """An endless binary stream of zeros that counts the bytes read from it."""

    def __init__(self):
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = bytes(len(buffer))
        self.bytes_read += len(buffer)
        return len(buffer)


def test_oversized_upload_is_refused_after_reading_just_past_the_limit():
    stream = CountingStream()
    with pytest.raises(ImageError, match="larger than 10 MB"):
        preprocess_file(stream, name="huge.png")
    assert stream.bytes_read <= images.MAX_BYTES + io.DEFAULT_BUFFER_SIZE


def test_file_object_is_read_and_its_name_used_in_messages():
    upload = io.BytesIO(b"")
    upload.name = "upload.png"
    with pytest.raises(ImageError, match="^upload.png is empty"):
        preprocess_file(upload)
    assert preprocess_file(io.BytesIO(encoded(_photo_image()))).format == "PNG"


def test_text_mode_file_is_refused(tmp_path):
    path = tmp_path / "digit.png"
    path.write_bytes(encoded(_photo_image()))
    with open(path) as text_file, pytest.raises(ImageError, match="binary mode"):
        preprocess_file(text_file)


def _mutations(data: bytes, rng: np.random.Generator, count: int):
    """Truncations, flipped bytes and overwritten headers of a valid file."""
    for _ in range(count):
        kind = rng.integers(3)
        mutated = bytearray(data)
        if kind == 0:
            mutated = mutated[: int(rng.integers(1, len(data)))]
        elif kind == 1:
            for position in rng.integers(0, len(data), int(rng.integers(1, 20))):
                mutated[position] = int(rng.integers(256))
        else:
            for position in rng.integers(0, min(64, len(data)), 4):
                mutated[position] = int(rng.integers(256))
        yield bytes(mutated)


@pytest.mark.parametrize("format_name", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_damaged_files_only_ever_raise_image_error(format_name):
    small = Image.fromarray(paper_photo(seven(height=40, pen=4), size=(64, 64), at=(10, 20)))
    data = encoded(small if format_name != "GIF" else small.convert("P"), format_name)
    rng = np.random.default_rng(len(format_name))
    for mutated in _mutations(data, rng, 60):
        with contextlib.suppress(ImageError):
            preprocess_file(mutated, name="damaged")


def test_process_is_healthy_after_the_whole_corpus(reference):
    for path in CORPUS.iterdir():
        if path.suffix != ".py":
            with contextlib.suppress(ImageError):
                preprocess_file(path.read_bytes(), name=path.name)
    assert similarity(preprocess_file(encoded(_photo_image())).final, reference) > 0.9


# Internals with a reference


def _flood_fill_components(cells: np.ndarray) -> list[set[tuple[int, int]]]:
    """8-connected components by plain flood fill: the slow, obvious way."""
    unseen = {tuple(index) for index in np.argwhere(cells)}
    components = []
    while unseen:
        stack = [unseen.pop()]
        component = set(stack)
        while stack:
            row, col = stack.pop()
            for neighbour in [(row + dr, col + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]:
                if neighbour in unseen:
                    unseen.remove(neighbour)
                    component.add(neighbour)
                    stack.append(neighbour)
        components.append(component)
    return components


def test_components_are_eight_connected_as_a_flood_fill_finds_them():
    rng = np.random.default_rng(0)
    for _ in range(100):
        cells = rng.random((int(rng.integers(1, 25)), int(rng.integers(1, 25)))) < rng.uniform(0.1, 0.7)
        labels, count = segmentation.components(cells)
        found = [{tuple(index) for index in np.argwhere(labels == label)} for label in range(1, count + 1)]
        assert sorted(map(sorted, found)) == sorted(map(sorted, _flood_fill_components(cells)))
        assert ((labels > 0) == cells).all()
