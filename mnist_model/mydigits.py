"""My digits: images that people say a model misread, each with the digit it really shows, in a folder.

The dashboard's Predict page saves an upload or a drawing here when a person says "the right digit is
N"; its My digits page and ``python -m mnist_model evaluate --images FOLDER`` score models on the set.
A set is a folder holding the images as they arrived (uploads as the original file, drawings as the
canvas's PNG) and ``labels.csv``, one row per image: ``file`` (its name in the folder), ``label``,
``source`` ("upload" or "drawing"), ``predicted`` (the model's answer when it was saved), ``created``
(UTC) and ``name`` (the name the file was uploaded under). Any folder with a ``labels.csv`` of at least
the columns file and label is a set, so one made by hand can be scored too.

Every change is made under a lock file and written atomically (a temporary file renamed over the
old), so saves from several sessions or processes at once never leave a torn CSV. A set is bounded
(:data:`MAX_IMAGES` images, :data:`MAX_SET_BYTES` in all): a save over a bound is refused before
anything is written. An image's file is named by its content, so saving the same image again
relabels it instead of storing it twice.

Scoring (:func:`prepare`, :func:`score`) brings each image into MNIST form exactly as an upload or a
drawing is (:mod:`mnist_model.images`) and compares a model's answers with the labels. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import math
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import filelock
import numpy as np
from PIL import Image

from mnist_model import images

log = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
LOCK_FILE = ".labels.lock"
COLUMNS = ("file", "label", "source", "predicted", "created", "name")
REQUIRED_COLUMNS = ("file", "label")
SOURCES = ("upload", "drawing")
# Bounds of a set that the dashboard writes to: a save that would pass one is refused.
MAX_IMAGES = 1000
MAX_SET_BYTES = 50 * 2**20
# labels.csv is read whole; a set of a million rows would still be far below this.
MAX_LABELS_BYTES = 64 * 2**20
# The uploaded name is kept for people to recognise the image by, at most this long.
MAX_NAME_CHARS = 120
# Seconds to wait for another writer of the same set before giving up.
LOCK_SECONDS = 10.0
# The folder name inside a downloaded zip, so that it unpacks into a set of its own.
ZIP_FOLDER = "my-digits"

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"BM", ".bmp"),
)


class MyDigitsError(ValueError):
    """A set that cannot be read or changed as asked; the message says what is wrong and what is allowed."""


class SetFull(MyDigitsError):
    """Saving would take the set over one of its bounds; nothing was written."""


@dataclass(frozen=True)
class Entry:
    """One image of a set: ``file`` its name in the set's folder, ``label`` the digit it shows (0-9),
    ``source`` "upload" or "drawing", ``predicted`` the model's answer when it was saved (None when not
    recorded), ``created`` when it was saved (UTC, ISO 8601), ``name`` the name it was uploaded under,
    ``size`` its file's bytes."""

    file: str
    label: int
    source: str = "upload"
    predicted: int | None = None
    created: str = ""
    name: str = ""
    size: int = 0

    def row(self) -> dict[str, str]:
        """The entry as a row of ``labels.csv``."""
        predicted = "" if self.predicted is None else str(self.predicted)
        values = (self.file, str(self.label), self.source, predicted, self.created, self.name)
        return dict(zip(COLUMNS, values, strict=True))


@dataclass(frozen=True)
class Problem:
    """A row of ``labels.csv`` that was skipped: its line number and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class DigitSet:
    """A set as read from its folder: the usable entries in the CSV's order, and the rows skipped.

    digest: changes whenever the CSV or the size or time of any listed file does, so that a cache of
    what was computed from the set knows when it is stale.
    """

    folder: Path
    entries: tuple[Entry, ...] = ()
    problems: tuple[Problem, ...] = ()
    digest: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def load(folder: Path | str, *, missing_ok: bool = True) -> DigitSet:
    """The set in ``folder``: every row of its ``labels.csv`` that names an existing image with a digit
    label, and a :class:`Problem` for each row that does not (a bad label or source, a missing or
    unsafe file, a file listed twice, the wrong number of fields).

    missing_ok: a folder or ``labels.csv`` that does not exist is an empty set (as before the first
    save); False makes it an error. Raises MyDigitsError when the folder or the CSV as a whole cannot be
    read: not a folder, not UTF-8 text, too large, or a header without the columns file and label.
    """
    folder = Path(folder)
    labels = folder / LABELS_FILE
    if not folder.exists() or (folder.is_dir() and not labels.exists()):
        if missing_ok:
            return DigitSet(folder)
        if not folder.exists():
            raise MyDigitsError(f"{folder} does not exist.")
        raise MyDigitsError(f"{folder} has no {LABELS_FILE} (a CSV with the columns file and label).")
    if not folder.is_dir():
        raise MyDigitsError(f"{folder} is not a folder.")
    try:
        if labels.stat().st_size > MAX_LABELS_BYTES:
            raise MyDigitsError(f"{labels} is larger than {MAX_LABELS_BYTES // 2**20} MB.")
        raw = labels.read_bytes()
    except OSError as error:
        raise MyDigitsError(f"{labels} cannot be read ({error.strerror or error}).") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MyDigitsError(f"{labels} is not UTF-8 text.") from None
    return _parse(folder, text, hashlib.sha256(raw))


def _parse(folder: Path, text: str, digest) -> DigitSet:
    labels = folder / LABELS_FILE
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        columns = [name.strip().lower() for name in header] if header else []
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            first_line = ",".join(header) if header else ""
            raise MyDigitsError(
                f"{labels} must start with a header naming the columns file and label (and optionally "
                f"{', '.join(COLUMNS[2:])}); its first line is {first_line[:80]!r}."
            )
        root = folder.resolve()
        entries: list[Entry] = []
        problems: list[Problem] = []
        first_seen: dict[str, int] = {}
        for row in reader:
            if not any(field.strip() for field in row):
                continue
            line = reader.line_num
            if len(row) != len(columns):
                problems.append(Problem(line, f"has {len(row)} fields; the header has {len(columns)}"))
                continue
            fields = {name: value.strip() for name, value in zip(columns, row, strict=True)}
            try:
                entry, stat = _entry(root, fields)
            except ValueError as error:
                problems.append(Problem(line, str(error)))
                continue
            if entry.file in first_seen:
                again = f"file {entry.file!r} is listed again (first on line {first_seen[entry.file]})"
                problems.append(Problem(line, again))
                continue
            first_seen[entry.file] = line
            digest.update(f"{entry.file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            entries.append(entry)
    except csv.Error as error:
        raise MyDigitsError(f"{labels}, line {reader.line_num}: not valid CSV ({error}).") from None
    return DigitSet(folder, tuple(entries), tuple(problems), digest.hexdigest()[:16])


def _entry(root: Path, fields: dict[str, str]) -> tuple[Entry, os.stat_result]:
    """One row's entry, and its file's status. Raises ValueError saying what is wrong with the row."""
    file = fields["file"]
    if not file:
        raise ValueError("the file is empty")
    path = (root / file).resolve()
    if "\\" in file or "\0" in file or Path(file).is_absolute() or not path.is_relative_to(root) or path == root:
        raise ValueError(f"file {file!r} is not a name inside the folder")
    try:
        stat = path.stat()
    except OSError:
        raise ValueError(f"file {file!r} does not exist") from None
    if not path.is_file():
        raise ValueError(f"file {file!r} is not a regular file")
    label = _digit(fields["label"])
    if label is None:
        raise ValueError(f"label {fields['label']!r} is not a digit from 0 to 9")
    source = fields.get("source") or "upload"
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not {' or '.join(SOURCES)}")
    predicted = fields.get("predicted", "")
    if predicted and _digit(predicted) is None:
        raise ValueError(f"predicted {predicted!r} is not a digit from 0 to 9")
    entry = Entry(
        file=file,
        label=label,
        source=source,
        predicted=_digit(predicted),
        created=fields.get("created", ""),
        name=_clean_name(fields.get("name", "")),
        size=stat.st_size,
    )
    return entry, stat


def _digit(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[0-9]", text) else None


def _clean_name(name: str) -> str:
    """A file name as uploaded, for display: printable characters only, at most MAX_NAME_CHARS."""
    return "".join(char for char in name if char.isprintable())[:MAX_NAME_CHARS]


def add(
    folder: Path | str,
    data: bytes,
    *,
    name: str,
    label: int,
    source: str,
    predicted: int | None = None,
) -> Entry:
    """Save an image and its label to the set in ``folder`` (created if needed); returns its entry.

    data: the uploaded file's bytes, or the drawing's PNG. name: the name it was uploaded under (for
    display only). label: the digit it shows, 0-9. source: "upload" or "drawing". predicted: the
    model's answer, to keep beside it. The same image saved again replaces its earlier row.
    Raises MyDigitsError for a bad argument or unreadable set, SetFull over a bound (nothing written),
    OSError when the folder cannot be written.
    """
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label <= 9:
        raise MyDigitsError(f"the label must be a digit from 0 to 9; got {label!r}.")
    if predicted is not None and (isinstance(predicted, bool) or not 0 <= int(predicted) <= 9):
        raise MyDigitsError(f"the prediction must be a digit from 0 to 9 or None; got {predicted!r}.")
    if source not in SOURCES:
        raise MyDigitsError(f"the source must be {' or '.join(SOURCES)}; got {source!r}.")
    suffix = _suffix(data, source)
    folder = Path(folder)
    file = hashlib.sha256(data).hexdigest()[:20] + suffix
    entry = Entry(
        file=file,
        label=int(label),
        source=source,
        predicted=None if predicted is None else int(predicted),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        name=_clean_name(name),
        size=len(data),
    )
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        try:
            current = load(folder)
        except MyDigitsError as error:
            log.error("cannot add to my digits: %s", error)
            # The reason names files of the machine; the log has it, the message does not.
            raise MyDigitsError(
                "the set's labels.csv cannot be read, so nothing was saved; clear the set to start again."
            ) from None
        others = [existing for existing in current.entries if existing.file != file]
        if len(others) + 1 > MAX_IMAGES:
            raise SetFull(
                f"My digits holds at most {MAX_IMAGES:,} images and has {len(others):,}; delete some to save more."
            )
        used = sum(existing.size for existing in others)
        if used + len(data) > MAX_SET_BYTES:
            raise SetFull(
                f"My digits holds at most {MAX_SET_BYTES // 2**20} MB of images and has {used / 2**20:.1f} MB; "
                f"this image ({len(data) / 2**20:.1f} MB) does not fit. Delete some to save more."
            )
        if current.problems:
            log.warning("dropping %d unreadable rows of %s: %s", len(current.problems), folder, current.problems[0])
        _write_atomically(folder / file, data)
        _write_labels(folder, [*others, entry])
    return entry


def _suffix(data: bytes, source: str) -> str:
    """The file name's extension, from the content. Raises MyDigitsError for what is not an image of
    a format the preprocessing reads, or is larger than it accepts."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise MyDigitsError("the image is empty.")
    limit = images.MAX_DRAWING_BYTES if source == "drawing" else images.MAX_BYTES
    if len(data) > limit:
        raise MyDigitsError(f"the image is {len(data) / 2**20:.1f} MB; at most {limit / 2**20:g} MB is saved.")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        suffix = ".webp"
    else:
        suffix = next((ending for signature, ending in _SIGNATURES if data.startswith(signature)), None)
    if suffix is None or (source == "drawing" and suffix != ".png"):
        accepted = "a PNG" if source == "drawing" else "a PNG, JPEG, BMP, GIF or WebP image"
        raise MyDigitsError(f"only {accepted} is saved; this is not one.")
    return suffix


def remove(folder: Path | str, file: str) -> None:
    """Delete one image (by its ``file`` name in the set) and its row. Raises MyDigitsError when the set
    has no such image."""
    folder = Path(folder)
    if not (folder / LABELS_FILE).exists():
        raise MyDigitsError(f"my digits has no image {file!r}; it may have been deleted already.")
    with _locked(folder):
        try:
            current = load(folder)
        except MyDigitsError as error:
            log.error("cannot delete from my digits: %s", error)
            # As in add(): the reason names files of the machine, so only the log has it.
            raise MyDigitsError(
                "the set's labels.csv cannot be read, so nothing was deleted; clear the set to start again."
            ) from None
        kept = [entry for entry in current.entries if entry.file != file]
        if len(kept) == len(current.entries):
            raise MyDigitsError(f"my digits has no image {file!r}; it may have been deleted already.")
        _write_labels(folder, kept)
        (folder / file).unlink(missing_ok=True)


def clear(folder: Path | str) -> int:
    """Delete every image the set lists, and its ``labels.csv``; returns how many images were deleted.
    Files the CSV does not list are left alone, and so are all the images when the CSV cannot be read."""
    folder = Path(folder)
    if not (folder / LABELS_FILE).exists():
        return 0
    with _locked(folder):
        try:
            current = load(folder)
        except MyDigitsError:
            current = DigitSet(folder)
        (folder / LABELS_FILE).unlink(missing_ok=True)
        for entry in current.entries:
            (folder / entry.file).unlink(missing_ok=True)
    return len(current.entries)


def read_image(digit_set: DigitSet, entry: Entry) -> bytes:
    """An entry's file. Raises MyDigitsError when it cannot be read."""
    path = digit_set.folder / entry.file
    try:
        return path.read_bytes()
    except OSError as error:
        raise MyDigitsError(f"{path} cannot be read ({error.strerror or error}).") from None


def samples(digit_set: DigitSet) -> list[tuple[bytes, str]]:
    """Each entry's file and source, in order: what :func:`prepare` takes. Raises MyDigitsError."""
    return [(read_image(digit_set, entry), entry.source) for entry in digit_set.entries]


def zip_bytes(folder: Path | str) -> bytes:
    """The set as a zip: ``my-digits/labels.csv`` and every image it lists, beside it. Unpacked, the
    folder is a set again (for ``python -m mnist_model evaluate --images my-digits``)."""
    folder = Path(folder)
    buffer = io.BytesIO()
    with _locked(folder) if folder.is_dir() else contextlib.nullcontext():
        current = load(folder)
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"{ZIP_FOLDER}/{LABELS_FILE}", _labels_text(current.entries), zipfile.ZIP_DEFLATED)
            for entry in current.entries:
                # Image formats are compressed already.
                archive.writestr(f"{ZIP_FOLDER}/{entry.file}", read_image(current, entry), zipfile.ZIP_STORED)
    return buffer.getvalue()


# Scoring


@dataclass(frozen=True)
class Inputs:
    """A set's images in MNIST form, in the set's order.

    finals: uint8 (n, 28, 28), one per image (zeros for a refused one). refusals: for each image, None,
    or why the preprocessing refused it (as :class:`mnist_model.images.ImageError` says).
    """

    finals: np.ndarray
    refusals: tuple[str | None, ...]

    @property
    def accepted(self) -> np.ndarray:
        """bool (n,): which images were brought into MNIST form."""
        return np.array([refusal is None for refusal in self.refusals], dtype=bool)

    @property
    def model_inputs(self) -> np.ndarray:
        """float32 (m, 28, 28) in [0, 1]: the accepted images, ready for the model."""
        return self.finals[self.accepted].astype(np.float32) / 255.0


def prepare_one(data: bytes, source: str) -> images.PreprocessedImage:
    """One saved image in MNIST form, as the Predict page read it: a drawing through the canvas's path
    (a PNG of its own size), anything else as an uploaded file. Raises ImageError."""
    if source != "drawing":
        return images.preprocess_file(data)
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as picture:
            size = picture.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise images.ImageError(f"the drawing is not a readable PNG image ({type(error).__name__}).") from None
    return images.preprocess_drawing(data, size)


def prepare(items: Sequence[tuple[bytes, str]]) -> Inputs:
    """Every image of a set in MNIST form. items: (file bytes, source) pairs, as :func:`samples` gives."""
    finals = np.zeros((len(items), 28, 28), dtype=np.uint8)
    refusals: list[str | None] = []
    for index, (data, source) in enumerate(items):
        try:
            finals[index] = prepare_one(data, source).final
            refusals.append(None)
        except images.ImageError as error:
            refusals.append(str(error))
    return Inputs(finals, tuple(refusals))


@dataclass(frozen=True)
class Result:
    """One image scored: the model's answer and its confidence, or why the image could not be read."""

    entry: Entry
    predicted: int | None
    confidence: float | None
    refusal: str | None = None

    @property
    def correct(self) -> bool:
        return self.predicted == self.entry.label


@dataclass(frozen=True)
class Score:
    """A model on a set: each image's result, in the set's order."""

    results: tuple[Result, ...]

    @property
    def count(self) -> int:
        """Images the model read (refused ones are not counted)."""
        return sum(result.refusal is None for result in self.results)

    @property
    def right(self) -> int:
        return sum(result.correct for result in self.results)

    @property
    def refused(self) -> int:
        return len(self.results) - self.count

    @property
    def accuracy(self) -> float:
        """The share of the read images that the model got right; NaN when none was read."""
        return self.right / self.count if self.count else math.nan

    @property
    def wrong(self) -> tuple[Result, ...]:
        return tuple(result for result in self.results if result.refusal is None and not result.correct)


def score(entries: Sequence[Entry], inputs: Inputs, probabilities: np.ndarray) -> Score:
    """A model's answers on a set compared with its labels.

    entries: the set's entries; inputs: :func:`prepare` of their images; probabilities: float (m, 10),
    the model's probabilities for ``inputs.model_inputs`` (m accepted images).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, 10)
    if len(entries) != len(inputs.refusals) or len(probabilities) != int(inputs.accepted.sum()):
        raise ValueError(
            f"expected {len(inputs.refusals)} entries and {int(inputs.accepted.sum())} rows of probabilities; "
            f"got {len(entries)} and {len(probabilities)}."
        )
    answers = iter(probabilities)
    results = []
    for entry, refusal in zip(entries, inputs.refusals, strict=True):
        if refusal is not None:
            results.append(Result(entry, None, None, refusal))
            continue
        row = next(answers)
        digit = int(row.argmax())
        results.append(Result(entry, digit, float(row[digit])))
    return Score(tuple(results))


# Writing


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the set's lock, across processes and threads. Raises MyDigitsError when another writer
    holds it for longer than LOCK_SECONDS."""
    lock = filelock.FileLock(folder / LOCK_FILE, timeout=LOCK_SECONDS)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise MyDigitsError(f"my digits is being changed elsewhere; try again (waited {LOCK_SECONDS:.0f} s).") from None
    try:
        # Temporary files of a writer that was killed; this one holds the lock, so nobody else uses them.
        for leftover in folder.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)
        yield
    finally:
        lock.release()


def _labels_text(entries: Sequence[Entry]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(entry.row() for entry in entries)
    return buffer.getvalue()


def _write_labels(folder: Path, entries: Sequence[Entry]) -> None:
    _write_atomically(folder / LABELS_FILE, _labels_text(entries).encode())


def _write_atomically(path: Path, data: bytes) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
