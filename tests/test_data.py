import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from mnist_model import data
from mnist_model.data import DataError, load_mnist

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x800 | array.ndim
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in array.shape) + array.tobytes()


def write_idx_folder(folder: Path, arrays: dict, gzipped: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        content = idx_bytes(array)
        if gzipped:
            (folder / (IDX_NAMES[name] + ".gz")).write_bytes(gzip.compress(content))
        else:
            (folder / IDX_NAMES[name]).write_bytes(content)
    return folder


@pytest.fixture
def arrays(small_data):
    return {
        "train_images": np.array(small_data.train_images),
        "train_labels": np.array(small_data.train_labels),
        "test_images": np.array(small_data.test_images),
        "test_labels": np.array(small_data.test_labels),
    }


def write_npz(path: Path, arrays: dict) -> Path:
    np.savez(
        path,
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
    )
    return path


@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_folder_and_npz_give_the_same_arrays(tmp_path, arrays, gzipped):
    from_npz = load_mnist(write_npz(tmp_path / "mnist.npz", arrays))
    from_idx = load_mnist(write_idx_folder(tmp_path / "idx", arrays, gzipped))
    for left, right in zip(from_npz, from_idx, strict=True):
        np.testing.assert_array_equal(left, right)
    assert from_npz.fingerprint == from_idx.fingerprint
    np.testing.assert_array_equal(from_npz.train_images, arrays["train_images"])


def test_environment_variable_names_the_copy(tmp_path, arrays, monkeypatch):
    path = write_npz(tmp_path / "mnist.npz", arrays)
    monkeypatch.setenv("MNIST_DATA", str(path))
    loaded = load_mnist()
    assert loaded.source == str(path.resolve())
    assert not loaded.train_images.flags.writeable


def test_environment_variable_pointing_nowhere_says_how_to_supply_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DATA", str(tmp_path / "absent.npz"))
    with pytest.raises(DataError, match=r"absent\.npz, which does not exist.*MNIST_DATA"):
        load_mnist()


def test_keras_cache_is_used_when_nothing_is_configured(tmp_path, arrays, monkeypatch):
    monkeypatch.delenv("MNIST_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    write_npz(tmp_path / "keras" / "datasets" / "mnist.npz", arrays)
    assert load_mnist().source == str((tmp_path / "keras" / "datasets" / "mnist.npz").resolve())


def test_failed_download_says_how_to_supply_a_local_copy(tmp_path, monkeypatch):
    from tensorflow import keras

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.delenv("MNIST_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(
        DataError, match="could not be downloaded.*network is unreachable.*set the environment variable"
    ):
        load_mnist()


def test_truncated_idx_file_is_named_with_what_is_wrong(tmp_path, arrays):
    folder = write_idx_folder(tmp_path / "idx", arrays, gzipped=False)
    path = folder / IDX_NAMES["train_images"]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte holds .* bytes .* truncated"):
        load_mnist(folder)


def test_truncated_gzip_is_reported_not_crashed(tmp_path, arrays):
    folder = write_idx_folder(tmp_path / "idx", arrays, gzipped=True)
    path = folder / (IDX_NAMES["test_labels"] + ".gz")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist(folder)


def test_images_where_labels_belong_are_refused_by_magic_number(tmp_path, arrays):
    folder = write_idx_folder(tmp_path / "idx", arrays, gzipped=False)
    (folder / IDX_NAMES["train_labels"]).write_bytes(idx_bytes(arrays["train_images"]))
    with pytest.raises(DataError, match="magic number 0x00000803; expected 0x00000801"):
        load_mnist(folder)


def test_missing_idx_file_is_named(tmp_path, arrays):
    folder = write_idx_folder(tmp_path / "idx", arrays, gzipped=True)
    (folder / (IDX_NAMES["test_images"] + ".gz")).unlink()
    with pytest.raises(DataError, match="no t10k-images-idx3-ubyte file"):
        load_mnist(folder)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(train_labels=a["train_labels"][:-1]), "every image needs one label"),
        (lambda a: a.update(test_labels=np.full_like(a["test_labels"], 12)), "labels must be 0-9"),
        (lambda a: a.update(train_images=a["train_images"].astype(np.float32)), "dtype float32; MNIST is uint8"),
        (lambda a: a.update(test_images=a["test_images"][:, :27]), r"expected \(n, 28, 28\)"),
    ],
)
def test_invalid_arrays_are_refused_with_the_reason(tmp_path, arrays, change, message):
    change(arrays)
    with pytest.raises(DataError, match=message):
        load_mnist(write_npz(tmp_path / "bad.npz", arrays))


def test_npz_without_the_keras_arrays_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks x_test, x_train, y_test, y_train"):
        load_mnist(tmp_path / "other.npz")


def test_garbage_file_is_refused(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"not a zip archive at all")
    with pytest.raises(DataError, match="could not be read as an .npz archive"):
        load_mnist(tmp_path / "mnist.npz")


def test_fingerprint_is_stable_and_sees_a_single_pixel(arrays):
    first = data.fingerprint(arrays["train_images"], arrays["train_labels"])
    assert first == data.fingerprint(arrays["train_images"].copy(), arrays["train_labels"].copy())
    changed = arrays["train_images"].copy()
    changed[0, 0, 0] ^= 1
    assert data.fingerprint(changed, arrays["train_labels"]) != first


@pytest.mark.integration
def test_real_copy_has_mnist_shapes_and_matches_its_idx_files(mnist, mnist_path):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_labels.shape == (60000,) and mnist.test_labels.shape == (10000,)
    assert np.bincount(mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    idx_folder = mnist_path if mnist_path.is_dir() else mnist_path.parent
    if not (idx_folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"no IDX files beside {mnist_path} to compare with")
    from_idx = load_mnist(idx_folder)
    for left, right in zip(mnist, from_idx, strict=True):
        np.testing.assert_array_equal(left, right)
