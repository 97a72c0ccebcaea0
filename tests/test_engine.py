"""The work engine on a local Ray instance: shared jobs, the queue's bounds, stops, a killed worker, served
results, a driver free of TensorFlow, an address nobody answers, and stopping the local instance.

One local Ray instance serves the module's engine (``ray.init`` happens once per process, and the
engine's detached actors live as long as the instance), with the real MNIST copy and a fresh artifacts
folder. Every training is one epoch of the dense network without augmentation, a few seconds each; each
test trains settings of its own (a distinct seed), so that no test depends on another having run first.
What the engine serves is checked against the same run loaded from the store in this process. Whatever
needs a Ray connection of its own (``Engine.connect`` elsewhere) runs in a new Python process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

# The engine before Ray: importing it keeps a local Ray instance on loopback, a setting that Ray reads
# when it is first imported.
import mnist_model
import mnist_model.engine
import mnist_model.local_ray

# isort: split
import ray

from mnist_model import artifacts, attribution, evaluation, images, projection
from mnist_model.model import describe_layers
from mnist_model.records import JobStatus
from mnist_model.settings import TrainingSettings

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The engine's bounds, left at their defaults here: 8 jobs in all, 1 per session, 2 CPUs per training.
BOUND_VARIABLES = [
    "MNIST_TRAINING_CPUS",
    "MNIST_QUEUE_LIMIT",
    "MNIST_JOBS_PER_SESSION",
    "MNIST_MAX_RUNS",
    "MNIST_MAX_STORE_MB",
]
QUEUE_LIMIT = 8
# Ray's own settings (environment variables read by its C++ core and Python client) that bound how
# long a driver tries to reach a cluster: one attempt, of a few seconds, instead of Ray's default of
# 20 attempts of about 40 s each.
FAST_CONNECT_FAILURE = {
    "RAY_NUM_REDIS_GET_RETRIES": "1",
    "RAY_gcs_rpc_server_connect_timeout_s": "1",
    "RAY_py_gcs_connect_timeout_s": "1",
}

T = TypeVar("T")


def quick(seed: int, epochs: int = 1) -> TrainingSettings:
    """Settings that train in seconds; the seed tells the tests' jobs apart."""
    return TrainingSettings(epochs=epochs, augment=False, seed=seed)


def poll(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """The first value other than None that ``condition`` returns; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


def ended(engine: mnist_model.engine.Engine, settings: TrainingSettings, timeout: float = 180) -> JobStatus:
    """The job for ``settings`` once it has ended."""

    def finished() -> JobStatus | None:
        status = engine.job(settings)
        return status if status is not None and not status.active else None

    return poll(finished, timeout, f"the job for {settings.describe()} to end")


def training_worker_pid(address: str, settings: TrainingSettings) -> int | None:
    """The pid of the Ray worker training ``settings`` on the instance at ``address``, if one is.

    Workers are children of their node's raylet, found by its GCS address, so only this module's
    instance is searched (the machine may run others). A worker running a task takes the task's
    name, ``train <settings>``, as its process title.
    """
    commands: dict[int, list[str]] = {}
    parents: dict[int, int] = {}
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            commands[int(folder.name)] = (folder / "cmdline").read_bytes().decode(errors="replace").split("\0")
            # The parent's pid follows the command name, which is in parentheses and may hold spaces.
            parents[int(folder.name)] = int((folder / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    ours = f"--gcs-address={address}"
    raylets = {pid for pid, command in commands.items() if command[0].endswith("/raylet") and ours in command}
    title = f"ray::train {settings.describe()}"
    return next(
        (pid for pid, parent in parents.items() if parent in raylets and commands[pid][0].strip() == title), None
    )


def run_python(script: str, environment: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``script`` in a new Python process (Ray's connection is per process) from the project folder."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def artifacts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-artifacts")


@pytest.fixture(scope="module")
def engine(mnist_path: Path, artifacts_root: Path) -> mnist_model.engine.Engine:
    """The engine on a local Ray instance of its own, configured from the environment as a server would be."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MNIST_DATA", str(mnist_path))
        patch.setenv("MNIST_ARTIFACTS", str(artifacts_root))
        patch.delenv("RAY_ADDRESS", raising=False)
        for name in BOUND_VARIABLES:
            patch.delenv(name, raising=False)
        # A connection left by another module would make the engine reuse that module's instance.
        if ray.is_initialized():
            ray.shutdown()
        local = mnist_model.engine.LocalCluster()
        connected = mnist_model.engine.Engine.connect(local=local)
        try:
            assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
            yield connected
        finally:
            ray.shutdown()
            local.stop()


@pytest.fixture(scope="module")
def trained(engine: mnist_model.engine.Engine) -> JobStatus:
    """A finished run, for the tests of what the engine serves."""
    settings = quick(seed=50)
    engine.submit(settings)
    status = ended(engine, settings)
    assert status.state == "done", status
    return status


UNREACHABLE_SCRIPT = """
import sys, time
import mnist_model.engine
started = time.monotonic()
try:
    mnist_model.engine.Engine.connect()
except mnist_model.engine.EngineError as error:
    print(f"{time.monotonic() - started:.1f}")
    print(error)
else:
    sys.exit("connected to an address where nothing listens")
"""


@pytest.fixture(scope="module")
def unreachable() -> dict[str, tuple[str, subprocess.Popen, float]]:
    """Engine.connect to a loopback port where nothing listens, in two new processes started at once (they
    mostly wait): ``"bounded"`` with Ray's connect retries bounded to one attempt, ``"defaults"`` with the engine's own
    settings, which a user gets without setting anything."""
    started = {}
    for kind in ("bounded", "defaults"):
        address = f"127.0.0.1:{mnist_model.local_ray.free_port()}"
        environment = {**os.environ, "RAY_ADDRESS": address}
        for name in FAST_CONNECT_FAILURE:
            environment.pop(name, None)
        if kind == "bounded":
            environment.update(FAST_CONNECT_FAILURE)
        process = subprocess.Popen(
            [sys.executable, "-c", UNREACHABLE_SCRIPT],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started[kind] = (address, process, time.monotonic())
    yield started
    for _, process, _ in started.values():
        process.kill()
        process.communicate()


def outcome(process: subprocess.Popen, started: float, within: float) -> tuple[float, str, str]:
    """Seconds until the EngineError, its message and the process's log; fails the test when there was none
    ``within`` seconds of the process's start."""
    try:
        output, errors = process.communicate(timeout=max(started + within - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        pytest.fail(f"Engine.connect gave no answer within {within:.0f} s")
    assert process.returncode == 0, errors[-3000:]
    seconds, message = output.strip().splitlines()[-2:]
    return float(seconds), message, errors


# First in the module, so that the process of the last test (Ray's defaults) waits while the others run.
def test_an_unreachable_address_is_an_engine_error_that_keeps_the_address_to_the_log(unreachable) -> None:
    address, process, started = unreachable["bounded"]
    seconds, message, log = outcome(process, started, within=60)
    assert "cannot be reached" in message and "RAY_ADDRESS" in message
    assert address not in message and address in log
    assert seconds < 20


def test_same_settings_from_two_sessions_share_one_job_and_train_once(engine: mnist_model.engine.Engine) -> None:
    settings = quick(seed=10)
    before = engine.stats()["trainings"]
    first = engine.submit(settings, owner="session-a")
    second = engine.submit(settings, owner="session-b")
    assert first.active and first.job_id
    assert second.job_id == first.job_id
    assert second.owner == "session-a", "the job stays its first owner's"

    finished = ended(engine, settings)
    assert finished.state == "done", finished
    assert engine.stats()["trainings"] == before + 1

    again = engine.submit(settings, owner="session-c")
    assert again.state == "done"
    assert again.key == first.key
    assert engine.stats()["trainings"] == before + 1
    assert [record.key for record in engine.runs()].count(first.key) == 1


def test_queue_bounds_one_running_job_and_queue_positions(engine: mnist_model.engine.Engine) -> None:
    max_running = engine.stats()["max_running"]
    assert max_running == 1, "two cores and two CPUs per training: one job at a time"
    owners = [f"queue-session-{number}" for number in range(QUEUE_LIMIT)]
    # Long enough to stay running (or queued) for the whole test; they are stopped at the end.
    settings = [quick(seed=100 + number, epochs=50) for number in range(QUEUE_LIMIT)]
    submitted: list[JobStatus] = []
    try:
        submitted.append(engine.submit(settings[0], owners[0]))
        assert submitted[0].state == "running"
        with pytest.raises(mnist_model.engine.QueueFull, match="one at a time") as caught:
            engine.submit(quick(seed=150, epochs=50), owners[0])
        assert settings[0].describe() in str(caught.value), "the message names the job the session has"

        for owner, each in zip(owners[1:], settings[1:], strict=True):
            submitted.append(engine.submit(each, owner))
        assert [status.state for status in submitted] == ["running"] + ["queued"] * (QUEUE_LIMIT - 1)
        assert [status.position for status in submitted[1:]] == list(range(1, QUEUE_LIMIT))
        assert engine.stats()["active"] == QUEUE_LIMIT
        with pytest.raises(mnist_model.engine.QueueFull, match=f"queue is full: {QUEUE_LIMIT} jobs"):
            engine.submit(quick(seed=151, epochs=50), "a-late-session")

        for _ in range(10):
            active = [status for status in engine.jobs() if status.active]
            assert len(active) == QUEUE_LIMIT
            assert sum(status.state == "running" for status in active) <= max_running
            queued = [status for status in active if status.state == "queued"]
            assert len(queued) >= QUEUE_LIMIT - max_running
            assert [status.position for status in queued] == list(range(1, len(queued) + 1))
            waits = [status.starts_in for status in queued]
            assert all(wait is not None and wait > 0 for wait in waits), waits
            assert waits == sorted(waits) and len(set(waits)) == len(waits), "later jobs start later"
            time.sleep(0.2)
    finally:
        # Queued jobs first, so that stopping the running one starts none of them.
        for status in reversed(submitted):
            with contextlib.suppress(mnist_model.engine.EngineError):
                engine.stop(status.job_id, status.owner)
        poll(lambda: True if engine.stats()["active"] == 0 else None, 60, "every queue test job to end")
    outcomes = [engine.job(each).state for each in settings]
    assert outcomes == ["stopped"] * QUEUE_LIMIT, outcomes


def test_only_the_owner_stops_a_job_and_a_stopped_run_is_not_stored(
    engine: mnist_model.engine.Engine, artifacts_root: Path
) -> None:
    settings = quick(seed=200, epochs=20)
    started = engine.submit(settings, owner="owner")

    def after_first_epoch() -> JobStatus | None:
        status = engine.job(settings)
        assert status.active, status
        return status if status.progress is not None and status.progress.history else None

    poll(after_first_epoch, 120, "the first epoch")
    trainings = engine.stats()["trainings"]

    waiting_settings = quick(seed=201)
    waiting = engine.submit(waiting_settings, owner="someone else")
    assert (waiting.state, waiting.position) == ("queued", 1)
    with pytest.raises(mnist_model.engine.EngineError, match="Only the session that started"):
        engine.stop(started.job_id, "someone else")
    with pytest.raises(mnist_model.engine.EngineError, match="Only the session that started"):
        engine.stop(started.job_id, None)
    left = engine.stop(waiting.job_id, "someone else")
    assert left.state == "stopped"
    assert waiting.job_id not in [status.job_id for status in engine.jobs() if status.active]
    assert engine.job(waiting_settings).state == "stopped"

    asked = time.monotonic()
    engine.stop(started.job_id, "owner")
    stopped = ended(engine, settings, timeout=60)
    # Training checks for a stop ten times an epoch; a forced cancel would come only after 10 s.
    assert time.monotonic() - asked < 8
    assert stopped.state == "stopped", stopped
    assert stopped.message
    assert len(stopped.progress.history) >= 1, "the epochs finished before the stop are kept"
    assert engine.stats()["trainings"] == trainings, "the queued job never trained"
    assert started.key not in [record.key for record in engine.runs()]
    assert not (artifacts.runs_dir(artifacts_root) / started.key).exists()
    with pytest.raises(mnist_model.engine.EngineError, match="already ended"):
        engine.stop(started.job_id, "owner")


def test_a_killed_training_worker_fails_its_job_and_the_next_submit_trains_again(
    engine: mnist_model.engine.Engine, artifacts_root: Path
) -> None:
    settings = quick(seed=300)
    first = engine.submit(settings, owner="owner")

    def training() -> JobStatus | None:
        status = engine.job(settings)
        assert status.active, status
        return status if status.progress is not None and status.progress.phase == "training" else None

    poll(training, 120, "training to start")
    pid = poll(lambda: training_worker_pid(engine.address, settings), 10, "the training worker's process")
    os.kill(pid, signal.SIGKILL)

    failed = ended(engine, settings, timeout=60)
    assert failed.job_id == first.job_id
    assert failed.state == "failed", failed
    assert "worker stopped" in failed.message
    assert first.key not in [record.key for record in engine.runs()]
    assert not (artifacts.runs_dir(artifacts_root) / first.key).exists()
    assert not list(artifacts_root.rglob(".tmp-*"))

    trainings = engine.stats()["trainings"]
    again = engine.submit(settings, owner="owner")
    assert again.active and again.job_id != first.job_id
    done = ended(engine, settings)
    assert done.state == "done", done
    assert engine.stats()["trainings"] == trainings + 1
    assert first.key in [record.key for record in engine.runs()]
    assert artifacts.read_run_bytes(artifacts_root, first.key) is not None


def test_served_results_agree_with_the_run_loaded_in_this_process(
    engine: mnist_model.engine.Engine, trained: JobStatus, artifacts_root: Path, mnist: mnist_model.MnistData
) -> None:
    model, record = artifacts.load_run(artifacts_root, trained.key)
    test_images, test_labels = engine.test_set()
    np.testing.assert_array_equal(test_images, mnist.test_images)
    np.testing.assert_array_equal(test_labels, mnist.test_labels)

    served = engine.evaluate(trained.key)
    reference = evaluation.evaluate(model, mnist.test_images, mnist.test_labels)
    np.testing.assert_allclose(served.probabilities, reference.probabilities, atol=1e-5)
    assert served.loss == pytest.approx(reference.loss, abs=1e-5)
    assert served.accuracy == pytest.approx(record.test_accuracy, abs=1e-5)
    np.testing.assert_array_equal(served.confusion, reference.confusion)
    np.testing.assert_array_equal(served.misclassified, reference.misclassified)

    batch = mnist.test_images[:32]
    expected = model.predict(batch.astype(np.float32) / 255, verbose=0)
    np.testing.assert_allclose(engine.predict(trained.key, batch), expected, atol=1e-5)
    one = engine.predict(trained.key, batch[0])
    assert one.shape == (10,)
    np.testing.assert_allclose(one, expected[0], atol=1e-5)

    explained, reference_attribution = engine.explain(trained.key, batch[0], 3), attribution.explain(model, batch[0], 3)
    assert explained.digit == 3 and explained.probability == pytest.approx(reference_attribution.probability, abs=1e-5)
    np.testing.assert_allclose(explained.integrated, reference_attribution.integrated, atol=1e-5)
    np.testing.assert_allclose(explained.gradient, reference_attribution.gradient, atol=1e-4)

    assert engine.summary(trained.key) == describe_layers(model)
    weights = engine.weights(trained.key)
    assert list(weights) == [layer.name for layer in model.layers if layer.weights]
    for layer in model.layers:
        for variable in layer.weights:
            np.testing.assert_allclose(weights[layer.name][variable.name], np.asarray(variable), atol=1e-5)


def test_the_map_of_the_test_set_is_computed_once_and_kept_with_the_run(
    engine: mnist_model.engine.Engine, trained: JobStatus, artifacts_root: Path, mnist: mnist_model.MnistData
) -> None:
    model, _ = artifacts.load_run(artifacts_root, trained.key)
    served = engine.projection(trained.key, "pca")
    reference = projection.project(model, mnist.test_images, "pca")
    np.testing.assert_allclose(served.coordinates, reference.coordinates, rtol=1e-4, atol=1e-4)
    assert served.explained_variance == pytest.approx(reference.explained_variance, abs=1e-6)
    assert (served.layer, served.features) == ("dense_2", 128)
    for method, first in (("pca", served), ("tsne", engine.projection(trained.key, "tsne"))):
        assert first.coordinates.shape == (10_000, 2)
        kept = artifacts.read_projection(artifacts_root, trained.key, method)
        np.testing.assert_array_equal(kept.coordinates, first.coordinates)
        # Asked again, it is the map computed the first time, not a new computation.
        assert engine.projection(trained.key, method).seconds == first.seconds == kept.seconds
    with pytest.raises(mnist_model.engine.EngineError, match="no 'umap' map"):
        engine.projection(trained.key, "umap")


def test_a_file_that_is_not_an_image_is_refused_with_a_message(engine: mnist_model.engine.Engine) -> None:
    with pytest.raises(images.ImageError) as caught:
        engine.prepare_file(b"these bytes are a note, not a picture", "note.png")
    assert "note.png" in str(caught.value)


def test_the_driver_never_imports_tensorflow(
    engine: mnist_model.engine.Engine, trained: JobStatus, mnist: mnist_model.MnistData
) -> None:
    script = f"""
import json, sys
import mnist_model.engine
engine = mnist_model.engine.Engine.connect()
test_images, _ = engine.test_set()
probabilities = engine.predict({trained.key!r}, test_images[0])
maps = open("/proc/self/maps").read()
print(json.dumps({{
    "probabilities": probabilities.tolist(),
    "tensorflow_imported": "tensorflow" in sys.modules,
    "tensorflow_loaded": "libtensorflow" in maps,
}}))
"""
    environment = {**os.environ, "RAY_ADDRESS": engine.address}
    result = run_python(script, environment, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tensorflow_imported"] is False
    assert report["tensorflow_loaded"] is False
    np.testing.assert_allclose(report["probabilities"], engine.predict(trained.key, mnist.test_images[0]), atol=1e-6)


def ray_server_pids(address: str) -> set[int]:
    """The pids of the GCS server and raylets of the Ray instance at ``address`` that are still running."""
    ours = {f"--gcs-address={address}", f"--gcs_server_port={address.rsplit(':', 1)[1]}"}
    found = set()
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            command = (folder / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (folder / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        server = command[0].rsplit("/", 1)[-1] in ("gcs_server", "raylet")
        # A process killed but not yet reaped (state Z) has ended.
        if server and ours & set(command) and state != "Z":
            found.add(int(folder.name))
    return found


def test_stopping_a_local_instance_ends_its_servers_well_within_the_grace_period() -> None:
    local = mnist_model.engine.LocalCluster(num_cpus=1)
    address = local.start()
    try:
        servers = poll(lambda: ray_server_pids(address) or None, 30, "the local instance's GCS server and raylet")
        asked = time.monotonic()
        local.stop()
        took = time.monotonic() - asked
    finally:
        local.stop()
    assert not ray_server_pids(address) & servers
    assert took < mnist_model.local_ray.STOP_SECONDS - 1, f"stopping took {took:.1f} s"


class FlakyHead:
    """A stand-in for LocalCluster whose first ``failures`` starts fail as Ray's does under load."""

    starts = 0
    failures = 1

    def __init__(self) -> None:
        self.address: str | None = None

    def start(self) -> str:
        FlakyHead.starts += 1
        if FlakyHead.starts <= FlakyHead.failures:
            raise mnist_model.engine.EngineError("The local Ray instance could not start; the server log says why.")
        self.address = "127.0.0.1:6379"
        return self.address


@pytest.mark.parametrize("failures", [1, mnist_model.engine.LOCAL_START_ATTEMPTS])
def test_a_local_head_that_fails_to_start_is_tried_once_more(monkeypatch, caplog, failures: int) -> None:
    monkeypatch.setattr(FlakyHead, "starts", 0)
    monkeypatch.setattr(FlakyHead, "failures", failures)
    monkeypatch.setattr(mnist_model.engine, "LocalCluster", FlakyHead)
    if failures < mnist_model.engine.LOCAL_START_ATTEMPTS:
        assert mnist_model.engine._start_local(None).address == "127.0.0.1:6379"
    else:
        with pytest.raises(mnist_model.engine.EngineError, match="could not start"):
            mnist_model.engine._start_local(None)
    assert FlakyHead.starts == min(failures + 1, mnist_model.engine.LOCAL_START_ATTEMPTS)
    assert caplog.text.count("trying again") == min(failures, mnist_model.engine.LOCAL_START_ATTEMPTS - 1)


# Last in the module: its process, started with the first test's, waits meanwhile.
def test_an_unreachable_address_is_reported_within_20_seconds(unreachable) -> None:
    address, process, started = unreachable["defaults"]
    seconds, message, _ = outcome(process, started, within=20)
    assert "cannot be reached" in message
