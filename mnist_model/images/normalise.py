"""Normalisation: a cropped digit brought into MNIST's form.

MNIST digits are white on black, scaled to fit a 20x20 box with their aspect ratio kept, and centred
by their centre of mass in a 28x28 frame. Before that, an outlined (hollow) digit is filled, and
strokes thinner or bolder than MNIST's are brought to a width it has.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from mnist_model.data import IMAGE_SIZE
from mnist_model.images.segmentation import components, tight_crop

# MNIST fits each digit into a box this size, keeping its aspect ratio.
DIGIT_BOX = 20
# MNIST's mean centre of mass, in pixel indices of the 28x28 frame (measured on the training set).
MNIST_CENTRE = 14.0

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


def to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)


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
    half = resize(mask.astype(np.float32), max(1, width // 2), max(1, height // 2)) > 0.35
    labels, count = components(np.pad(~half, 1, constant_values=True))
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
        erosions, eroded = 0, tight_crop(hole)
        while eroded.any():
            eroded = _repeat_3x3(eroded, np.minimum, 1)
            erosions += 1
        hole_width = 2 * erosions - 1
        if area >= OUTLINE_BODY_ELONGATION * hole_width**2 and hole_width >= ink_width / 2:
            body |= hole
    if not body.any():
        return np.zeros_like(mask)
    # Back at full resolution, grown by two pixels to meet the outline's lines, never over them.
    return _repeat_3x3(resize(body.astype(np.float32), width, height) > 0.5, np.maximum, 2) & ~mask


def _repeat_3x3(values: np.ndarray, combine: np.ufunc, times: int) -> np.ndarray:
    """A 3x3 maximum (dilation) or minimum (erosion) filter applied ``times`` times (outside is 0):
    one square filter ``2 * times + 1`` wide."""
    if times == 0:
        return values
    extreme = ndimage.maximum_filter if combine is np.maximum else ndimage.minimum_filter
    return extreme(values, size=2 * times + 1, mode="constant", cval=0)


def resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    resized = Image.fromarray(values.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0, 1)


def to_mnist(cropped: np.ndarray, notes: list[str]) -> np.ndarray:
    """uint8 (28, 28): fit the digit into 20x20 keeping its aspect ratio, centre it by mass in 28x28."""
    height, width = cropped.shape
    scale = DIGIT_BOX / max(height, width)
    # Stroke width is judged and corrected at four times the final scale, where one 3x3 dilation
    # widens a stroke by half a final pixel.
    work = resize(cropped, max(1, round(width * 4 * scale)), max(1, round(height * 4 * scale)))
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
    digit = resize(work, digit_width, digit_height)
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
    return to_uint8(final)
