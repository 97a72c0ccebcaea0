"""Loading MNIST from wherever the user keeps it, checked before anything trusts it.

Sources, in order: an explicit path or ``$MNIST_DATA`` (a Keras-layout ``mnist.npz`` or a folder
with the four IDX files, gzipped or not), the Keras download cache, and finally Keras' own
download. Every array is validated (shape, dtype, label range, matching counts) and any problem is
raised as :class:`DataError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_model import config

IMAGE_SIZE = 28
NUM_CLASSES = 10

# IDX magic numbers: unsigned bytes with three dimensions (images) or one (labels).
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801

# The names of the four IDX files; Kaggle-style copies use a dot before "idx".
_IDX_STEMS = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}

_HOW_TO_SUPPLY = (
    "Download mnist.npz (Keras layout) or the four IDX files and set the environment variable "
    f"{config.DATA_ENV} to the .npz file or to the folder holding the IDX files."
)


class DataError(Exception):
    """MNIST could not be found or what was found is not MNIST; the message says which and why.

    The message names files on the machine that loads the data; :attr:`public` is what a visitor
    of a server is told instead.
    """

    public = (
        "The server has no usable copy of the MNIST data (it is missing, unreadable or not MNIST), so no model "
        f"can be trained or evaluated. Whoever runs the server can point {config.DATA_ENV} at a copy of "
        "mnist.npz, or at a folder of its IDX files, and restart it; the server log names the file and what "
        "was wrong."
    )


@dataclass(frozen=True)
class MnistData:
    """The four MNIST arrays, read-only.

    train_images: uint8 (60000, 28, 28); train_labels: uint8 (60000,);
    test_images: uint8 (10000, 28, 28); test_labels: uint8 (10000,).
    source: where they were read from; fingerprint: see :func:`fingerprint`.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    fingerprint: str

    def __iter__(self):
        """Unpack like Keras: ``train_images, train_labels, test_images, test_labels = data``."""
        return iter((self.train_images, self.train_labels, self.test_images, self.test_labels))


def as_model_input(images: np.ndarray) -> np.ndarray:
    """float32 in [0, 1], as the models take images, from uint8 (0-255) or float (0-1) ones of any shape."""
    array = np.asarray(images)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    raise ValueError(f"images must be uint8 (0-255) or float (0-1); got dtype {array.dtype}.")


def load_mnist(path: str | os.PathLike | None = None) -> MnistData:
    """Load and validate MNIST.

    path: a Keras-layout ``.npz`` file or a folder of IDX files. Without it, ``$MNIST_DATA``, then
    the Keras cache, then Keras' download are tried. Results are kept in memory per source, so
    repeated calls are free; the arrays are read-only.

    Raises DataError when nothing can be found or what was found is not valid MNIST; its message
    names the file, says what is wrong and how to supply a good copy.
    """
    try:
        return _load(path)
    except DataError as error:
        if _HOW_TO_SUPPLY in str(error):
            raise
        raise DataError(f"{error} {_HOW_TO_SUPPLY}") from error


def _load(path: str | os.PathLike | None) -> MnistData:
    if path is None:
        path = config.configured_data_path()
        if path is None:
            cached = config.keras_cache_file()
            return _load_npz_cached(cached) if cached.is_file() else _download()
        if not Path(path).exists():
            raise DataError(f"{config.DATA_ENV} points to {path}, which does not exist. {_HOW_TO_SUPPLY}")
    path = Path(path).expanduser()
    if path.is_dir():
        return _load_idx_cached(path.resolve())
    if path.is_file():
        return _load_npz_cached(path.resolve())
    raise DataError(f"{path} does not exist. {_HOW_TO_SUPPLY}")


def fingerprint(*arrays: np.ndarray) -> str:
    """A stable short hash of the arrays' shapes, dtypes and bytes, for cache keys (16 hex digits)."""
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _load_npz_cached(path: Path) -> MnistData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise DataError(
                    f"{path} is not a Keras-layout mnist.npz: it lacks {', '.join(sorted(missing))} "
                    "(expected arrays x_train, y_train, x_test, y_test)."
                )
            arrays = {name: archive[name] for name in ("x_train", "y_train", "x_test", "y_test")}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} could not be read as an .npz archive ({error}). {_HOW_TO_SUPPLY}") from error
    return _validated(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(path))


@functools.lru_cache(maxsize=4)
def _load_idx_cached(folder: Path) -> MnistData:
    arrays = {}
    for name, stems in _IDX_STEMS.items():
        candidates = [folder / (stem + suffix) for stem in stems for suffix in (".gz", "")]
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            raise DataError(
                f"{folder} has no {stems[0]} file (plain or .gz); a folder of IDX files needs "
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
                "t10k-labels-idx1-ubyte."
            )
        expected_magic = _IDX_IMAGES_MAGIC if name.endswith("images") else _IDX_LABELS_MAGIC
        arrays[name] = read_idx(found, expected_magic)
    return _validated(
        arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"], str(folder)
    )


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array shaped as its header says."""
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as stream:
            content = stream.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path} could not be read ({error}).") from error
    if len(content) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(content)} bytes).")
    magic = int.from_bytes(content[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{path} has IDX magic number {magic:#010x}; expected {expected_magic:#010x}.")
    num_dims = magic & 0xFF
    header_size = 4 + 4 * num_dims
    if len(content) < header_size:
        raise DataError(f"{path} is truncated inside its header.")
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(num_dims))
    expected_size = header_size + int(np.prod(shape))
    if len(content) != expected_size:
        raise DataError(
            f"{path} holds {len(content)} bytes but its header {shape} needs {expected_size}: "
            "the file is truncated or corrupt."
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def _validated(train_images, train_labels, test_images, test_labels, source: str) -> MnistData:
    """Check dtypes, shapes, matching counts and label range; return read-only arrays."""
    for split, images, labels in (("training", train_images, train_labels), ("test", test_images, test_labels)):
        for what, array in (("images", images), ("labels", labels)):
            if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
                dtype = getattr(array, "dtype", type(array).__name__)
                raise DataError(f"{source}: the {split} {what} have dtype {dtype}; MNIST is uint8.")
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(images) == 0:
            raise DataError(f"{source}: the {split} images have shape {images.shape}; expected (n, 28, 28), n > 0.")
        if labels.shape != (len(images),):
            raise DataError(
                f"{source}: {len(images)} {split} images but {split} labels of shape {labels.shape}; "
                "every image needs one label."
            )
        if labels.max() >= NUM_CLASSES:
            raise DataError(f"{source}: the {split} labels include {labels.max()}; labels must be 0-9.")
    arrays = [np.ascontiguousarray(array) for array in (train_images, train_labels, test_images, test_labels)]
    for array in arrays:
        array.setflags(write=False)
    return MnistData(*arrays, source=source, fingerprint=fingerprint(*arrays))


def from_arrays(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    source: str = "arrays",
) -> MnistData:
    """Wrap arrays already in memory (uint8 images (n, 28, 28), uint8 labels (n,)) as validated data."""
    return _validated(train_images, train_labels, test_images, test_labels, source)


def _download() -> MnistData:
    from tensorflow import keras  # Imported late: TensorFlow is slow to import.

    try:
        (train_images, train_labels), (test_images, test_labels) = keras.datasets.mnist.load_data()
    except Exception as error:  # Keras raises assorted network and file errors here.
        raise DataError(
            f"MNIST is not on this machine and could not be downloaded ({error}). {_HOW_TO_SUPPLY}"
        ) from error
    return _validated(train_images, train_labels, test_images, test_labels, str(config.keras_cache_file()))
