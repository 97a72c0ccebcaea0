import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_model import artifacts
from mnist_model import training as train_module
from mnist_model.artifacts import list_runs
from mnist_model.predict import Predictor
from mnist_model.settings import TrainingSettings
from mnist_model.training import TrainingStopped, train

QUICK = TrainingSettings(epochs=2, batch_size=64, validation_size=200, learning_rate=3e-3, augment=False)
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def count_fits(monkeypatch):
    """Counts calls of the real training loop."""
    calls = []
    real_fit = train_module.fit

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_module, "fit", counted)
    return calls


def test_training_records_every_epoch_and_learns(small_data, artifacts_dir):
    reports = []
    run = train(QUICK, data=small_data, progress=reports.append)
    assert [epoch.epoch for epoch in run.history] == [1, 2]
    for epoch in run.history:
        assert 0 <= epoch.accuracy <= 1 and 0 <= epoch.val_accuracy <= 1
        assert epoch.loss > 0 and epoch.val_loss > 0 and epoch.seconds > 0
    assert run.test_accuracy > 0.9  # the generated classes are easy; chance is 0.1
    assert not run.from_cache and run.model_file.is_file()
    fractions = [report.fraction for report in reports]
    assert fractions == sorted(fractions) and reports[-1].phase == "done"
    assert {"loading", "training", "evaluating", "saving", "done"} <= {report.phase for report in reports}


def test_a_run_is_calibrated_and_its_cache_entry_keeps_the_temperature(small_data, artifacts_dir):
    first = train(QUICK, data=small_data)
    second = train(QUICK, data=small_data)
    assert 0.05 < first.temperature < 20 and second.from_cache and second.temperature == first.temperature
    manifest = json.loads((first.path / artifacts.MANIFEST_FILE).read_text())
    assert manifest["temperature"] == first.temperature
    assert list_runs(artifacts_dir)[0].temperature == first.temperature


def test_cached_run_is_loaded_without_training(small_data, artifacts_dir, count_fits):
    first = train(QUICK, data=small_data)
    second = train(QUICK, data=small_data)
    assert len(count_fits) == 1
    assert second.from_cache and second.key == first.key
    assert second.history == first.history and second.test_accuracy == first.test_accuracy
    images = small_data.test_images[:50]
    np.testing.assert_allclose(
        Predictor(second.model).predict(images), Predictor(first.model).predict(images), atol=1e-6
    )


def test_different_settings_or_data_get_different_entries(small_data, artifacts_dir, count_fits):
    train(QUICK, data=small_data)
    train(TrainingSettings(**{**QUICK.to_dict(), "seed": 1}), data=small_data)
    assert len(count_fits) == 2
    assert len(list_runs()) == 2
    assert artifacts.run_key(QUICK, "aaaa") != artifacts.run_key(QUICK, "bbbb")


def _flip_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def _edit_manifest(entry: Path, change) -> None:
    manifest = json.loads((entry / artifacts.MANIFEST_FILE).read_text())
    change(manifest)
    (entry / artifacts.MANIFEST_FILE).write_text(json.dumps(manifest))


def _reseal(entry: Path) -> None:
    """Make the manifest's checksum match the (tampered) model file, as someone with write access could."""
    _edit_manifest(entry, lambda manifest: manifest.update(model_sha256=artifacts.sha256_of(entry / "model.keras")))


def _rewrite_archive(entry: Path, change) -> None:
    """Rewrite the entry's .keras archive: ``change(members)`` edits the dict name -> bytes; then reseal."""
    model_file = entry / "model.keras"
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    with zipfile.ZipFile(model_file, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    _reseal(entry)


def _truncate(path: Path, fraction: float) -> None:
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * fraction)])


def _truncate_resealed(entry: Path) -> None:
    _truncate(entry / "model.keras", 1 / 3)
    _reseal(entry)


def _garbage_weights(members: dict) -> None:
    members["model.weights.h5"] = b"\x89HDF\r\n\x1a\n" + bytes(4096)


# Damage a cache entry can take, from a disk, a crash or a hand: each must be detected, reported and rebuilt.
DAMAGE = {
    "a model file with a flipped byte": lambda entry: _flip_byte(entry / "model.keras"),
    "an empty model file": lambda entry: (entry / "model.keras").write_bytes(b""),
    "the model file missing": lambda entry: (entry / "model.keras").unlink(),
    "the manifest missing": lambda entry: (entry / "manifest.json").unlink(),
    "a truncated manifest": lambda entry: _truncate(entry / "manifest.json", 0.5),
    "a manifest whose checksum does not match": lambda entry: _edit_manifest(
        entry, lambda manifest: manifest.update(model_sha256="0" * 64)
    ),
    "a manifest that is not a JSON object": lambda entry: (entry / "manifest.json").write_text("[1, 2, 3]"),
    "a manifest with a missing field": lambda entry: (entry / "manifest.json").write_text('{"key": "x"}'),
    "a truncated model file with a matching checksum": _truncate_resealed,
    "garbage weights with a matching checksum": lambda entry: _rewrite_archive(entry, _garbage_weights),
}
# An entry without a manifest is one whose saving was cut short: it is rebuilt with a note, but not
# logged as damage, since a save still under way looks the same to a reader.
NOT_LOGGED = {"the manifest missing"}


@pytest.fixture(scope="module")
def pristine(small_data, tmp_path_factory) -> Path:
    """An artifacts folder holding one QUICK run on the small data, to copy and damage."""
    root = tmp_path_factory.mktemp("pristine")
    train(QUICK, data=small_data, artifacts_dir=root)
    return root


def _copy_of(pristine: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the pristine folder, and its one entry."""
    root = tmp_path / "artifacts"
    shutil.copytree(pristine, root)
    (entry,) = artifacts.runs_dir(root).iterdir()
    return root, entry


@pytest.mark.reliability
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_detected_reported_and_rebuilt(damage, small_data, pristine, tmp_path, count_fits, caplog):
    root, entry = _copy_of(pristine, tmp_path)
    DAMAGE[damage](entry)
    with caplog.at_level("WARNING", logger="mnist_model"):
        second = train(QUICK, data=small_data, artifacts_dir=root)
    assert len(count_fits) == 1 and not second.from_cache
    assert any("retrained" in note for note in second.notes), second.notes
    logged = any(entry.name in message and "unusable" in message for message in caplog.messages)
    assert logged or damage in NOT_LOGGED, caplog.messages
    third = train(QUICK, data=small_data, artifacts_dir=root)
    assert third.from_cache and len(count_fits) == 1


def test_stopping_raises_and_caches_nothing(small_data, artifacts_dir):
    stop = threading.Event()

    def stop_midway(progress):
        if progress.phase == "training" and progress.fraction >= 0.25:
            stop.set()

    with pytest.raises(TrainingStopped, match="stopped during epoch 1"):
        train(QUICK, data=small_data, progress=stop_midway, stop=stop)
    assert list_runs() == []


def test_fit_reports_every_tenth_of_an_epoch_and_stops_at_the_next_report(small_data):
    stop = threading.Event()
    reports = []

    def stop_in_second_epoch(progress):
        reports.append(progress)
        if progress.phase == "training" and progress.fraction > 0.6:
            stop.set()

    with pytest.raises(TrainingStopped, match="stopped during epoch 2 of 2"):
        train_module.fit(QUICK, small_data, progress=stop_in_second_epoch, stop=stop)
    assert reports[0].phase == "loading"
    first_epoch = [report for report in reports if report.phase == "training" and report.fraction <= 0.5]
    assert len(first_epoch) >= 10 and first_epoch[-1].fraction == 0.5
    assert [epoch.epoch for epoch in first_epoch[-1].history] == [1]
    # The report that set the flag was the last one: no further steps ran.
    assert reports[-1].fraction > 0.6 and sum(report.fraction > 0.6 for report in reports) == 1


def test_fit_takes_each_batch_of_each_epoch_once_and_reshuffles_every_epoch(small_data, recwarn):
    settings = TrainingSettings(**{**QUICK.to_dict(), "epochs": 3, "batch_size": 96})
    model, history = train_module.fit(settings, small_data)
    # 1000 training images in batches of 96: 10 full batches an epoch, the remainder left out.
    steps_per_epoch = (len(small_data.train_images) - settings.validation_size) // settings.batch_size
    assert int(model.optimizer.iterations.numpy()) == settings.epochs * steps_per_epoch == 30
    assert len(history) == 3
    assert not [warning for warning in recwarn if "ran out of data" in str(warning.message)]
    batches = train_module._EpochBatches(np.arange(1000), small_data.train_labels, 96, 10, seed=5)
    orders = []
    for epoch in range(2):
        batches.on_epoch_begin(epoch)
        pairs = [(index.numpy(), label.numpy()) for index, label in batches.dataset]
        orders.append(np.concatenate([index for index, _ in pairs]))
        np.testing.assert_array_equal(
            np.concatenate([label for _, label in pairs]), small_data.train_labels[orders[-1]]
        )
    assert all(len(order) == 960 and len(set(order)) == 960 for order in orders)
    assert not np.array_equal(orders[0], orders[1])
    batches.on_epoch_begin(0)
    np.testing.assert_array_equal(np.concatenate([index.numpy() for index, _ in batches.dataset]), orders[0])


def test_fit_is_reproducible_from_its_settings(small_data):
    settings = TrainingSettings(**{**QUICK.to_dict(), "augment": True, "seed": 5})
    first_model, first = train_module.fit(settings, small_data)
    second_model, second = train_module.fit(settings, small_data)
    assert [(epoch.loss, epoch.val_loss) for epoch in first] == [(epoch.loss, epoch.val_loss) for epoch in second]
    images = small_data.test_images[:20] / 255.0
    np.testing.assert_array_equal(np.asarray(first_model(images)), np.asarray(second_model(images)))


def test_unwritable_artifacts_path_keeps_the_run_in_memory(small_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = train(QUICK, data=small_data, artifacts_dir=blocker / "artifacts")
    assert run.path is None and any("could not be saved" in note for note in run.notes)


def test_concurrent_requests_in_one_process_train_once(small_data, artifacts_dir, count_fits):
    runs = []
    threads = [threading.Thread(target=lambda: runs.append(train(QUICK, data=small_data))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(count_fits) == 1
    assert sorted(run.from_cache for run in runs) == [False, True, True]


PAYLOAD = """
from pathlib import Path
Path({marker!r}).write_text("the planted code ran")
class Payload:
    pass
"""


def _plant_config(change):
    """A plant that edits the model's config.json (``change(config)``) and reseals the entry."""

    def plant(entry: Path, marker: Path) -> None:
        def rewrite(members: dict) -> None:
            config = json.loads(members["config.json"])
            change(config, marker)
            members["config.json"] = json.dumps(config).encode()

        _rewrite_archive(entry, rewrite)

    return plant


def _lambda_model(entry: Path, marker: Path) -> None:
    from tensorflow import keras

    def payload(tensor, marker=str(marker)):
        __import__("pathlib").Path(marker).write_text("the planted lambda ran")
        return tensor

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Lambda(payload)])
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.save(entry / "model.keras")
    _reseal(entry)


def _layer_module(module: str, class_name: str):
    def change(config: dict, marker: Path) -> None:
        layer = config["config"]["layers"][-1]
        layer["module"], layer["class_name"] = module, class_name
        if module.startswith("keras.src"):
            layer["config"] = {"name": "lambda", "function": {"class_name": "__lambda__", "config": {}}}

    return _plant_config(change)


def _registered(config: dict, marker: Path) -> None:
    config["config"]["layers"][-1]["registered_name"] = "planted_payload>Payload"


def _builtin_activation(config: dict, marker: Path) -> None:
    config["config"]["layers"][-1]["config"]["activation"] = {
        "module": "builtins",
        "class_name": "function",
        "config": "exec",
        "registered_name": "exec",
    }


def _module_less_activation(config: dict, marker: Path) -> None:
    # A serialised Python function: Keras writes no module for it.
    config["config"]["layers"][-1]["config"]["activation"] = {
        "class_name": "__lambda__",
        "config": {"code": f"open({str(marker)!r}, 'w').write('ran')", "defaults": None, "closure": None},
    }


def _pickle(entry: Path, marker: Path) -> None:
    (entry / "model.keras").write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n" + bytes(64))
    _reseal(entry)


# Model files that would run code when Keras loads them, each with what the refusal names. Every one
# is resealed, so the checksum matches: only the allow-list check stands between it and Keras.
PLANTS = {
    "a Keras Lambda layer holding Python code": (_lambda_model, "Lambda layer"),
    "a layer naming an arbitrary module": (_layer_module("planted_payload", "Payload"), "module 'planted_payload'"),
    "a layer naming a module that only starts with 'keras'": (
        _layer_module("keras_payload", "Payload"),
        "module 'keras_payload'",
    ),
    "a layer naming the os module": (_layer_module("os", "system"), "module 'os'"),
    "a Lambda layer named through Keras' private module path": (
        _layer_module("keras.src.layers.core.lambda_layer", "Lambda"),
        "module 'keras.src",
    ),
    "a custom registered object": (_plant_config(_registered), ""),
    "an activation that names a built-in function": (_plant_config(_builtin_activation), ""),
    "an activation serialised as a Python function, naming no module": (
        _plant_config(_module_less_activation),
        "'__lambda__' object that names no module",
    ),
    "a pickle instead of a Keras archive": (_pickle, ""),
}


@pytest.fixture
def payload_modules(tmp_path, monkeypatch) -> Path:
    """Importable modules that would write the returned marker file if a loader imported them."""
    marker = tmp_path / "PLANTED-CODE-RAN"
    modules = tmp_path / "planted-modules"
    modules.mkdir()
    for module in ("planted_payload", "keras_payload"):
        (modules / f"{module}.py").write_text(PAYLOAD.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(modules))
    return marker


@pytest.mark.reliability
@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_model_file_is_refused_before_any_code_runs(plant, pristine, tmp_path, payload_modules):
    root, entry = _copy_of(pristine, tmp_path)
    make, names = PLANTS[plant]
    make(entry, payload_modules)
    # Building the Lambda model runs its layer once: only loading counts.
    payload_modules.unlink(missing_ok=True)
    with pytest.raises(artifacts.UnsafeModelError, match=re.escape(names)):
        artifacts.check_model_file(entry / "model.keras")
    assert artifacts.load_run(root, entry.name) is None
    assert not payload_modules.exists(), "the planted code ran"


def _cli(*arguments: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_model", *arguments], capture_output=True, text=True, env=env, cwd=PROJECT
    )


@pytest.fixture
def small_npz(tmp_path, small_data) -> Path:
    path = tmp_path / "small.npz"
    np.savez(
        path,
        x_train=small_data.train_images,
        y_train=small_data.train_labels,
        x_test=small_data.test_images,
        y_test=small_data.test_labels,
    )
    return path


@pytest.mark.slow
def test_cached_run_is_reused_by_a_new_process(small_npz, tmp_path):
    env = {**os.environ, "MNIST_DATA": str(small_npz), "MNIST_ARTIFACTS": str(tmp_path / "shared")}
    options = ["train", "--json", "--architecture", "mlp", "--epochs", "2", "--validation-size", "200", "--no-augment"]
    options += ["--batch-size", "64"]
    first = json.loads(_cli(*options, env=env).stdout)
    second = json.loads(_cli(*options, env=env).stdout)
    assert (first["from_cache"], second["from_cache"]) == (False, True)
    assert first["test_accuracy"] == second["test_accuracy"]


@pytest.mark.slow
def test_two_processes_asking_at_once_train_once(small_npz, tmp_path):
    env = {**os.environ, "MNIST_DATA": str(small_npz), "MNIST_ARTIFACTS": str(tmp_path / "shared")}
    options = ["train", "--json", "--architecture", "mlp", "--epochs", "3", "--validation-size", "200", "--no-augment"]
    options += ["--batch-size", "32"]
    command = [sys.executable, "-m", "mnist_model", *options]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=PROJECT) for _ in range(2)]
    results = [json.loads(process.communicate(timeout=300)[0]) for process in processes]
    assert sorted(result["from_cache"] for result in results) == [False, True]


MIRRORED_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mnist_model import load_mnist
from mnist_model.settings import TrainingSettings
from mnist_model.training import fit, make_strategy
data = load_mnist(sys.argv[1])
results = {"replicas": make_strategy("mirrored").num_replicas_in_sync}
for strategy in ("mirrored", "default"):
    settings = TrainingSettings(strategy=strategy, epochs=2, batch_size=64, validation_size=200, augment=False)
    model, history = fit(settings, data)
    results[strategy] = {
        "loss": [epoch.loss for epoch in history],
        "probabilities": np.asarray(model(data.test_images[:20] / 255.0)).tolist(),
    }
print(json.dumps(results))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_devices_matches_one_device(small_npz):
    completed = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(small_npz)], capture_output=True, text=True, cwd=PROJECT
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(completed.stdout)
    assert results["replicas"] == 2
    # Each device takes half of every batch and the gradients are summed, so the two runs agree up
    # to floating-point summation order.
    np.testing.assert_allclose(results["mirrored"]["loss"], results["default"]["loss"], rtol=1e-3)
    np.testing.assert_allclose(results["mirrored"]["probabilities"], results["default"]["probabilities"], atol=1e-3)
