"""The work engine's Ray actors and tasks: the job coordinator, the model server and training.

- :class:`Coordinator` (one per cluster, a named detached actor on the head node) holds MNIST, the
  artifacts store and the training queue. It starts each job as a :func:`train_task` that reserves
  CPUs, so no more jobs run at once than the cluster has room for; identical settings share one job,
  whoever asks; finished jobs leave memory and only their cached results remain.
- :func:`train_task` trains in any worker, on any node, and sends the model back as bytes, so the
  store never depends on a filesystem that the nodes share.
- :class:`ModelServer` (one per cluster, named and detached) keeps the models in use loaded and
  answers predictions, evaluations, layer summaries and weights; it also turns uploaded files and
  drawings into model input, so untrusted images are decoded here and not in the web server.

Nothing here imports TensorFlow at module level: the web server imports this module to reach the
actors, and only the workers load the framework.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import ray
import ray.exceptions

from mnist_model import artifacts, detector, images, mydigits
from mnist_model.data import DataError, MnistData, load_mnist
from mnist_model.records import (
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    STOPPED,
    Attribution,
    EngineError,
    JobStatus,
    LayerActivation,
    Progress,
    Projection,
    QueueFull,
    TrainingStopped,
)
from mnist_model.settings import TrainingSettings

log = logging.getLogger(__name__)
# The model server answers many calls at once, on threads. Two threads that import TensorFlow's
# modules at the same time can see one of them half initialised (an AttributeError from inside
# TensorFlow), so the first import is made under this lock and the others wait for it.
_TENSORFLOW_IMPORT = threading.Lock()


def _load_tensorflow() -> None:
    with _TENSORFLOW_IMPORT:
        from mnist_model import activations, attribution, evaluation, model, predict  # noqa: F401  (TensorFlow, Keras)


# Finished jobs whose outcome is kept for people to read (not their models), newest last.
FINISHED_KEPT = 32
# Seconds a stopped job's worker gets to stop by itself before it is cancelled by force.
STOP_GRACE_SECONDS = 10.0
# Runs used within this many seconds count as in use and are never evicted from the store.
IN_USE_SECONDS = 15 * 60
# Seconds between progress reports from a training task (the stop flag comes back with each).
REPORT_SECONDS = 0.25
# Rough seconds per epoch before any run of an architecture has finished, for queue estimates.
SECONDS_PER_EPOCH = {"mlp": 1.5, "cnn": 9.0}


@dataclass(frozen=True)
class EngineConfig:
    """The engine's settings, taken from the environment of the process that first connects.

    artifacts: the store's folder on the coordinator's node. data: MNIST's location there (None:
    ``$MNIST_DATA``, then Keras' cache or download). detector: the digit detector's folder there
    (empty: ``detector/`` in the store). training_cpus: CPUs each training job reserves.
    queue_limit: jobs queued or running at most, in all. jobs_per_owner: jobs one session may have
    queued or running. max_runs, max_bytes: bounds of the store.
    """

    artifacts: str
    data: str | None = None
    detector: str = ""
    training_cpus: float = 2
    queue_limit: int = 8
    jobs_per_owner: int = 1
    max_runs: int = 24
    max_bytes: int = 512 * 2**20


@dataclass
class _Job:
    job_id: str
    key: str
    settings: TrainingSettings
    owner: str | None
    submitted: float
    note: str | None = None
    state: str = QUEUED
    started: float | None = None
    progress: Progress | None = None
    stop_requested: bool = False
    ref: ray.ObjectRef | None = None


class Coordinator:
    """The cluster's registry of training jobs, its queue, its artifacts store and its MNIST copy."""

    def __init__(self, config: EngineConfig):
        _log_to_stderr()
        self._config = config
        self._root = Path(config.artifacts)
        self._detector_dir = Path(config.detector) if config.detector else self._root / "detector"
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # active jobs by run key, in submission order
        self._finished: collections.OrderedDict[str, JobStatus] = collections.OrderedDict()
        self._memory_runs: dict[str, tuple[bytes, artifacts.RunRecord]] = {}
        self._last_used: dict[str, float] = {}
        self._trainings = 0
        self._data: MnistData | None = None
        self._data_ref: ray.ObjectRef | None = None
        self._data_error: str | None = None
        self._detector_file: bytes | None = None
        self._detector_ref: ray.ObjectRef | None = None
        self._load_data()

    # Data

    def _load_data(self) -> None:
        try:
            self._data = load_mnist(self._config.data)
        except DataError as error:
            log.error("MNIST could not be loaded: %s", error)
            self._data_error = str(error)
            return
        self._data_ref = ray.put(self._data)

    def _require_data(self) -> MnistData:
        if self._data is None:
            raise DataError(self._data_error or "MNIST is not loaded.")
        return self._data

    def data_fingerprint(self) -> str:
        return self._require_data().fingerprint

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The test images, uint8 (10000, 28, 28), and labels, uint8 (10000,)."""
        data = self._require_data()
        return data.test_images, data.test_labels

    def class_counts(self) -> dict[str, list[int]]:
        """Images per digit: ``{"train": [10 counts], "test": [10 counts]}``."""
        data = self._require_data()
        return {
            split: np.bincount(labels, minlength=10).tolist()
            for split, labels in (("train", data.train_labels), ("test", data.test_labels))
        }

    def samples(self, per_digit: int, seed: int) -> np.ndarray:
        """``per_digit`` random training images of each digit: uint8 (10, per_digit, 28, 28)."""
        data = self._require_data()
        rng = np.random.default_rng(seed)
        chosen = [
            rng.choice(np.flatnonzero(data.train_labels == digit), per_digit, replace=False) for digit in range(10)
        ]
        return data.train_images[np.stack(chosen)]

    # Runs in the store

    def key_for(self, settings: TrainingSettings) -> str:
        return artifacts.run_key(settings, self.data_fingerprint())

    def runs(self) -> list[artifacts.RunRecord]:
        """Every cached run, newest first, with the runs kept in memory where the store refused them."""
        stored = artifacts.list_runs(self._root)
        keys = {record.key for record in stored}
        in_memory = [record for key, (_, record) in self._memory_runs.items() if key not in keys]
        return sorted([*stored, *in_memory], key=lambda record: record.created, reverse=True)

    def model_file(self, key: str) -> bytes:
        """The verified bytes of the ``.keras`` file of the run ``key``. Raises EngineError."""
        self.use(key)
        found = artifacts.read_run_bytes(self._root, key)
        if found is None and key in self._memory_runs:
            found = self._memory_runs[key]
        if found is None:
            raise EngineError("That model is no longer in the store; train it again on the Training page.")
        return found[0]

    def use(self, key: str) -> None:
        """Mark the run ``key`` as in use: it is kept in the store while people use it."""
        self._last_used[key] = time.time()
        artifacts.touch(self._root, key)

    def stored_projection(self, key: str, method: str) -> Projection | None:
        """The map of the test set by ``method`` kept with the run ``key``, verified, or None."""
        return artifacts.read_projection(self._root, key, method)

    def store_projection(self, key: str, projection: Projection) -> None:
        """Keep a map of the test set with the run ``key`` (nothing for a run kept in memory only)."""
        try:
            with artifacts.run_lock(self._root, key):
                artifacts.save_projection(self._root, key, projection)
        except OSError as error:
            log.warning("the %s map of %s could not be saved (%s); it is kept in memory", projection.method, key, error)

    # The digit detector

    def detector_file(self, train: bool = True) -> bytes | None:
        """The digit detector's ``.keras`` file, or None while it is being trained: the first call
        without a cached one starts that (unless ``train`` is false), in a task of one CPU, so it
        never holds up a caller."""
        with self._lock:
            if self._detector_file is None and self._detector_ref is None:
                data = self._require_data()
                self._detector_file = detector.read(data, self._detector_dir)
                if self._detector_file is None and train:
                    self._detector_ref = detector_task.options(num_cpus=1, name="train the digit detector").remote(
                        self._data_ref
                    )
                    threading.Thread(target=self._watch_detector, name="watch the detector", daemon=True).start()
            return self._detector_file

    def discard_detector(self) -> None:
        """Forget a detector file that could not be loaded; the next request trains a new one."""
        with self._lock:
            self._detector_file = None
            detector.discard(self._require_data(), self._detector_dir)

    def _watch_detector(self) -> None:
        try:
            content = ray.get(self._detector_ref)
        except ray.exceptions.RayError as error:
            log.error("training the digit detector failed: %s", error)
            content = None
        else:
            detector.save(self._require_data(), self._detector_dir, content)
            log.info("trained the digit detector")
        with self._lock:
            self._detector_file, self._detector_ref = content, None

    # Jobs

    def submit(self, settings: TrainingSettings, owner: str | None = None) -> JobStatus:
        """Queue training for ``settings``, or return the job or cached run that already has it.

        owner: the session asking; only it can stop the job, and it may have at most
        ``jobs_per_owner`` jobs queued or running. None: a job nobody owns (the default model
        trained for a first visitor), outside the per-session bound. Raises QueueFull, DataError.
        """
        key = self.key_for(settings)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                return self._status(job)
            note = None
            if key in self._memory_runs or artifacts.read_run_bytes(self._root, key) is not None:
                self.use(key)
                return JobStatus("", key, settings, owner, DONE, time.time())
            if (artifacts.runs_dir(self._root) / key).exists():
                note = "The cached copy of this model was incomplete or failed its checks, so it was trained again."
            if len(self._jobs) >= self._config.queue_limit:
                raise QueueFull(
                    f"The training queue is full: {len(self._jobs)} jobs are waiting or running, the most "
                    "this server takes. Try again when one has finished."
                )
            mine = [job for job in self._jobs.values() if owner is not None and job.owner == owner]
            if len(mine) >= self._config.jobs_per_owner:
                raise QueueFull(
                    f"You already have a training job waiting or running ({mine[0].settings.describe()}); "
                    "a session may have one at a time. Stop it or wait for it to finish."
                )
            job = _Job(uuid.uuid4().hex[:12], key, settings, owner, time.time(), note=note)
            self._jobs[key] = job
            self._dispatch()
            return self._status(job)

    def jobs(self) -> list[JobStatus]:
        """Every job queued or running, in queue order, then the recently finished ones, newest first."""
        with self._lock:
            active = [self._status(job) for job in self._jobs.values()]
            return active + list(reversed(self._finished.values()))

    def job(self, key: str) -> JobStatus | None:
        """The active job for a run key, else its latest finished job, else None."""
        with self._lock:
            if key in self._jobs:
                return self._status(self._jobs[key])
            return next((status for status in reversed(self._finished.values()) if status.key == key), None)

    def stop(self, job_id: str, owner: str | None) -> JobStatus:
        """Stop a job: a queued one leaves the queue, a running one stops within a tenth of an epoch.

        Only the job's owner may stop it. Raises EngineError otherwise or when the job has ended.
        """
        with self._lock:
            job = next((job for job in self._jobs.values() if job.job_id == job_id), None)
            if job is None:
                raise EngineError("That training job has already ended.")
            if job.owner is None or job.owner != owner:
                raise EngineError("Only the session that started this training can stop it.")
            if job.state == QUEUED:
                return self._finish(job, STOPPED, "Stopped before it started; it left the queue.")
            job.stop_requested = True
            ref = job.ref
        threading.Timer(STOP_GRACE_SECONDS, self._force_stop, args=(job, ref)).start()
        return self._status(job)

    def report(self, job_id: str, progress: Progress) -> bool:
        """Record a training task's progress; returns True when the task should stop."""
        with self._lock:
            job = next((job for job in self._jobs.values() if job.job_id == job_id), None)
            if job is None:
                return True
            job.progress = progress
            return job.stop_requested

    def stats(self) -> dict:
        """Counters for tests and the log: training runs started, jobs active, the concurrency bound."""
        with self._lock:
            return {"trainings": self._trainings, "active": len(self._jobs), "max_running": self._max_running()}

    # Internals (called holding self._lock unless said otherwise)

    def _max_running(self) -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 1) // self._training_cpus()))

    def _training_cpus(self) -> float:
        largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=1)
        return max(min(self._config.training_cpus, largest), 0.001)

    def _dispatch(self) -> None:
        running = sum(job.state == RUNNING for job in self._jobs.values())
        for job in self._jobs.values():
            if running >= self._max_running():
                return
            if job.state != QUEUED:
                continue
            job.state, job.started = RUNNING, time.time()
            job.ref = train_task.options(
                num_cpus=self._training_cpus(), max_retries=0, name=f"train {job.settings.describe()}"
            ).remote(job.settings, self._data_ref, ray.get_runtime_context().current_actor, job.job_id)
            self._trainings += 1
            running += 1
            log.info("training %s (%s)", job.key, job.settings.describe())
            threading.Thread(target=self._watch, args=(job,), name=f"watch {job.job_id}", daemon=True).start()

    def _watch(self, job: _Job) -> None:
        """Wait for a training task (without the lock), then store its model and record how it ended."""
        node = None
        try:
            model_file, manifest, node = ray.get(job.ref)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            outcome = STOPPED if isinstance(cause, TrainingStopped) else FAILED
            message = f"{str(cause).capitalize()}." if outcome == STOPPED else _failure_message(cause)
        except ray.exceptions.RayError as error:
            if job.stop_requested:
                outcome, message = STOPPED, "Stopped on request."
            else:
                log.error("the training worker for %s died: %s", job.key, error)
                outcome = FAILED
                message = (
                    "The training worker stopped unexpectedly (it may have been killed or run out of memory); "
                    "nothing was saved. Try again."
                )
        else:
            outcome, message = DONE, self._store(job, model_file, manifest)
        if outcome != DONE:
            log.warning("training %s ended: %s: %s", job.key, outcome, message)
        with self._lock:
            self._finish(job, outcome, message, node=node)
            self._dispatch()
        if outcome == DONE:
            self._prune()

    def _store(self, job: _Job, model_file: bytes, manifest: dict) -> str | None:
        """Save a finished run; where the store refuses it, keep it in memory. Returns a note or None."""
        try:
            with artifacts.run_lock(self._root, job.key):
                entry = artifacts.save_run_bytes(self._root, job.key, model_file, manifest)
            self.use(job.key)
            log.info("saved %s to %s", job.key, entry)
            return job.note
        except OSError as error:
            log.warning("the model %s could not be saved to %s (%s); kept in memory only", job.key, self._root, error)
            record = artifacts.parse_manifest(
                {**manifest, "key": job.key, "versions": artifacts.versions()}, path=self._root / "memory" / job.key
            )
            self._memory_runs[job.key] = (model_file, record)
            return (
                "The trained model could not be saved to the artifacts folder (the server log says why); "
                "it is kept in memory only."
            )

    def _prune(self) -> None:
        recent = {key for key, used in self._last_used.items() if time.time() - used < IN_USE_SECONDS}
        served = (TrainingSettings(), TrainingSettings.quick(), TrainingSettings.recommended("cnn"))
        pinned = {self.key_for(settings) for settings in served}
        with self._lock:
            active = set(self._jobs)
        artifacts.prune(
            self._root, max_runs=self._config.max_runs, max_bytes=self._config.max_bytes, keep=recent | pinned | active
        )

    def _force_stop(self, job: _Job, ref: ray.ObjectRef | None) -> None:
        with self._lock:
            still_running = self._jobs.get(job.key) is job and job.state == RUNNING
        if still_running and ref is not None:
            log.warning("training %s did not stop within %.0f s; cancelling its task", job.key, STOP_GRACE_SECONDS)
            ray.cancel(ref, force=True)

    def _finish(self, job: _Job, outcome: str, message: str | None, node: str | None = None) -> JobStatus:
        self._jobs.pop(job.key, None)
        job.state = outcome
        status = replace(self._status(job), message=message, node=node, position=None, starts_in=None, ends_in=None)
        self._finished[job.job_id] = status
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)
        return status

    def _status(self, job: _Job) -> JobStatus:
        position = starts_in = ends_in = None
        if job.state in (QUEUED, RUNNING):
            ahead = 0.0
            queued = 0
            for other in self._jobs.values():
                if other is job:
                    break
                ahead += self._seconds_left(other)
                queued += other.state == QUEUED
            if job.state == QUEUED:
                position = queued + 1
                starts_in = ahead / self._max_running()
                ends_in = starts_in + self._seconds_left(job)
            else:
                ends_in = self._seconds_left(job)
        return JobStatus(
            job.job_id,
            job.key,
            job.settings,
            job.owner,
            job.state,
            job.submitted,
            position=position,
            progress=job.progress,
            starts_in=starts_in,
            ends_in=ends_in,
            message=job.note if job.state == DONE else None,
        )

    def _seconds_left(self, job: _Job) -> float:
        """Estimated seconds until ``job`` ends: from its own pace once it has one, else from past runs."""
        progress = job.progress
        if progress is not None and progress.phase == "training" and progress.history:
            pace = sum(epoch.seconds for epoch in progress.history) / len(progress.history)
            return max(pace * progress.epochs * (1 - progress.fraction), 0.0)
        per_epoch = SECONDS_PER_EPOCH.get(job.settings.architecture, 5.0)
        finished = [
            record.train_seconds / max(len(record.history), 1)
            for record in artifacts.list_runs(self._root)
            if record.settings.architecture == job.settings.architecture
        ]
        if finished:
            per_epoch = float(np.median(finished))
        elapsed = time.time() - job.started if job.started else 0.0
        return max(per_epoch * job.settings.epochs - elapsed, 0.0)


def _log_to_stderr() -> None:
    """Send this package's log lines (one per training run, every warning) to the worker's standard error,
    which Ray forwards to the log of each connected driver, such as the dashboard's server."""
    package_log = logging.getLogger("mnist_model")
    if not package_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package_log.addHandler(handler)
        package_log.setLevel(logging.INFO)


def _failure_message(cause: BaseException) -> str:
    if isinstance(cause, DataError):
        log.error("training found no usable MNIST: %s", cause)
        return cause.public
    if isinstance(cause, (ValueError, FloatingPointError)):
        return f"Training failed: {cause}"
    if isinstance(cause, MemoryError):
        return "Training ran out of memory; try a smaller batch size."
    log.error("training failed unexpectedly: %r", cause)
    return f"Training failed unexpectedly ({type(cause).__name__}); the server log has the details."


@ray.remote(max_retries=0)
def train_task(
    settings: TrainingSettings, data: MnistData, coordinator: ray.actor.ActorHandle, job_id: str
) -> tuple[bytes, dict, str]:
    """Train ``settings`` on ``data``, reporting progress to the coordinator, which may ask it to stop.

    Returns the ``.keras`` file's bytes, the run's manifest and the id of the node that trained it.
    Raises TrainingStopped when stopped.
    """
    from mnist_model import training

    stop = threading.Event()
    last_report = 0.0

    def report(progress: Progress) -> None:
        nonlocal last_report
        now = time.monotonic()
        if progress.phase == "training" and progress.fraction < 1 and now - last_report < REPORT_SECONDS:
            return
        last_report = now
        if ray.get(coordinator.report.remote(job_id, progress)):
            stop.set()

    run = training.train(settings, data=data, progress=report, stop=stop, use_cache=False)
    return artifacts.model_to_bytes(run.model), run.manifest(), ray.get_runtime_context().get_node_id()


@ray.remote(max_retries=1)
def detector_task(data: MnistData) -> bytes:
    """Train the digit detector on ``data``; its ``.keras`` file as bytes."""
    return artifacts.model_to_bytes(detector.train_detector(data))


class ModelServer:
    """Loaded models by run key (the least recently used dropped first), answering many callers at once."""

    def __init__(self, coordinator: ray.actor.ActorHandle, capacity: int = 4):
        self._coordinator = coordinator
        self._capacity = capacity
        self._lock = threading.Lock()
        self._loaded: collections.OrderedDict[str, tuple] = collections.OrderedDict()
        self._evaluations: collections.OrderedDict[str, object] = collections.OrderedDict()
        self._projections: collections.OrderedDict[tuple[str, str], Projection] = collections.OrderedDict()
        self._projecting: dict[tuple[str, str], threading.Lock] = {}
        self._test_set: tuple[np.ndarray, np.ndarray] | None = None
        self._detector = None

    def ready(self) -> bool:
        """Load TensorFlow now, and the digit detector if it is already trained, so that the first
        prediction and the first upload do not wait for them."""
        _load_tensorflow()

        try:
            self.digit_scores(np.zeros((1, 28, 28), dtype=np.float32), train=False)
        except Exception as error:  # the data may be missing: the pages say so, not this warm-up
            # A task's error carries the remote traceback in its text; its cause says what went wrong.
            log.warning("the digit detector could not be loaded ahead of use: %s", getattr(error, "cause", error))
        return True

    def _entry(self, key: str):
        _load_tensorflow()
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        from mnist_model import predict

        model_file = ray.get(self._coordinator.model_file.remote(key))
        model = artifacts.load_model_bytes(model_file)
        entry = (model, predict.Predictor(model))
        with self._lock:
            self._loaded[key] = entry
            while len(self._loaded) > self._capacity:
                self._loaded.popitem(last=False)
        return entry

    def predict(self, key: str, images_in: np.ndarray) -> np.ndarray:
        """Probabilities of the ten digits: float32 (10,) for one (28, 28) image, (n, 10) for a batch."""
        return self._entry(key)[1].predict(images_in)

    def explain(self, key: str, image: np.ndarray, digit: int | None = None) -> Attribution:
        """Where the run's model looked for its answer (or ``digit``) on one (28, 28) image."""
        network = self._entry(key)[0]
        from mnist_model import attribution

        return attribution.explain(network, image, digit)

    def activations(self, key: str, image: np.ndarray) -> tuple[LayerActivation, ...]:
        """Each computing layer's output for one (28, 28) image (see :mod:`mnist_model.activations`)."""
        network = self._entry(key)[0]
        from mnist_model import activations

        return activations.activations(network, image)

    def digit_scores(self, images_in: np.ndarray, train: bool = True) -> np.ndarray | None:
        """The digit detector's scores, float32 (n,), for float32 (n, 28, 28) images in MNIST form;
        None while the detector is still being trained (or, with ``train`` false, not yet trained)."""
        _load_tensorflow()
        if self._detector is None:
            content = ray.get(self._coordinator.detector_file.remote(train))
            if content is None:
                return None
            try:
                self._detector = detector.DigitDetector(artifacts.load_model_bytes(content))
            except (ValueError, OSError, artifacts.UnsafeModelError) as error:
                log.error("the digit detector's file could not be used (%s); training a new one", error)
                ray.get(self._coordinator.discard_detector.remote())
                return None
        return self._detector.scores(images_in)

    def prepare_file(self, data: bytes, name: str) -> images.PreprocessedImage:
        """An uploaded file brought into MNIST form. Raises ImageError for an unusable file."""
        return images.preprocess_file(data, name=name)

    def prepare_drawing(self, data: bytes, size: tuple[int, int]) -> images.PreprocessedImage:
        """A canvas's PNG export, (width, height) pixels, in MNIST form. Raises ImageError for an empty
        drawing or for bytes that are not such a PNG."""
        return images.preprocess_drawing(data, size)

    def prepare_my_digits(self, items: list[tuple[bytes, str]]) -> mydigits.Inputs:
        """The images of a "my digits" set, (file bytes, source) pairs, in MNIST form (see
        :func:`mnist_model.mydigits.prepare`); an unusable image is refused with its reason, not raised."""
        return mydigits.prepare(items)

    def evaluate(self, key: str):
        """The run's :class:`mnist_model.evaluation.Evaluation` on the 10,000 test images."""
        _load_tensorflow()
        with self._lock:
            if key in self._evaluations:
                return self._evaluations[key]
        from mnist_model import evaluation

        if self._test_set is None:
            self._test_set = ray.get(self._coordinator.test_set.remote())
        result = evaluation.evaluate(self._entry(key)[0], *self._test_set)
        with self._lock:
            self._evaluations[key] = result
            while len(self._evaluations) > self._capacity:
                self._evaluations.popitem(last=False)
        return result

    def projection(self, key: str, method: str) -> Projection:
        """The map of the 10,000 test images by ``method`` ("pca" or "tsne") from the run's penultimate
        layer (see :mod:`mnist_model.projection`): computed once per run, here, and kept with the run in the
        store, so later calls (and later servers) read it. Callers asking at once wait for one computation."""
        from mnist_model import projection

        if method not in projection.METHODS:
            raise EngineError(f"There is no {method!r} map; the maps are {', '.join(projection.METHODS)}.")
        wanted = (key, method)
        with self._lock:
            computing = self._projecting.setdefault(wanted, threading.Lock())
        with computing:
            with self._lock:
                if wanted in self._projections:
                    self._projections.move_to_end(wanted)
                    return self._projections[wanted]
            found = ray.get(self._coordinator.stored_projection.remote(key, method))
            if found is None:
                network = self._entry(key)[0]
                if self._test_set is None:
                    self._test_set = ray.get(self._coordinator.test_set.remote())
                found = projection.project(network, self._test_set[0], method)
                log.info("computed the %s map of %s in %.1f s", method, key, found.seconds)
                ray.get(self._coordinator.store_projection.remote(key, found))
            with self._lock:
                self._projections[wanted] = found
                while len(self._projections) > 2 * self._capacity:
                    self._projections.popitem(last=False)
        return found

    def summary(self, key: str):
        """The run's layers as a :class:`mnist_model.records.ModelSummary`."""
        _load_tensorflow()
        from mnist_model import model

        return model.describe_layers(self._entry(key)[0])

    def weights(self, key: str) -> dict[str, dict[str, np.ndarray]]:
        """The weight arrays of every layer that has any: ``{layer name: {weight name: array}}``."""
        network = self._entry(key)[0]
        return {
            layer.name: {variable.name: np.asarray(variable) for variable in layer.weights}
            for layer in network.layers
            if layer.weights
        }
