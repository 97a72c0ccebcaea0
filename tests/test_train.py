import json
import os
import subprocess
import sys
import threading
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


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda entry: _flip_byte(entry / "model.keras"), "checksum"),
        (lambda entry: (entry / "manifest.json").write_text('{"settings": {"epo'), "manifest"),
        (lambda entry: (entry / "manifest.json").unlink(), "partial"),
        (lambda entry: _set_checksum(entry, "0" * 64), "checksum"),
        (lambda entry: (entry / "model.keras").write_bytes(b""), "empty model"),
    ],
)
def test_damaged_entry_is_detected_and_retrained(small_data, artifacts_dir, count_fits, damage, why):
    first = train(QUICK, data=small_data)
    damage(first.path)
    second = train(QUICK, data=small_data)
    assert len(count_fits) == 2, why
    assert not second.from_cache
    assert any("retrained" in note for note in second.notes)
    third = train(QUICK, data=small_data)
    assert third.from_cache and len(count_fits) == 2


def _flip_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def _set_checksum(entry: Path, value: str) -> None:
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["model_sha256"] = value
    (entry / "manifest.json").write_text(json.dumps(manifest))


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


def test_planted_model_that_would_run_code_is_refused(tmp_path):
    from tensorflow import keras

    marker = tmp_path / "ran"

    def payload(x, marker=str(marker)):
        __import__("pathlib").Path(marker).write_text("ran")
        return x

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Lambda(payload)])
    marker.unlink(missing_ok=True)
    path = tmp_path / "planted.keras"
    model.save(path)
    marker.unlink(missing_ok=True)
    with pytest.raises(artifacts.UnsafeModelError, match="Lambda layer"):
        artifacts.load_model_file(path)
    assert not marker.exists()


def _name_module(config: dict, module: str) -> None:
    config["config"]["layers"][1]["module"] = module


def _lambda_activation(config: dict) -> None:
    # A serialised Python function: Keras writes no module for it.
    config["config"]["layers"][-1]["config"]["activation"] = {
        "class_name": "__lambda__",
        "config": {"code": "print('ran')", "defaults": None, "closure": None},
    }


@pytest.mark.parametrize(
    ("plant", "match"),
    [
        (lambda config: _name_module(config, "os"), "module 'os'"),
        (lambda config: _name_module(config, "keras.src.layers.core.lambda_layer"), "module 'keras.src"),
        (_lambda_activation, "'__lambda__' object that names no module"),
    ],
    ids=["another module", "a private Keras module", "a module-less lambda"],
)
def test_model_config_naming_code_outside_the_allowed_modules_is_refused(
    tmp_path, small_data, artifacts_dir, plant, match
):
    import zipfile

    run = train(QUICK, data=small_data)
    planted = tmp_path / "planted.keras"
    with zipfile.ZipFile(run.model_file) as source, zipfile.ZipFile(planted, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "config.json":
                config = json.loads(content)
                plant(config)
                content = json.dumps(config).encode()
            target.writestr(item, content)
    with pytest.raises(artifacts.UnsafeModelError, match=match):
        artifacts.load_model_file(planted)


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
