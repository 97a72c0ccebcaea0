"""Training in the background, shared by everyone in the process who asks for the same settings.

An interface (the dashboard, say) starts a job and returns at once; the job trains on its own
thread, so it keeps going while users move between pages, and any session can read its progress.
Asking again for settings already being trained returns the running job instead of a second one;
across processes, :func:`mnist_model.training.train`'s lock does the same.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_model.data import DataError, MnistData
from mnist_model.settings import TrainingSettings

if TYPE_CHECKING:
    from mnist_model.training import Progress, TrainedRun

_jobs: dict[tuple[TrainingSettings, str], TrainingJob] = {}
_jobs_guard = threading.Lock()


class TrainingJob:
    """One training run on a background thread. Read ``progress``, ``result`` and ``error``."""

    def __init__(self, settings: TrainingSettings, data: MnistData | None, artifacts_dir: Path | None):
        self.settings = settings
        self.started = time.time()
        self.progress: Progress | None = None
        self.result: TrainedRun | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(data, artifacts_dir), name=f"train {settings.describe()}", daemon=True
        )

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask training to stop at its next checkpoint (a tenth of an epoch at most)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends or ``timeout`` seconds pass; True if it ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self, data, artifacts_dir) -> None:
        # Imported here so that looking at jobs never waits for TensorFlow to load.
        from mnist_model.training import TrainingStopped, train

        def record(progress: Progress) -> None:
            self.progress = progress

        try:
            self.result = train(self.settings, data=data, artifacts_dir=artifacts_dir, progress=record, stop=self._stop)
        except TrainingStopped as stopped:
            self.error = f"Stopped: {stopped}."
        except DataError as error:
            self.error = str(error)
        except (ValueError, FloatingPointError, OSError, MemoryError) as error:
            self.error = f"Training failed: {error}"
        except Exception as error:  # A background thread must record every failure, not vanish.
            self.error = f"Training failed unexpectedly: {type(error).__name__}: {error}"


def start_training(
    settings: TrainingSettings,
    *,
    data: MnistData | None = None,
    artifacts_dir: Path | None = None,
) -> TrainingJob:
    """Start training ``settings`` in the background, or return the job already doing it."""
    key = (settings, str(artifacts_dir))
    with _jobs_guard:
        job = _jobs.get(key)
        if job is None or (not job.running and job.result is None):
            job = TrainingJob(settings, data, artifacts_dir)
            _jobs[key] = job
            job._thread.start()
        return job


def find_job(settings: TrainingSettings, artifacts_dir: Path | None = None) -> TrainingJob | None:
    """The latest job for ``settings`` in this process, running or finished, if any."""
    with _jobs_guard:
        return _jobs.get((settings, str(artifacts_dir)))


def running_jobs() -> list[TrainingJob]:
    with _jobs_guard:
        return [job for job in _jobs.values() if job.running]
