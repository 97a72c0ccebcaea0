"""The on-disk cache of trained runs: atomic saves, verified loads, a cross-process lock, a listing.

Each run lives in ``<artifacts>/runs/<architecture>-<key>/`` as ``model.keras`` plus
``manifest.json`` (settings, history, test metrics, the model file's SHA-256, library versions).
The manifest is written last, so an entry without one was never finished. Before a model is loaded
its checksum is verified and its configuration is checked to name only Keras' own layers; then
Keras loads it in ``safe_mode``. Anything that fails a check is reported and treated as absent.

A run's maps of the test set (see :mod:`mnist_model.projection`) are kept in its entry too, as
``projection-<method>.npy`` (the coordinates) and ``projection-<method>.json`` (what they are, their
SHA-256 and that of the model they were computed from), written in that order. A map whose files do
not match each other or the entry's model is treated as absent, and computed again.

Listing runs needs no TensorFlow, so an interface can show what is cached while TensorFlow loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import filelock
import numpy as np

from mnist_model import config
from mnist_model.records import EpochRecord, Projection
from mnist_model.settings import TrainingSettings

if TYPE_CHECKING:
    from tensorflow import keras

log = logging.getLogger(__name__)

# Bumped whenever the layout of an entry or the meaning of its contents changes (2: the model's
# probabilities are calibrated, and the manifest holds the temperature; 3: "cnn" is the strided
# three-convolution network).
FORMAT_VERSION = 3
MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"

# The only layer classes a cached model may contain: the ones this package builds (classifiers and
# the digit detector).
ALLOWED_LAYERS = frozenset(
    {
        "Sequential",
        "InputLayer",
        "Flatten",
        "Reshape",
        "Dense",
        "Conv2D",
        "MaxPooling2D",
        "Dropout",
    }
)

# The only modules a cached model's configuration may name: Keras' public namespaces for what this
# package builds. Private paths such as keras.src.layers.core.lambda_layer would reach any class
# while bypassing the layer allow-list above.
ALLOWED_MODULES = frozenset(
    {
        "keras",
        "keras.layers",
        "keras.initializers",
        "keras.regularizers",
        "keras.constraints",
        "keras.activations",
        "keras.optimizers",
        "keras.optimizers.schedules",
        "keras.losses",
        "keras.metrics",
    }
)

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


class UnsafeModelError(Exception):
    """A model file names code outside Keras' own layers, or is not a Keras model file at all."""


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """A training run: what produced it and how it did, as its cache entry's manifest keeps it.

    :class:`mnist_model.training.TrainedRun` is this record with its model.
    """

    key: str
    settings: TrainingSettings
    history: list[EpochRecord]
    test_loss: float
    test_accuracy: float
    created: str
    train_seconds: float
    # Folded into the model's last layer; 1.0 for a run trained before calibration existed.
    temperature: float = 1.0
    # The MNIST copy it was trained on (see MnistData.fingerprint); "" when a manifest does not say.
    data_fingerprint: str = ""
    # The cache entry, or None for a run that was not saved.
    path: Path | None = None
    # The versions its model file depends on, as written on saving (see versions()).
    versions: dict = field(default_factory=dict)

    @property
    def model_file(self) -> Path | None:
        return self.path / MODEL_FILE if self.path else None

    def manifest(self) -> dict:
        """What the cache stores beside the model; :func:`save_run_bytes` adds the key, the versions
        and the model file's checksum."""
        return {
            "settings": self.settings.to_dict(),
            "history": [dataclasses.asdict(epoch) for epoch in self.history],
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "created": self.created,
            "train_seconds": self.train_seconds,
            "temperature": self.temperature,
            "data_fingerprint": self.data_fingerprint,
        }


def versions() -> dict:
    """The versions that a cached model depends on, read without importing TensorFlow."""
    return {
        "tensorflow": _installed_version("tensorflow", "tensorflow-cpu"),
        "keras": _installed_version("keras"),
        "format": FORMAT_VERSION,
    }


def _installed_version(*distributions: str) -> str:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def run_key(settings: TrainingSettings, data_fingerprint: str) -> str:
    """The cache key: a hash of the settings, the data fingerprint and the library versions."""
    identity = json.dumps(
        {"settings": settings.to_dict(), "data": data_fingerprint, "versions": versions()}, sort_keys=True
    )
    return f"{settings.architecture}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runs_dir(root: Path) -> Path:
    return Path(root) / "runs"


@contextlib.contextmanager
def run_lock(root: Path, key: str) -> Iterator[None]:
    """Hold the lock for one key: across processes through a lock file, and across threads.

    Where the artifacts folder cannot hold a lock file (read-only, missing and not creatable), only
    the threads of this process are serialised.
    """
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(key, threading.Lock())
    with thread_lock:
        lock_dir = Path(root) / "locks"
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            file_lock = filelock.FileLock(lock_dir / f"{key}.lock")
            file_lock.acquire()
        except OSError as error:
            log.warning("cannot lock %s across processes (%s); locking within this process only", lock_dir, error)
            yield
            return
        try:
            yield
        finally:
            file_lock.release()


def save_run(root: Path, key: str, model: keras.Model, manifest: dict) -> Path:
    """Write the model and its manifest atomically; returns the entry's folder. Raises OSError.

    Call it holding :func:`run_lock` for ``key``.
    """
    return save_run_bytes(root, key, model_to_bytes(model), manifest)


def save_run_bytes(root: Path, key: str, model_file: bytes, manifest: dict) -> Path:
    """Write a serialised ``.keras`` model and its manifest atomically; returns the entry's folder.

    The model may have been trained on another machine: only its bytes travel. Call it holding
    :func:`run_lock` for ``key``. Raises OSError.
    """
    entry = runs_dir(root) / key
    # A planted link must not make the clean-up below delete files elsewhere.
    if entry.is_symlink():
        entry.unlink()
    entry.mkdir(parents=True, exist_ok=True)
    (entry / MANIFEST_FILE).unlink(missing_ok=True)
    # Temporary files left by a process killed while saving; the caller holds this key's lock, so
    # no other writer is using them.
    for leftover in entry.glob(".tmp-*"):
        leftover.unlink(missing_ok=True)
    model_tmp = _temporary_path(entry, ".keras")
    try:
        model_tmp.write_bytes(model_file)
        _fsync(model_tmp)
        os.replace(model_tmp, entry / MODEL_FILE)
    finally:
        model_tmp.unlink(missing_ok=True)
    manifest = {
        **manifest,
        "model_sha256": hashlib.sha256(model_file).hexdigest(),
        "versions": versions(),
        "key": key,
    }
    _write_atomically(entry / MANIFEST_FILE, json.dumps(manifest, indent=2))
    return entry


def model_to_bytes(model: keras.Model) -> bytes:
    """The model as the bytes of a ``.keras`` file."""
    with tempfile.TemporaryDirectory(prefix="mnist-model-") as folder:
        path = Path(folder) / MODEL_FILE
        model.save(path)
        return path.read_bytes()


def load_run(root: Path, key: str) -> tuple[keras.Model, RunRecord] | None:
    """The cached model and record for ``key``, or None when absent or failing any check (logged)."""
    found = read_run_bytes(root, key)
    if found is None:
        return None
    model_file, record = found
    try:
        model = load_model_bytes(model_file)
    except (OSError, ValueError, UnsafeModelError) as error:
        log.warning("cached run %s is unusable and will be rebuilt: %s", record.path, error)
        return None
    return model, record


def read_run_bytes(root: Path, key: str) -> tuple[bytes, RunRecord] | None:
    """The cached model file's bytes and record for ``key``, verified, or None (logged).

    The file is read once; the checksum and the layer allow-list are checked on those bytes, so
    what is checked is what gets loaded.
    """
    entry = runs_dir(root) / key
    if not (entry / MANIFEST_FILE).exists():
        return None
    try:
        record = read_record(entry)
        model_file = record.model_file.read_bytes()
        if hashlib.sha256(model_file).hexdigest() != record_manifest(entry)["model_sha256"]:
            raise ValueError("the model file's checksum does not match its manifest")
        check_model_file(io.BytesIO(model_file), label=str(record.model_file))
    except (OSError, ValueError, KeyError, TypeError, UnsafeModelError) as error:
        log.warning("cached run %s is unusable and will be rebuilt: %s", entry, error)
        return None
    return model_file, record


def load_model_bytes(model_file: bytes) -> keras.Model:
    """Load a ``.keras`` file's bytes after checking that they name only this package's layer types.

    Keras loads from a path, so the checked bytes are written to a private temporary folder first.
    """
    from tensorflow import keras

    check_model_file(io.BytesIO(model_file))
    with tempfile.TemporaryDirectory(prefix="mnist-model-") as folder:
        path = Path(folder) / MODEL_FILE
        path.write_bytes(model_file)
        return keras.models.load_model(path, compile=False, safe_mode=True)


def load_model_file(path: Path) -> keras.Model:
    """Load a Keras model file after checking that it names only this package's layer types."""
    return load_model_bytes(Path(path).read_bytes())


def check_model_file(source: Path | BinaryIO, *, label: str | None = None) -> None:
    """Raise UnsafeModelError unless ``source`` is a .keras archive whose config uses only allowed layers.

    source: a path or a binary file object. label: how messages name it (the path by default).
    """
    path = label or str(source if isinstance(source, (str, Path)) else "the model file")
    try:
        with zipfile.ZipFile(source) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise UnsafeModelError(f"{path} is not a readable Keras model file ({error})") from error
    for node in _config_nodes(config):
        module, class_name = node.get("module"), node.get("class_name")
        # Keras writes a module for every object this package builds; a node without one (such as
        # {"class_name": "__lambda__"}, a serialised Python function) would be resolved by Keras alone.
        if module is None:
            raise UnsafeModelError(
                f"{path} contains a {class_name!r} object that names no module; only objects of these Keras "
                f"modules are allowed: {', '.join(sorted(ALLOWED_MODULES))}"
            )
        if module not in ALLOWED_MODULES:
            raise UnsafeModelError(
                f"{path} refers to module {module!r}; only these Keras modules are allowed: "
                f"{', '.join(sorted(ALLOWED_MODULES))}"
            )
        if module == "keras.layers" and class_name not in ALLOWED_LAYERS:
            raise UnsafeModelError(f"{path} contains a {class_name} layer, which this package never builds")
        if node.get("registered_name") not in (None, class_name):
            raise UnsafeModelError(f"{path} refers to custom object {node.get('registered_name')!r}")


def read_record(entry: Path) -> RunRecord:
    """The record of the cache entry ``entry``. Raises ValueError (or KeyError, TypeError) for a manifest
    that is not one this package writes: every field is checked here, so a malformed or planted one is
    refused when it is read, never later where a page or a terminal shows it."""
    manifest = record_manifest(entry)
    if manifest.get("key") != entry.name:
        raise ValueError(f"the manifest names run {manifest.get('key')!r}, not its folder's")
    return parse_manifest(manifest, entry)


def parse_manifest(manifest: dict, path: Path | None) -> RunRecord:
    """The record a saved manifest describes (see :func:`save_run_bytes`), every field checked.
    Raises ValueError, KeyError or TypeError for one that this package would not write."""
    key = manifest["key"]
    if not isinstance(key, str) or not re.fullmatch(r"[a-z]+-[0-9a-f]{16}", key):
        raise ValueError(f"{key!r} is not a run's key")
    fingerprint = manifest.get("data_fingerprint", "")
    if not isinstance(fingerprint, str) or not re.fullmatch(r"[0-9a-f]{0,64}", fingerprint):
        raise ValueError(f"{fingerprint!r} is not a data fingerprint")
    created = datetime.fromisoformat(manifest["created"])
    return RunRecord(
        key=key,
        path=path,
        settings=TrainingSettings.from_dict(manifest["settings"]),
        history=[_epoch_row(row) for row in manifest["history"]],
        test_loss=_number(manifest["test_loss"]),
        test_accuracy=_number(manifest["test_accuracy"]),
        created=created.isoformat(timespec="seconds"),
        train_seconds=_number(manifest["train_seconds"]),
        versions={str(name): str(version) for name, version in dict(manifest["versions"]).items()},
        temperature=_temperature(manifest.get("temperature", 1.0)),
        data_fingerprint=fingerprint,
    )


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def _temperature(value) -> float:
    temperature = _number(value)
    if not 0.05 <= temperature <= 20:
        raise ValueError(f"a temperature of {temperature} is outside 0.05 to 20")
    return temperature


def _epoch_row(row: dict) -> EpochRecord:
    """One epoch of a manifest's history: exactly EpochRecord's fields, each a finite number."""
    if not isinstance(row, dict) or set(row) != {column.name for column in dataclasses.fields(EpochRecord)}:
        raise ValueError(f"a history entry has the fields {sorted(row) if isinstance(row, dict) else row!r}")
    return EpochRecord(
        **{name: int(_number(value)) if name == "epoch" else _number(value) for name, value in row.items()}
    )


def record_manifest(entry: Path) -> dict:
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    if not isinstance(manifest, dict):
        raise ValueError("the manifest is not a JSON object")
    return manifest


def list_runs(root: Path | None = None) -> list[RunRecord]:
    """The cached runs (settings, history, test accuracy, date), newest first; unreadable entries are skipped.

    root: the artifacts folder, by default :func:`config.artifacts_dir`.
    """
    records = []
    folder = runs_dir(Path(root) if root is not None else config.artifacts_dir())
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            records.append(read_record(entry))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(records, key=lambda record: record.created, reverse=True)


def touch(root: Path, key: str) -> None:
    """Mark the run ``key`` as just used: :func:`prune` evicts the least recently used runs first."""
    with contextlib.suppress(OSError):
        os.utime(runs_dir(root) / key)


def prune(root: Path, *, max_runs: int, max_bytes: int, keep: set[str] = frozenset()) -> list[str]:
    """Delete the least recently used runs until at most ``max_runs`` and ``max_bytes`` remain.

    keep: keys never deleted (pinned and in-use runs), even when that leaves the store over a bound.
    Returns the deleted keys. Call it holding no run lock: each deletion takes its key's lock.
    """
    folder = runs_dir(root)
    entries = (
        [entry for entry in folder.iterdir() if entry.is_dir() and not entry.is_symlink()] if folder.is_dir() else []
    )
    sizes = {entry: sum(item.stat().st_size for item in entry.iterdir() if item.is_file()) for entry in entries}
    total_runs, total_bytes = len(entries), sum(sizes.values())
    deleted = []
    for entry in sorted(entries, key=lambda entry: entry.stat().st_mtime):
        if total_runs <= max_runs and total_bytes <= max_bytes:
            break
        if entry.name in keep:
            continue
        with run_lock(root, entry.name):
            shutil.rmtree(entry, ignore_errors=True)
        total_runs -= 1
        total_bytes -= sizes[entry]
        deleted.append(entry.name)
        log.info("evicted cached run %s (least recently used)", entry.name)
    return deleted


def _projection_files(root: Path, key: str, method: str) -> tuple[Path, Path]:
    if not re.fullmatch(r"[a-z]+", method):
        raise ValueError(f"{method!r} is not a projection's name")
    entry = runs_dir(root) / key
    return entry / f"projection-{method}.npy", entry / f"projection-{method}.json"


def save_projection(root: Path, key: str, projection: Projection) -> bool:
    """Keep a map of the test set in the entry of the run ``key``, atomically. Returns False, writing
    nothing, when the store has no such entry. Call it holding :func:`run_lock` for ``key``. Raises OSError."""
    entry = runs_dir(root) / key
    if entry.is_symlink() or not (entry / MANIFEST_FILE).is_file():
        return False
    coordinates_file, description_file = _projection_files(root, key, projection.method)
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(projection.coordinates, dtype=np.float32), allow_pickle=False)
    coordinates = buffer.getvalue()
    description_file.unlink(missing_ok=True)
    _write_atomically(coordinates_file, coordinates)
    description = {
        "method": projection.method,
        "layer": projection.layer,
        "features": projection.features,
        "explained_variance": projection.explained_variance,
        "seconds": projection.seconds,
        "coordinates_sha256": hashlib.sha256(coordinates).hexdigest(),
        "model_sha256": record_manifest(entry)["model_sha256"],
        "format": FORMAT_VERSION,
    }
    _write_atomically(description_file, json.dumps(description, indent=2))
    return True


def read_projection(root: Path, key: str, method: str) -> Projection | None:
    """The map of the test set by ``method`` kept with the run ``key``, verified, or None when there is
    none or it fails a check (logged): its files must match each other and the entry's model file."""
    coordinates_file, description_file = _projection_files(root, key, method)
    if not description_file.is_file():
        return None
    try:
        description = json.loads(description_file.read_text())
        coordinates = coordinates_file.read_bytes()
        if description["model_sha256"] != record_manifest(runs_dir(root) / key)["model_sha256"]:
            raise ValueError("it was computed from another model than the entry's")
        if hashlib.sha256(coordinates).hexdigest() != description["coordinates_sha256"]:
            raise ValueError("its coordinates' checksum does not match")
        if description["method"] != method or description["format"] != FORMAT_VERSION:
            raise ValueError("its description is of another map")
        array = np.load(io.BytesIO(coordinates), allow_pickle=False)
        if array.dtype != np.float32 or array.ndim != 2 or array.shape[1] != 2 or not np.isfinite(array).all():
            raise ValueError(f"its coordinates are {array.dtype} {array.shape}, not finite float32 (n, 2)")
        explained = description["explained_variance"]
        return Projection(
            method=method,
            coordinates=array,
            layer=str(description["layer"]),
            features=int(description["features"]),
            explained_variance=None if explained is None else tuple(_number(share) for share in explained),
            seconds=_number(description["seconds"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("the %s map kept with run %s is unusable and will be computed again: %s", method, key, error)
        return None


def _config_nodes(node) -> Iterator[dict]:
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from _config_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _config_nodes(value)


def _temporary_path(folder: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(handle)
    return Path(name)


def _write_atomically(path: Path, content: str | bytes) -> None:
    """Write ``content`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    tmp = _temporary_path(path.parent, path.suffix)
    try:
        tmp.write_bytes(content.encode() if isinstance(content, str) else content)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())
