"""Segmentation: the digit among specks and smudges, or each digit of a number.

Connected components (scipy.ndimage's labelling) are found on a coarse grid of cells, which also
bridges small gaps in a stroke. One digit is the heaviest component with the parts that belong to
it (the detached bar of a 5); a number is two or more glyphs of about the same height side by side
on one line, touching digits cut apart where they meet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Connected components are found on a grid of at most this many cells along the long side.
COMPONENT_GRID = 48
# Numbers are segmented on a finer grid (cells across the long side), so that the narrow gaps
# between neighbouring digits stay open; a row of more digits than this is not read as a number.
NUMBER_GRID = 128
MAX_NUMBER_DIGITS = 8
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def components(cells: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean grid: int32 labels (0 = empty, 1...) and their count."""
    labels, count = ndimage.label(cells, structure=_EIGHT_CONNECTED)
    return labels.astype(np.int32, copy=False), int(count)


def boxes(labels: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Each label's bounding box (top, bottom, left, right), bottom and right exclusive, in label order."""
    return [(rows.start, rows.stop, cols.start, cols.stop) for rows, cols in ndimage.find_objects(labels)]


def crop_digit(ink: np.ndarray, notes: list[str]) -> np.ndarray:
    """float32 (h', w'): the digit's bounding box in ``ink``, with specks and clutter outside it removed.

    Components are found on a coarse grid of cells, which also bridges small gaps in a stroke. The
    main component is the heaviest, with those touching the image border discounted (paper edges,
    shadows); nearby components of some weight join it (a detached bar of a 5 or 7).
    """
    height, width = ink.shape
    cell = max(1, math.ceil(max(height, width) / COMPONENT_GRID))
    grid_height, grid_width = math.ceil(height / cell), math.ceil(width / cell)
    padded = np.zeros((grid_height * cell, grid_width * cell), dtype=np.float32)
    padded[:height, :width] = ink
    mass = padded.reshape(grid_height, cell, grid_width, cell).sum(axis=(1, 3))
    labels, count = components(mass > 0)
    if count > 1:
        masses = np.bincount(labels.ravel(), weights=mass.ravel())[1:]
        found = boxes(labels)
        touches = np.array(
            [
                top == 0 or left == 0 or bottom == grid_height or right == grid_width
                for top, bottom, left, right in found
            ]
        )
        main = int(np.argmax(masses * np.where(touches, 0.3, 1.0)))
        kept = [main]
        top, bottom, left, right = found[main]
        main_extent = max(bottom - top, right - left)
        for index in np.argsort(-masses):
            other_top, other_bottom, other_left, other_right = found[index]
            extent = max(other_bottom - other_top, other_right - other_left)
            # A detached part of a digit (the bar of a 5) is long or heavy; a speck or dot is neither.
            part_like = extent >= 0.3 * main_extent or masses[index] >= 0.3 * masses[main]
            if index == main or masses[index] < 0.05 * masses[main] or not part_like:
                continue
            if touches[index] and not touches[main]:
                continue
            gap = max(other_top - bottom, top - other_bottom, other_left - right, left - other_right, 0)
            if gap <= 0.25 * max(bottom - top, right - left):
                kept.append(int(index))
                top, bottom = min(top, other_top), max(bottom, other_bottom)
                left, right = min(left, other_left), max(right, other_right)
        if len(kept) < count:
            notes.append(f"ignored {count - len(kept)} speck(s) or smudge(s) away from the digit")
        keep_cells = np.isin(labels, np.array(kept) + 1)
        keep = np.repeat(np.repeat(keep_cells, cell, axis=0), cell, axis=1)[:height, :width]
        ink = np.where(keep, ink, 0)
    return tight_crop(ink)


# Whole numbers


@dataclass(frozen=True)
class Row:
    """A number found in an ink map: the whole of it, and each digit, left to right (float32 crops)."""

    whole: np.ndarray
    parts: tuple[np.ndarray, ...]


@dataclass
class _Glyph:
    """Components that stand above one another (a digit and its detached bar), in grid cells."""

    top: int
    bottom: int
    left: int
    right: int
    mass: float
    members: list[int]

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def joins(self, top: int, bottom: int, left: int, right: int) -> bool:
        """Whether a component in that box belongs to this glyph: it shares most of the narrower one's
        columns, is close, and either stands above or below (a detached bar) or is centred within the
        other's columns (a stroke across the other's span), unlike the slanted neighbours of italic digits."""
        shared = min(self.right, right) - max(self.left, left)
        if shared < 0.4 * max(1, min(self.width, right - left)):
            return False
        vertical = min(self.bottom, bottom) - max(self.top, top)  # negative: the gap between them
        if vertical < -0.3 * max(self.height, bottom - top):
            return False  # a speck well below or above
        beside = vertical >= 0.5 * min(self.height, bottom - top)
        centred = self.left <= (left + right) / 2 <= self.right or left <= (self.left + self.right) / 2 <= right
        return not beside or centred

    def add(self, index: int, top: int, bottom: int, left: int, right: int, mass: float) -> None:
        self.top, self.bottom = min(self.top, top), max(self.bottom, bottom)
        self.left, self.right = min(self.left, left), max(self.right, right)
        self.mass += mass
        self.members.append(index)


def number_row(ink: np.ndarray, cell: int | None = None) -> Row | None:
    """The digits of an image that shows a number, or None for an image of one digit.

    A number is two or more glyphs of about the same height side by side on one line, with nothing
    else of weight beside them. Components stacked above one another are one glyph (a 5 and its
    detached bar). A glyph much wider than tall is cut where touching digits meet, at a column of
    little ink in its middle, or else taken apart pixel by pixel (``cell`` 1) in its solid ink if its
    digits only came close. Anything less clear is left to the one-digit reading.
    """
    height, width = ink.shape
    cell = cell or max(1, math.ceil(max(height, width) / NUMBER_GRID))
    grid_height, grid_width = math.ceil(height / cell), math.ceil(width / cell)
    padded = np.zeros((grid_height * cell, grid_width * cell), dtype=np.float32)
    padded[:height, :width] = ink
    mass = padded.reshape(grid_height, cell, grid_width, cell).sum(axis=(1, 3))
    columns, rows = np.flatnonzero(mass.any(axis=0)), np.flatnonzero(mass.any(axis=1))
    if len(columns) == 0:
        return None
    # The common case, and a quick way out: ink in every column of a box narrower than tall is one digit.
    if len(columns) == columns[-1] - columns[0] + 1 and len(columns) < 0.9 * (rows[-1] - rows[0] + 1):
        return None
    labels, count = components(mass > 0)
    masses = np.bincount(labels.ravel(), weights=mass.ravel(), minlength=count + 1)[1:]
    found = boxes(labels)
    glyphs: list[_Glyph] = []
    for index in np.argsort(-masses, kind="stable"):
        box = found[index]
        top, bottom, left, right = box
        touches = top == 0 or left == 0 or bottom == grid_height or right == grid_width
        # A paper edge or shadow runs along the image's length; a digit of a tight crop spans its height.
        frame = touches and max(bottom - top, right - left) >= 0.9 * max(grid_height, grid_width)
        if masses[index] < 0.01 * masses.sum() or frame:
            continue
        joined = next((glyph for glyph in glyphs if glyph.joins(*box)), None)
        if joined is None:
            glyphs.append(_Glyph(*box, float(masses[index]), [int(index)]))
        else:
            joined.add(int(index), *box, float(masses[index]))
    if not glyphs:
        return None
    tallest = max(glyph.height for glyph in glyphs)
    digits = sorted((glyph for glyph in glyphs if glyph.height >= 0.45 * tallest), key=lambda glyph: glyph.left)
    typical_mass = float(np.median([glyph.mass for glyph in digits]))
    for glyph in glyphs:
        # Specks, dots and dashes are short; something taller and of weight is no digit of the row.
        if glyph not in digits and glyph.height >= 0.3 * tallest and glyph.mass >= 0.3 * typical_mass:
            return None
    reference = max(digits, key=lambda glyph: glyph.height)
    for earlier, later in zip(digits[:-1], digits[1:], strict=True):
        gap = later.left - earlier.right
        if gap > 1.5 * tallest:
            return None  # too far apart to be one number
        aligned = min(abs(earlier.top - later.top), abs(earlier.bottom - later.bottom)) <= 0.12 * tallest
        if 0 <= gap < 0.07 * tallest and min(earlier.height, later.height) < 0.75 * tallest and not aligned:
            # A short part close beside a tall one, level with neither its top nor its bottom: more
            # likely one digit with a break in a stroke (a 4 whose stem does not meet its bar).
            return None
    for glyph in digits:
        if min(glyph.bottom, reference.bottom) - max(glyph.top, reference.top) < 0.5 * glyph.height:
            return None  # not on one line

    def ink_of(glyphs: list[_Glyph]) -> np.ndarray:
        cells = np.isin(labels, np.array([member for glyph in glyphs for member in glyph.members]) + 1)
        keep = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height, :width]
        return tight_crop(np.where(keep, ink, 0))

    parts = []
    for glyph in digits:
        glyph_ink = ink_of([glyph])
        # Touching digits: a lone glyph much wider than tall, or a glyph of a row a little wider than tall.
        wide = (1.2 if len(digits) == 1 else 0.8) * glyph.height * cell
        columns = glyph_ink.sum(axis=0)
        cuts = _touching_cuts(columns, wide, 0.8 * glyph.height * cell)
        # Digits that only came close, apart in their solid ink though blur or the grid joined them.
        solid = np.where(glyph_ink >= 0.5, glyph_ink, 0)
        apart = number_row(solid, cell=1) if not cuts and cell > 1 and len(columns) > wide else None
        if apart is not None:
            parts.extend(apart.parts)
            continue
        edges = [0, *cuts, len(columns)]
        parts.extend(glyph_ink[:, start:end] for start, end in zip(edges[:-1], edges[1:], strict=True))
    parts = [tight_crop(part) for part in parts if part.any()]
    if not 2 <= len(parts) <= MAX_NUMBER_DIGITS:
        return None
    return Row(whole=ink_of(digits), parts=tuple(parts))


def _touching_cuts(columns: np.ndarray, wide: float, wide_after: float) -> list[int]:
    """Where to cut a glyph of touching digits, given its ink per column; none for one digit.

    A span wider than ``wide`` pixels is cut at the column of least ink in its middle half, if that
    column holds under a quarter of the span's typical column; each side, once cut, is looked at again as a
    span of a row, wider than ``wide_after``.
    """
    typical = float(np.median(columns[columns > 0])) if columns.any() else 0.0

    def cuts(start: int, end: int, wide: float) -> list[int]:
        span = end - start
        if span <= wide:
            return []
        low, high = start + span // 4, end - span // 4
        # The least ink, and of two nearly as thin, the one nearer the middle.
        offsets = np.abs(np.arange(low, high) - (start + end) / 2) / max(1, high - low)
        column = low + int(np.argmin(columns[low:high] + 0.1 * typical * offsets))
        if columns[column] > 0.25 * typical:
            return []
        return [*cuts(start, column, wide_after), column, *cuts(column, end, wide_after)]

    return cuts(0, len(columns), wide)


def tight_crop(values: np.ndarray) -> np.ndarray:
    """The bounding box of the non-zero pixels (empty for an empty picture)."""
    rows, cols = np.flatnonzero(values.any(axis=1)), np.flatnonzero(values.any(axis=0))
    if len(rows) == 0:
        return values[:0, :0]
    return values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
