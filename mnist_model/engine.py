"""The work engine as its callers see it: a connection to Ray and plain calls that return plain data.

:class:`Engine` connects to the cluster named by ``$RAY_ADDRESS`` (Ray's own convention) or, when
that is not set, to a local Ray instance that it starts itself: ``ray start --head`` as a process
of its own, on a free loopback port, tied to the process that started it so that it stops with it.
Every model-related call (training jobs, predictions, evaluations, summaries, weights, images to
prepare) goes to the actors in :mod:`mnist_model.workers` and returns numpy arrays, dataclasses or
bytes, so the caller never imports TensorFlow.

The local instance is :class:`mnist_model.local_ray.LocalCluster`.
"""

from __future__ import annotations

import hashlib
import logging
import os
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
# By default a driver retries an unreachable cluster for about 14 minutes (20 attempts of up to 40 s).
# A person waiting for a page is told within about half a minute instead; the engine's own Ray
# processes are started without these settings (see local_ray).
# And a driver whose cluster stops answering terminates its own process after 60 s ("Failed to
# connect to GCS within 60 seconds ... The program will terminate"): here that process is the web
# server, which must outlive its engine, tell its visitors, and start a new local one.
CONNECT_SETTINGS = {
    "RAY_NUM_REDIS_GET_RETRIES": "2",
    "RAY_py_gcs_connect_timeout_s": "5",
    "RAY_gcs_rpc_server_reconnect_timeout_s": str(10**9),
}
for _name, _value in CONNECT_SETTINGS.items():
    os.environ.setdefault(_name, _value)

import ray  # noqa: E402
import ray.exceptions  # noqa: E402

from mnist_model import artifacts, config, images, mydigits, workers  # noqa: E402
from mnist_model.data import DataError  # noqa: E402
from mnist_model.local_ray import LocalCluster  # noqa: E402
from mnist_model.records import (  # noqa: E402
    Attribution,
    EngineError,
    JobStatus,
    LayerActivation,
    ModelSummary,
    Projection,
    QueueFull,
)
from mnist_model.settings import TrainingSettings  # noqa: E402
from mnist_model.workers import EngineConfig  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineError", "LocalCluster", "QueueFull", "engine_config"]

NAMESPACE = "mnist_model"
# Bounds and sizes of the engine (see EngineConfig); each has a default.
TRAINING_CPUS_ENV = "MNIST_TRAINING_CPUS"
QUEUE_LIMIT_ENV = "MNIST_QUEUE_LIMIT"
JOBS_PER_SESSION_ENV = "MNIST_JOBS_PER_SESSION"
MAX_RUNS_ENV = "MNIST_MAX_RUNS"
MAX_STORE_MB_ENV = "MNIST_MAX_STORE_MB"
# Attempts at starting a local head before the engine reports that it cannot start.
LOCAL_START_ATTEMPTS = 2
# Seconds to wait for an answer to an ordinary call.
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
        detector=str(config.detector_dir().resolve()),
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


def _shared_actor(actor_class: type, name: str, **options):
    """The one actor of ``actor_class`` in the cluster: named with the code's version, detached, and
    found by every caller (created by the first). It reserves no CPU: it coordinates or answers calls."""
    return ray.remote(actor_class).options(
        name=f"{name}-{code_version()}",
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        **options,
    )


class Engine:
    """A connection to the work engine. Every method returns plain data; errors are EngineError,
    QueueFull, DataError (MNIST missing or invalid) or ImageError (an unusable image).
    """

    def __init__(
        self,
        coordinator: ray.actor.ActorHandle,
        models: ray.actor.ActorHandle,
        address: str,
        local: LocalCluster | None = None,
    ):
        self._coordinator = coordinator
        self._models = models
        self.address = address
        # The local head this engine runs on, when it started one; None on a cluster named by address.
        self.local = local
        self._ready_models = models.ready.remote()

    @classmethod
    def connect(cls, address: str | None = None, *, local: LocalCluster | None = None) -> Engine:
        """Connect to ``address`` (default ``$RAY_ADDRESS``), or to a local head started now.

        local: the local head to use when no address is given (one is created when omitted).
        A process already connected to Ray keeps that connection, whatever ``address`` says.
        Raises EngineError when the cluster cannot be reached or started.
        """
        engine_settings = engine_config()
        address = address or os.environ.get(ADDRESS_ENV)
        if not ray.is_initialized():
            # A cluster elsewhere gets this package's code from here; a local one imports it in place.
            runtime_env = {"py_modules": [str(Path(__file__).parent)]}
            if not address:
                local = _start_local(local)
                address = local.address
                runtime_env = None
            else:
                local = None
            try:
                ray.init(address=address, namespace=NAMESPACE, runtime_env=runtime_env, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as error:
                log.error("cannot connect to the Ray cluster at %s: %s", address, error)
                # The address is the server's own business: the log has it, the message does not.
                raise EngineError(
                    f"The Ray cluster that {ADDRESS_ENV} names cannot be reached; the server log has its address. "
                    f"Check that it is running, or unset {ADDRESS_ENV} to use a local one."
                ) from None
        coordinator = _shared_actor(workers.Coordinator, "coordinator", max_concurrency=64, resources=HEAD_NODE)
        coordinator = coordinator.remote(engine_settings)
        models = _shared_actor(workers.ModelServer, "models", max_concurrency=16).remote(coordinator)
        return cls(coordinator, models, address, local)

    def close(self) -> None:
        """Disconnect this process from Ray, and stop the local head if this engine started one.

        Call it from the thread that connected. After it, :meth:`connect` may connect again.
        """
        ray.shutdown()
        if self.local is not None:
            self.local.stop()

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

    def explain(self, key: str, model_input: np.ndarray, digit: int | None = None) -> Attribution:
        """The gradient, integrated gradients and Grad-CAM of one prediction (see :mod:`mnist_model.attribution`)."""
        return self._call(self._models.explain.remote(key, model_input, digit))

    def activations(self, key: str, model_input: np.ndarray) -> tuple[LayerActivation, ...]:
        """Each computing layer's output for one image (see :mod:`mnist_model.activations`)."""
        return self._call(self._models.activations.remote(key, model_input))

    def projection(self, key: str, method: str) -> Projection:
        """The map of the test set by ``method``, "pca" or "tsne" (see :mod:`mnist_model.projection`):
        computed once per run by the model server and kept with the run."""
        return self._call(self._models.projection.remote(key, method))

    def digit_scores(self, model_inputs: np.ndarray) -> np.ndarray | None:
        """How much each image looks like a digit (see :mod:`mnist_model.detector`); None while the
        detector is still being trained, which the first call starts."""
        return self._call(self._models.digit_scores.remote(model_inputs))

    def prepare_file(self, data: bytes, name: str) -> images.PreprocessedImage:
        return self._call(self._models.prepare_file.remote(data, name))

    def prepare_drawing(self, data: bytes, size: tuple[int, int]) -> images.PreprocessedImage:
        return self._call(self._models.prepare_drawing.remote(data, size))

    def prepare_my_digits(self, items: list[tuple[bytes, str]]) -> mydigits.Inputs:
        """A "my digits" set's images, (file bytes, source) pairs, in MNIST form (see :mod:`mnist_model.mydigits`)."""
        return self._call(self._models.prepare_my_digits.remote(items))

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


def _start_local(local: LocalCluster | None) -> LocalCluster:
    """Start ``local`` (or a new local head) and return it, started. Raises EngineError.

    A head of our own that fails to start is tried once more with a new one: on a loaded machine
    Ray's own start-up can time out once ("node timed out during startup") and then succeed.
    """
    if local is not None:
        local.start()
        return local
    for _ in range(LOCAL_START_ATTEMPTS - 1):
        local = LocalCluster()
        try:
            local.start()
            return local
        except EngineError as error:
            log.warning("the local Ray instance did not start (%s); trying again", error)
    local = LocalCluster()
    local.start()
    return local


def wait_for(condition: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """Poll ``condition`` until it returns something other than None, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
