"""The store's bounds and its byte-level saving: least recently used runs go first, kept runs never do."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mnist_model import artifacts
from mnist_model.records import Projection
from mnist_model.settings import TrainingSettings


def planted_entry(root: Path, key: str, size: int, used: float) -> Path:
    """A store entry of ``size`` bytes whose last use is ``used`` (a modification time)."""
    entry = artifacts.runs_dir(root) / key
    entry.mkdir(parents=True)
    (entry / artifacts.MODEL_FILE).write_bytes(b"\0" * size)
    (entry / artifacts.MANIFEST_FILE).write_text("{}")
    os.utime(entry, (used, used))
    return entry


@pytest.fixture
def store(tmp_path: Path) -> Path:
    for number in range(5):
        planted_entry(tmp_path, f"mlp-{number}", 1000, used=1_000_000 + number)
    return tmp_path


def remaining(root: Path) -> list[str]:
    return sorted(entry.name for entry in artifacts.runs_dir(root).iterdir())


def test_prune_deletes_the_least_recently_used_runs_down_to_the_count(store: Path) -> None:
    deleted = artifacts.prune(store, max_runs=3, max_bytes=10**9)
    assert deleted == ["mlp-0", "mlp-1"]
    assert remaining(store) == ["mlp-2", "mlp-3", "mlp-4"]


def test_prune_honours_the_byte_bound(store: Path) -> None:
    artifacts.prune(store, max_runs=100, max_bytes=2500)
    # Each entry holds 1,000 bytes of model and 2 of manifest: two fit under 2,500 bytes.
    assert remaining(store) == ["mlp-3", "mlp-4"]


def test_prune_never_deletes_kept_runs_even_over_the_bound(store: Path) -> None:
    deleted = artifacts.prune(store, max_runs=1, max_bytes=10**9, keep={"mlp-0", "mlp-1"})
    assert deleted == ["mlp-2", "mlp-3", "mlp-4"]
    assert remaining(store) == ["mlp-0", "mlp-1"]


def test_touch_makes_a_run_the_most_recently_used(store: Path) -> None:
    artifacts.touch(store, "mlp-0")
    artifacts.prune(store, max_runs=1, max_bytes=10**9)
    assert remaining(store) == ["mlp-0"]


def test_prune_leaves_a_planted_link_and_its_target_alone(
    store: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "precious.txt").write_text("keep me")
    (artifacts.runs_dir(store) / "mlp-link").symlink_to(elsewhere, target_is_directory=True)
    artifacts.prune(store, max_runs=0, max_bytes=0)
    assert (elsewhere / "precious.txt").read_text() == "keep me"


def test_saving_over_a_planted_link_writes_a_real_folder_and_spares_the_target(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / ".tmp-precious").write_text("keep me")
    (elsewhere / artifacts.MANIFEST_FILE).write_text("keep me too")
    key = "mlp-0123456789abcdef"
    artifacts.runs_dir(tmp_path).mkdir(parents=True)
    (artifacts.runs_dir(tmp_path) / key).symlink_to(elsewhere, target_is_directory=True)
    manifest = {"settings": TrainingSettings().to_dict(), "history": []}
    entry = artifacts.save_run_bytes(tmp_path, key, b"model bytes", manifest)
    assert not entry.is_symlink() and entry.is_dir()
    assert (elsewhere / ".tmp-precious").read_text() == "keep me"
    assert (elsewhere / artifacts.MANIFEST_FILE).read_text() == "keep me too"
    saved = json.loads((entry / artifacts.MANIFEST_FILE).read_text())
    assert saved["key"] == key
    assert saved["model_sha256"] == hashlib.sha256(b"model bytes").hexdigest()


def test_read_run_bytes_refuses_bytes_that_do_not_match_the_manifest(tmp_path: Path) -> None:
    key = "mlp-0123456789abcdef"
    manifest = {
        "settings": TrainingSettings().to_dict(),
        "history": [],
        "test_loss": 0.1,
        "test_accuracy": 0.9,
        "created": "2026-01-01T00:00:00+00:00",
        "train_seconds": 1.0,
    }
    entry = artifacts.save_run_bytes(tmp_path, key, b"not a zip", manifest)
    # Right checksum but not a Keras archive: refused by the archive check.
    assert artifacts.read_run_bytes(tmp_path, key) is None
    (entry / artifacts.MODEL_FILE).write_bytes(b"swapped")
    assert artifacts.read_run_bytes(tmp_path, key) is None


GOOD_MANIFEST = {
    "settings": TrainingSettings(epochs=1).to_dict(),
    "history": [
        {"epoch": 1, "loss": 0.5, "accuracy": 0.9, "val_loss": 0.4, "val_accuracy": 0.91, "seconds": 1.5},
    ],
    "test_loss": 0.3,
    "test_accuracy": 0.92,
    "created": "2026-12-01T21:00:00+00:00",
    "train_seconds": 2.0,
    "temperature": 1.2,
    "data_fingerprint": "0" * 16,
}
KEY = "mlp-0123456789abcdef"


def saved_manifest(root: Path, **changes) -> Path:
    """A store entry as the package writes it, then its manifest changed by ``changes``."""
    entry = artifacts.save_run_bytes(root, KEY, b"a model", GOOD_MANIFEST)
    manifest = json.loads((entry / artifacts.MANIFEST_FILE).read_text())
    (entry / artifacts.MANIFEST_FILE).write_text(json.dumps({**manifest, **changes}))
    return entry


def test_a_manifest_as_written_is_listed_with_its_fields(tmp_path: Path) -> None:
    saved_manifest(tmp_path)
    [record] = artifacts.list_runs(tmp_path)
    assert (record.key, record.test_accuracy, record.created) == (KEY, 0.92, "2026-12-01T21:00:00+00:00")
    assert [vars(epoch) for epoch in record.history] == GOOD_MANIFEST["history"] and record.temperature == 1.2


def test_a_record_is_saved_and_read_back_unchanged(tmp_path: Path) -> None:
    saved_manifest(tmp_path)
    [record] = artifacts.list_runs(tmp_path)
    entry = artifacts.save_run_bytes(tmp_path / "again", KEY, b"a model", record.manifest())
    assert artifacts.read_record(entry) == dataclasses.replace(record, path=entry)


@pytest.mark.parametrize(
    "changes",
    [
        {"created": "\x1b]0;owned\x07\x1b[2J"},  # terminal escapes where a date belongs
        {"created": 20261201},
        {"key": "mlp-0123456789abcdef\x1b[31m"},
        {"key": "mlp-fedcba9876543210"},  # another entry's name
        {"history": ["epoch 1"]},
        {"history": [{"epoch": 1, "loss": "low"}]},
        {"history": [{**GOOD_MANIFEST["history"][0], "loss": float("nan")}]},
        {"history": [{**GOOD_MANIFEST["history"][0], "note": "\x1b[2J"}]},
        {"test_accuracy": True},
        {"versions": ["keras"]},
        {"temperature": 0},  # would divide the logits by zero
        {"temperature": "1.2"},
        {"data_fingerprint": "\x1b[2J"},
    ],
    ids=lambda changes: next(iter(changes)) + ": " + repr(next(iter(changes.values())))[:30],
)
def test_a_malformed_or_planted_manifest_is_not_listed(tmp_path: Path, changes: dict) -> None:
    saved_manifest(tmp_path, **changes)
    assert artifacts.list_runs(tmp_path) == []


def a_projection(method: str = "tsne") -> Projection:
    coordinates = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    explained = (0.3, 0.2) if method == "pca" else None
    return Projection(method, coordinates, layer="dense_2", features=128, explained_variance=explained, seconds=7.5)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_a_map_is_kept_with_its_run_and_read_back_unchanged(tmp_path: Path, method: str) -> None:
    entry = artifacts.save_run_bytes(tmp_path, KEY, b"a model", GOOD_MANIFEST)
    kept = a_projection(method)
    assert artifacts.save_projection(tmp_path, KEY, kept)
    assert sorted(path.name for path in entry.glob("projection-*")) == [
        f"projection-{method}.json",
        f"projection-{method}.npy",
    ]
    read = artifacts.read_projection(tmp_path, KEY, method)
    np.testing.assert_array_equal(read.coordinates, kept.coordinates)
    assert dataclasses.replace(read, coordinates=None) == dataclasses.replace(kept, coordinates=None)
    assert artifacts.read_projection(tmp_path, KEY, "pca" if method == "tsne" else "tsne") is None


def test_a_map_is_not_kept_for_a_run_the_store_does_not_hold(tmp_path: Path) -> None:
    assert not artifacts.save_projection(tmp_path, KEY, a_projection())
    assert not artifacts.runs_dir(tmp_path).exists()


def flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[-1] ^= 1
    path.write_bytes(bytes(content))


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: flip_a_byte(entry / "projection-tsne.npy"),
        lambda entry: (entry / "projection-tsne.npy").unlink(),
        lambda entry: (entry / "projection-tsne.json").write_text("{not json"),
        # The run was trained again under the same key: the map is of the old model.
        lambda entry: artifacts.save_run_bytes(entry.parent.parent, KEY, b"another model", GOOD_MANIFEST),
    ],
    ids=["coordinates changed", "coordinates gone", "description unreadable", "another model"],
)
def test_a_damaged_or_stale_map_is_not_read(tmp_path: Path, damage, caplog: pytest.LogCaptureFixture) -> None:
    entry = artifacts.save_run_bytes(tmp_path, KEY, b"a model", GOOD_MANIFEST)
    artifacts.save_projection(tmp_path, KEY, a_projection())
    damage(entry)
    assert artifacts.read_projection(tmp_path, KEY, "tsne") is None
    assert "will be computed again" in caplog.text


def test_a_map_name_cannot_reach_outside_the_entry(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a projection's name"):
        artifacts.read_projection(tmp_path, KEY, "../../manifest")
