"""Ink and paper: from a photo's luminance to a map of its ink, white on black as MNIST is.

A robust quadratic surface is fitted to the paper (so uneven lighting and grey paper do not
matter) and subtracted; the polarity is decided from which side of the paper the ink lies; the ink
is then thresholded (Otsu's method, bounded by the ink's own contrast) and scaled to [0, 1].
"""

from __future__ import annotations

import math

import numpy as np

from mnist_model.images.decoding import ImageError

# The smallest ink-to-paper contrast, as a fraction of the full grey range, taken as a digit.
MIN_CONTRAST = 0.08


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


def ink_map(luminance: np.ndarray, notes: list[str], label: str) -> np.ndarray:
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
