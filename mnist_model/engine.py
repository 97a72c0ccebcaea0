"""The work engine as its callers see it: a connection to Ray and plain calls that return plain data.

:class:`Engine` connects to the cluster named by ``$RAY_ADDRESS`` (Ray's own convention) or, when
that is not set, to a local Ray instance that it starts itself: ``ray start --head`` as a process
of its own, on a free loopback port, tied to the process that started it so that it stops with it.
Every model-related call (training jobs, predictions, evaluations, summaries, weights, images to
prepare) goes to the actors in :mod:`mnist_model.workers` and returns numpy arrays, dataclasses or
bytes, so the caller never imports TensorFlow.

Ray's processes must not be started from a short-lived thread: a child started with a parent-death
signal dies with the thread that started it (ray-project/ray#45570), and a Streamlit script run is
such a thread. :class:`LocalCluster` therefore starts the head from a thread of its own that lives
as long as the process.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

# Ray's conventional variable naming an existing cluster ("auto", "host:port" or "ray://host:port").
ADDRESS_ENV = "RAY_ADDRESS"
# On Linux, Ray replaces a loopback address with the machine's network address, for its servers and
# for a driver's connection alike. A local instance must stay on loopback (reachable from this
# machine only), and this setting, read when Ray is imported, keeps it there. A cluster named by
# RAY_ADDRESS is left as Ray configures it.
if os.environ.get(ADDRESS_ENV, "127.0.0.1").split(":")[0] in ("", "127.0.0.1", "localhost"):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402
import ray.exceptions  # noqa: E402

from mnist_model import artifacts, config, images, workers  # noqa: E402
from mnist_model.data import DataError  # noqa: E402
from mnist_model.records import JobStatus, ModelSummary  # noqa: E402
from mnist_model.settings import TrainingSettings  # noqa: E402
from mnist_model.workers import EngineConfig, EngineError, QueueFull  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineError", "LocalCluster", "QueueFull", "engine_config"]

NAMESPACE = "mnist_model"
# Bounds and sizes of the engine (see EngineConfig); each has a default.
TRAINING_CPUS_ENV = "MNIST_TRAINING_CPUS"
QUEUE_LIMIT_ENV = "MNIST_QUEUE_LIMIT"
JOBS_PER_SESSION_ENV = "MNIST_JOBS_PER_SESSION"
MAX_RUNS_ENV = "MNIST_MAX_RUNS"
MAX_STORE_MB_ENV = "MNIST_MAX_STORE_MB"
# Seconds to wait for a local Ray instance to start, and for an answer to an ordinary call.
START_SECONDS = 60.0
CALL_SECONDS = 120.0
# The resource only the head node has: the coordinator lives there, beside the artifacts store.
HEAD_NODE = {"node:__internal_head__": 0.001}

T = TypeVar("T")


def engine_config() -> EngineConfig:
    """The engine's settings from this process's environment (see EngineConfig for each)."""
    defaults = EngineConfig(artifacts="")

    def number(name: str, default, kind=int):
        value = os.environ.get(name)
        if value is None or value == "":
            return default
        try:
            parsed = kind(value)
        except ValueError:
            raise EngineError(f"{name} must be a number; it is {value!r}.") from None
        if parsed <= 0:
            raise EngineError(f"{name} must be greater than 0; it is {value!r}.")
        return parsed

    data = config.configured_data_path()
    return EngineConfig(
        artifacts=str(config.artifacts_dir().resolve()),
        data=str(data.resolve()) if data else None,
        training_cpus=number(TRAINING_CPUS_ENV, defaults.training_cpus, float),
        queue_limit=number(QUEUE_LIMIT_ENV, defaults.queue_limit),
        jobs_per_owner=number(JOBS_PER_SESSION_ENV, defaults.jobs_per_owner),
        max_runs=number(MAX_RUNS_ENV, defaults.max_runs),
        max_bytes=number(MAX_STORE_MB_ENV, defaults.max_bytes // 2**20) * 2**20,
    )


def code_version() -> str:
    """A hash of this package's source: actors are named with it, so new code never talks to old actors."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


class LocalCluster:
    """A Ray head on this machine, on loopback only, started by and stopping with this process."""

    def __init__(self, num_cpus: int | None = None):
        self.num_cpus = num_cpus
        self.address: str | None = None
        self.error: str | None = None
        self.log_file = Path(tempfile.mkstemp(prefix="mnist-ray-", suffix=".log")[1])
        self._process: subprocess.Popen | None = None
        self._ready = threading.Event()
        # The thread that starts the head lives as long as this process (see the module docstring).
        self._thread = threading.Thread(target=self._run, name="ray-head", daemon=True)

    def start(self, timeout: float = START_SECONDS) -> str:
        """Start the head and return its address. Raises EngineError when it cannot start."""
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise EngineError(f"The local Ray instance did not start within {timeout:.0f} s.")
        if self.error:
            raise EngineError(self.error)
        return self.address

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()

    def _run(self) -> None:
        port = _free_port()
        command = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
        if self.num_cpus is not None:
            command.append(f"--num-cpus={self.num_cpus}")
        # Ray binds its servers to the node's address; this setting keeps them on loopback.
        environment = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        environment.pop(ADDRESS_ENV, None)
        with open(self.log_file, "wb") as output:
            try:
                self._process = subprocess.Popen(
                    command, stdout=output, stderr=subprocess.STDOUT, env=environment, preexec_fn=_die_with_parent
                )
            except OSError as error:
                self.error = f"Ray could not be started: {error}."
                self._ready.set()
                return
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and self._process.poll() is None:
            if b"Ray runtime started" in self.log_file.read_bytes():
                self.address = f"127.0.0.1:{port}"
                break
            time.sleep(0.05)
        if self.address is None:
            tail = self.log_file.read_text(errors="replace")[-600:]
            self.error = f"Ray could not be started (exit status {self._process.poll()}): {tail}"
            log.error("%s", self.error)
        self._ready.set()
        code = self._process.wait()
        if self.address is not None:
            log.warning("the local Ray instance stopped (exit status %s)", code)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: receive SIGTERM when the thread that started it ends (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Engine:
    """A connection to the work engine. Every method returns plain data; errors are EngineError,
    QueueFull, DataError (MNIST missing or invalid) or ImageError (an unusable image).
    """

    def __init__(self, coordinator: ray.actor.ActorHandle, models: ray.actor.ActorHandle, address: str):
        self._coordinator = coordinator
        self._models = models
        self.address = address
        self._ready_models = models.ready.remote()

    @classmethod
    def connect(cls, address: str | None = None, *, local: LocalCluster | None = None) -> Engine:
        """Connect to ``address`` (default ``$RAY_ADDRESS``), or to a local head started now.

        local: the local head to use when no address is given (one is created when omitted).
        Raises EngineError when the cluster cannot be reached or started.
        """
        engine_settings = engine_config()
        address = address or os.environ.get(ADDRESS_ENV)
        if not ray.is_initialized():
            if not address:
                local = local or LocalCluster()
                address = local.start()
            try:
                ray.init(
                    address=address,
                    namespace=NAMESPACE,
                    runtime_env={"py_modules": [str(Path(__file__).parent)]},
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as error:
                log.error("cannot connect to the Ray cluster at %s: %s", address, error)
                raise EngineError(
                    f"The Ray cluster at {address} cannot be reached. Check that it is running, or unset "
                    f"{ADDRESS_ENV} to use a local one."
                ) from None
        version = code_version()
        coordinator = (
            ray.remote(workers.Coordinator)
            .options(
                name=f"coordinator-{version}",
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_concurrency=64,
                resources=HEAD_NODE,
            )
            .remote(engine_settings)
        )
        models = (
            ray.remote(workers.ModelServer)
            .options(
                name=f"models-{version}",
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_concurrency=16,
            )
            .remote(coordinator)
        )
        return cls(coordinator, models, address)

    # Training jobs and runs

    def submit(self, settings: TrainingSettings, owner: str | None = None) -> JobStatus:
        """Queue training for ``settings`` (or join the job or cached run that has it). Raises QueueFull."""
        return self._call(self._coordinator.submit.remote(settings, owner))

    def jobs(self) -> list[JobStatus]:
        return self._call(self._coordinator.jobs.remote())

    def job(self, settings: TrainingSettings) -> JobStatus | None:
        return self._call(self._coordinator.job.remote(self.key(settings)))

    def stop(self, job_id: str, owner: str | None) -> JobStatus:
        return self._call(self._coordinator.stop.remote(job_id, owner))

    def runs(self) -> list[artifacts.RunRecord]:
        return self._call(self._coordinator.runs.remote())

    def key(self, settings: TrainingSettings) -> str:
        return self._call(self._coordinator.key_for.remote(settings))

    def use(self, key: str) -> None:
        self._coordinator.use.remote(key)

    def stats(self) -> dict:
        return self._call(self._coordinator.stats.remote())

    def model_file(self, key: str) -> bytes:
        return self._call(self._coordinator.model_file.remote(key))

    # Data

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        return self._call(self._coordinator.test_set.remote())

    def class_counts(self) -> dict[str, list[int]]:
        return self._call(self._coordinator.class_counts.remote())

    def samples(self, per_digit: int, seed: int) -> np.ndarray:
        return self._call(self._coordinator.samples.remote(per_digit, seed))

    # Models

    def models_ready(self, timeout: float = 0) -> bool:
        """True once the model server has loaded TensorFlow (waits up to ``timeout`` seconds)."""
        ready, _ = ray.wait([self._ready_models], timeout=timeout)
        return bool(ready)

    def predict(self, key: str, model_input: np.ndarray) -> np.ndarray:
        return self._call(self._models.predict.remote(key, model_input))

    def prepare_file(self, data: bytes, name: str) -> images.PreprocessedImage:
        return self._call(self._models.prepare_file.remote(data, name))

    def prepare_canvas(self, rgba: np.ndarray) -> images.PreprocessedImage:
        return self._call(self._models.prepare_canvas.remote(rgba))

    def evaluate(self, key: str):
        return self._call(self._models.evaluate.remote(key))

    def summary(self, key: str) -> ModelSummary:
        return self._call(self._models.summary.remote(key))

    def weights(self, key: str) -> dict[str, dict[str, np.ndarray]]:
        return self._call(self._models.weights.remote(key))

    @staticmethod
    def _call(ref: ray.ObjectRef, timeout: float = CALL_SECONDS):
        """The result of an actor call, with the engine's own errors passed through as they are."""
        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, (EngineError, DataError, images.ImageError)):
                raise cause from None
            log.error("the engine failed: %s", error)
            raise EngineError(
                f"The model engine failed ({type(cause).__name__}); the server log has the details."
            ) from None
        except ray.exceptions.GetTimeoutError:
            raise EngineError(f"The model engine did not answer within {timeout:.0f} s; try again.") from None
        except ray.exceptions.RayError as error:
            log.error("the engine is unavailable: %s", error)
            raise EngineError("The model engine is unavailable (its worker stopped); try again in a moment.") from None


def wait_for(condition: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """Poll ``condition`` until it returns something other than None, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
