"""Faults: processes killed mid-training and mid-save, corrupted and planted cache entries, storage
that refuses writes, and MNIST missing or corrupt.

Kills are real SIGKILLs of a separate training process (:mod:`reliability.worker`). Storage faults
are real where the machine allows: a read-only bind mount and a 200 kB tmpfs in a private mount
namespace; an artifacts path beneath a regular file stands for a folder that is missing and cannot
be created. The checks then look at what the next start does with what was left behind.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import filelock
import numpy as np

from reliability import browser
from reliability.processes import PROJECT_ROOT, Dashboard, storage_wrapper, suite_environment
from reliability.report import SectionResult

KILL_POINTS = {
    "fit": "during training (a third of the way through fit)",
    "model-file": "while the model file is being written (half of it in its temporary file)",
    "model-renamed": "after the model file is in place, before its manifest is written",
    "manifest-file": "while the manifest is written (temporary file complete, not yet renamed)",
}


class _Captured(logging.Handler):
    """Keeps the messages logged while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _worker(root: Path, mode: str, wrapper: list[str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        (wrapper or []) + [sys.executable, "-m", "reliability.worker", str(root), mode],
        cwd=PROJECT_ROOT,
        env=suite_environment(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_at(process: subprocess.Popen, point: str, timeout: float = 300) -> str:
    """Send SIGKILL at ``point``; returns what was happening when it landed."""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        if point == "fit" and line.startswith("progress training"):
            if float(line.split()[2]) >= 0.33:
                process.send_signal(signal.SIGKILL)
                return line.strip()
        elif line.startswith("paused"):
            process.send_signal(signal.SIGKILL)
            return line.strip()
        if time.monotonic() > deadline:
            break
    return "the process ended before the kill point"


def _entry_files(root: Path) -> list[str]:
    runs = root / "runs"
    return sorted(str(path.relative_to(runs)) for path in runs.rglob("*")) if runs.is_dir() else []


def killed_training(scratch: Path) -> SectionResult:
    """SIGKILL at four moments of a training run; the next start must not use what was left half-done."""
    from mnist_model import artifacts
    from mnist_model.training import train
    from reliability.worker import KILL_SETTINGS, small_mnist

    result = SectionResult("Faults: killed during training and saving")
    data = small_mnist()
    key = artifacts.run_key(KILL_SETTINGS, data.fingerprint)
    recovered = 0
    for point, description in KILL_POINTS.items():
        root = scratch / f"kill-{point}"
        shutil.rmtree(root, ignore_errors=True)
        process = _worker(root, point)
        landed = _kill_at(process, point)
        process.wait(timeout=60)
        left = _entry_files(root)
        killed = process.returncode == -signal.SIGKILL
        result.check(f"killed {description}", killed, f"{landed}; left behind: {left}")
        lock = filelock.FileLock(root / "locks" / f"{key}.lock")
        try:
            lock.acquire(timeout=10)
            lock.release()
            free = True
        except filelock.Timeout:
            free = False
        result.check(f"{point}: the dead process's lock is free", free)
        result.check(
            f"{point}: the half-written entry is not loadable", artifacts.load_run(root, key) is None, str(left)
        )
        run = train(KILL_SETTINGS, data=data, artifacts_dir=root)
        loaded = artifacts.load_run(root, key)
        stray = [name for name in _entry_files(root) if "/.tmp-" in name]
        good = not run.from_cache and run.path is not None and loaded is not None and not stray
        recovered += good
        result.check(
            f"{point}: the next start retrains, saves a verified entry and leaves no temporary files",
            good,
            f"from_cache={run.from_cache}, notes={run.notes}, now: {_entry_files(root)}",
        )
        again = train(KILL_SETTINGS, data=data, artifacts_dir=root)
        result.check(f"{point}: the start after that loads it from the cache", again.from_cache)
    result.figures["kills injected (SIGKILL)"] = f"{len(KILL_POINTS)}, recovered cleanly: {recovered}"
    return result


def _small_entry(scratch: Path):
    """A trained small run in a fresh folder; returns (data, settings, root, key)."""
    from mnist_model import artifacts
    from mnist_model.settings import TrainingSettings
    from mnist_model.training import train
    from reliability.worker import small_mnist

    data = small_mnist()
    settings = TrainingSettings(epochs=1, seed=33, validation_size=1000)
    root = scratch / "pristine"
    shutil.rmtree(root, ignore_errors=True)
    train(settings, data=data, artifacts_dir=root)
    return data, settings, root, artifacts.run_key(settings, data.fingerprint)


def _manifest(entry: Path) -> dict:
    return json.loads((entry / "manifest.json").read_text())


def _rewrite_config(model_file: Path, change) -> None:
    """Rewrite config.json inside a .keras archive with ``change(config)``; other members are kept."""
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(model_file, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def _reseal(entry: Path) -> None:
    """Make the manifest's checksum match the (tampered) model file, as an attacker with write access could."""
    from mnist_model import artifacts

    manifest = _manifest(entry)
    manifest["model_sha256"] = artifacts.sha256_of(entry / "model.keras")
    (entry / "manifest.json").write_text(json.dumps(manifest))


def corrupted_entries(scratch: Path) -> SectionResult:
    """Damaged cache entries are detected, reported (log and run notes) and rebuilt."""
    from mnist_model import artifacts
    from mnist_model.training import train

    result = SectionResult("Faults: corrupted cache entries")
    data, settings, pristine, key = _small_entry(scratch)

    def flip_model_byte(entry: Path) -> None:
        content = bytearray((entry / "model.keras").read_bytes())
        content[len(content) // 2] ^= 0x01
        (entry / "model.keras").write_bytes(bytes(content))

    def truncate_manifest(entry: Path) -> None:
        text = (entry / "manifest.json").read_text()
        (entry / "manifest.json").write_text(text[: len(text) // 2])

    def wrong_checksum(entry: Path) -> None:
        manifest = _manifest(entry)
        manifest["model_sha256"] = "0" * 64
        (entry / "manifest.json").write_text(json.dumps(manifest))

    def truncate_model_resealed(entry: Path) -> None:
        content = (entry / "model.keras").read_bytes()
        (entry / "model.keras").write_bytes(content[: len(content) // 3])
        _reseal(entry)

    def garbage_weights_resealed(entry: Path) -> None:
        with zipfile.ZipFile(entry / "model.keras") as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        members["model.weights.h5"] = b"\x89HDF\r\n\x1a\n" + bytes(4096)
        with zipfile.ZipFile(entry / "model.keras", "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)
        _reseal(entry)

    faults = {
        "a model file with a flipped byte": flip_model_byte,
        "a truncated manifest": truncate_manifest,
        "a manifest whose checksum does not match": wrong_checksum,
        "a manifest that is not a JSON object": lambda entry: (entry / "manifest.json").write_text("[1, 2, 3]"),
        "a manifest with a missing field": lambda entry: (entry / "manifest.json").write_text('{"key": "x"}'),
        "the model file missing": lambda entry: (entry / "model.keras").unlink(),
        "a truncated model file with a matching checksum": truncate_model_resealed,
        "garbage weights with a matching checksum": garbage_weights_resealed,
    }
    recovered = 0
    for name, damage in faults.items():
        root = scratch / f"corrupt-{len(result.checks)}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(pristine, root)
        entry = artifacts.runs_dir(root) / key
        damage(entry)
        captured = _Captured()
        logging.getLogger("mnist_model").addHandler(captured)
        try:
            run = train(settings, data=data, artifacts_dir=root)
        except Exception as error:  # noqa: BLE001  (a crash is the failure this looks for)
            result.check(f"{name}: detected and rebuilt", False, f"{type(error).__name__}: {error}")
            continue
        finally:
            logging.getLogger("mnist_model").removeHandler(captured)
        reported = any(key in message or "unusable" in message for message in captured.messages)
        noted = any("retrained" in note for note in run.notes)
        rebuilt = not run.from_cache and artifacts.load_run(root, key) is not None
        good = reported and noted and rebuilt
        recovered += good
        result.check(
            f"{name}: detected, reported and rebuilt",
            good,
            f"log: {captured.messages[:1]}; notes: {run.notes}; rebuilt: {rebuilt}",
        )
    result.figures["corruptions injected"] = f"{len(faults)}, detected and rebuilt: {recovered}"
    return result


PAYLOAD = """
from pathlib import Path
Path({marker!r}).write_text("the planted code ran")
class Payload:
    pass
"""


def planted_models(scratch: Path) -> SectionResult:
    """Model files that would run code on load are refused before Keras sees them; nothing runs."""
    import keras

    from mnist_model import artifacts
    from mnist_model.training import train

    result = SectionResult("Faults: planted model files")
    data, settings, pristine, key = _small_entry(scratch)
    marker = scratch / "PLANTED-CODE-RAN"
    marker.unlink(missing_ok=True)
    modules = scratch / "planted-modules"
    modules.mkdir(exist_ok=True)
    for module in ("reliability_payload", "keras_payload"):
        (modules / f"{module}.py").write_text(PAYLOAD.format(marker=str(marker)))
    sys.path.insert(0, str(modules))

    def lambda_model(entry: Path) -> None:
        def payload(tensor):
            Path(str(marker)).write_text("the planted lambda ran")
            return tensor

        model = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Flatten(), keras.layers.Lambda(payload)])
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.save(entry / "model.keras")
        _reseal(entry)

    def layer_module(module: str, class_name: str):
        def change(config: dict) -> None:
            layer = config["config"]["layers"][-1]
            layer["module"], layer["class_name"] = module, class_name
            if module.startswith("keras.src"):
                layer["config"] = {"name": "lambda", "function": {"class_name": "__lambda__", "config": {}}}

        def plant(entry: Path) -> None:
            _rewrite_config(entry / "model.keras", change)
            _reseal(entry)

        return plant

    def registered(entry: Path) -> None:
        def change(config: dict) -> None:
            config["config"]["layers"][-1]["registered_name"] = "reliability_payload>Payload"

        _rewrite_config(entry / "model.keras", change)
        _reseal(entry)

    def activation_function(entry: Path) -> None:
        def change(config: dict) -> None:
            config["config"]["layers"][-1]["config"]["activation"] = {
                "module": "builtins",
                "class_name": "function",
                "config": "exec",
                "registered_name": "exec",
            }

        _rewrite_config(entry / "model.keras", change)
        _reseal(entry)

    def module_less_function(entry: Path) -> None:
        def change(config: dict) -> None:
            config["config"]["layers"][-1]["config"]["activation"] = {
                "class_name": "__lambda__",
                "config": {"code": f"open({str(marker)!r}, 'w').write('ran')", "defaults": None, "closure": None},
            }

        _rewrite_config(entry / "model.keras", change)
        _reseal(entry)

    def not_an_archive(entry: Path) -> None:
        (entry / "model.keras").write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n" + bytes(64))
        _reseal(entry)

    plants = {
        "a Keras Lambda layer holding Python code": lambda_model,
        "a layer naming an arbitrary module": layer_module("reliability_payload", "Payload"),
        "a layer naming a module that only starts with 'keras'": layer_module("keras_payload", "Payload"),
        "a Lambda layer named through Keras' private module path": layer_module(
            "keras.src.layers.core.lambda_layer", "Lambda"
        ),
        "a custom registered object": registered,
        "an activation that names a built-in function": activation_function,
        "an activation serialised as a Python function, naming no module": module_less_function,
        "a pickle instead of a Keras archive": not_an_archive,
    }
    refused = 0
    try:
        for name, plant in plants.items():
            root = scratch / f"planted-{len(result.checks)}"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(pristine, root)
            entry = artifacts.runs_dir(root) / key
            plant(entry)
            # Building a model runs its layers once (the planted Lambda too): only loading counts.
            marker.unlink(missing_ok=True)
            try:
                artifacts.check_model_file(entry / "model.keras")
                caught = "passed the allow-list check"
            except artifacts.UnsafeModelError as error:
                caught = f"refused: {error}"
            loaded = artifacts.load_run(root, key)
            run = train(settings, data=data, artifacts_dir=root)
            good = caught.startswith("refused") and loaded is None and not run.from_cache and not marker.exists()
            refused += good
            result.check(f"{name}: refused, nothing ran, rebuilt", good, f"{caught[:200]}; marker: {marker.exists()}")
            marker.unlink(missing_ok=True)
    finally:
        sys.path.remove(str(modules))
    result.figures["planted model files"] = f"{len(plants)}, refused before loading: {refused}"
    return result


def unwritable_storage_in_process(scratch: Path) -> SectionResult:
    """An artifacts folder that is missing and cannot be created: training still returns a usable run."""
    from mnist_model.predict import Predictor
    from mnist_model.settings import TrainingSettings
    from mnist_model.training import train
    from reliability.worker import small_mnist

    result = SectionResult("Faults: artifacts folder missing and not creatable")
    scratch.mkdir(parents=True, exist_ok=True)
    blocker = scratch / "a-regular-file"
    blocker.write_text("the artifacts folder would have to be inside this file")
    data = small_mnist()
    run = train(
        TrainingSettings(epochs=1, seed=44, validation_size=1000), data=data, artifacts_dir=blocker / "artifacts"
    )
    digit = Predictor(run.model).predict_digit(data.test_images[0])[0]
    result.check("training returns a run kept in memory", run.path is None, f"path={run.path}")
    result.check("with a clear warning", any("kept in memory only" in note for note in run.notes), str(run.notes))
    result.check("the in-memory model predicts", digit == int(data.test_labels[0]), f"predicted {digit}")
    return result


def storage_in_worker(scratch: Path, kind: str) -> SectionResult:
    """Training in a process whose artifacts folder is read-only or full (a real mount, see above)."""
    result = SectionResult(f"Faults: artifacts folder {kind} (package)")
    root = scratch / f"storage-{kind}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    process = _worker(root, "plain", storage_wrapper(kind, root))
    output, errors = process.communicate(timeout=600)
    lines = [line for line in output.splitlines() if line.startswith("result ")]
    record = json.loads(lines[-1][len("result ") :]) if lines else {}
    result.check("training finished", process.returncode == 0 and bool(record), errors[-800:])
    result.check("the run is kept in memory", record.get("path") is None, str(record))
    result.check(
        "with a clear warning",
        any("kept in memory only" in note or "could not be saved" in note for note in record.get("notes", [])),
        str(record.get("notes")),
    )
    result.check("no traceback", "Traceback" not in errors, errors[-800:])
    result.check("nothing half-written is left in the folder", not _entry_files(root), str(_entry_files(root)))
    return result


def storage_dashboard(scratch: Path, page, kind: str) -> SectionResult:
    """The dashboard on a read-only, full, or uncreatable artifacts folder: it warns, trains and serves."""
    result = SectionResult(f"Faults: dashboard with its artifacts folder {kind}")
    folder = scratch / f"dashboard-{kind}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    wrapper = None
    artifacts_path = folder
    if kind == "uncreatable":
        (folder / "file").write_text("not a folder")
        artifacts_path = folder / "file" / "artifacts"
    else:
        wrapper = storage_wrapper(kind, folder)
    with Dashboard(artifacts_path, scratch / f"dashboard-{kind}.log", wrapper=wrapper) as dashboard:
        page.goto(f"{dashboard.url}/predict")
        digit = browser.wait_for_metric(page, "Predicted digit", timeout=300)
        warnings = page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()
        result.check("the Predict page serves a prediction", digit is not None, f"digit {digit}")
        result.check(
            "and shows a clear warning that the model is kept in memory",
            any("kept in memory only" in warning for warning in warnings),
            str(warnings)[:400],
        )
        result.check("trained exactly once", len(dashboard.training_runs()) == 1, str(dashboard.training_runs()))
        result.check("no traceback in the server log", dashboard.tracebacks() == 0, dashboard.log_text()[-1500:])
    return result


def broken_mnist(scratch: Path, page) -> SectionResult:
    """MNIST missing or corrupt: every page says so and how to supply it, without naming the server's files
    (the log has them), and the server stays up."""
    result = SectionResult("Faults: MNIST missing or corrupt")
    scratch.mkdir(parents=True, exist_ok=True)
    corrupt = scratch / "corrupt-mnist.npz"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    wrong = scratch / "wrong-arrays.npz"
    np.savez(wrong, x_train=np.zeros((10, 28, 28), np.uint8))
    cases = {
        "missing": scratch / "no-such-folder" / "mnist.npz",
        "corrupt": corrupt,
        "not MNIST": wrong,
    }
    for name, path in cases.items():
        with Dashboard(
            scratch / f"mnist-{name.replace(' ', '-')}", scratch / f"mnist-{name}.log", MNIST_DATA=str(path)
        ) as dash:
            for page_path in ("", "/predict", "/training"):
                page.goto(f"{dash.url}{page_path}")
                alert = page.locator('[data-testid="stAlertContentError"]')
                try:
                    alert.first.wait_for(timeout=120_000)
                    text = alert.first.inner_text()
                except Exception as error:  # noqa: BLE001  (no message at all is the failure)
                    text = f"no error message shown ({error})"
                says_how = "MNIST_DATA" in text and "MNIST" in text
                result.check(
                    f"{name} MNIST, page '{page_path or '/'}': a message saying how to supply it", says_how, text[:300]
                )
                result.check(
                    f"{name} MNIST, page '{page_path or '/'}': no file of the server named on the page",
                    str(scratch) not in page.locator("body").inner_text(),
                    text[:300],
                )
            result.check(f"{name} MNIST: the server is still up", dash.healthy())
            result.check(f"{name} MNIST: no traceback in the log", dash.tracebacks() == 0, dash.log_text()[-1000:])
            result.check(f"{name} MNIST: the server log names the file", str(path) in dash.log_text(), str(path))
    return result
