"""A training process for the suite to kill or starve: ``python -m reliability.worker ARTIFACTS MODE``.

It trains a small run on the real MNIST copy and reports on standard output, one line at a time,
so that the suite can send SIGKILL at a chosen moment:

- ``progress <phase> <fraction>`` for every progress report;
- ``paused <where>`` when MODE asks it to stop at a point inside saving ("model-file": half of the
  model's bytes are in its temporary file, as a kill in the middle of the write leaves it;
  "model-renamed": the model file is in place, its manifest not yet written; "manifest-file": the
  manifest is written to its temporary file, not yet renamed). It then sleeps until killed, like a
  process stuck on a slow disk;
- ``result <json>`` at the end: where the run was saved, its notes, whether it came from the cache.

The pauses wrap the package's own functions from outside; nothing in ``mnist_model`` knows about them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mnist_model import artifacts
from mnist_model.data import from_arrays, load_mnist
from mnist_model.settings import TrainingSettings
from mnist_model.training import Progress, train

# What the kill tests train: one epoch over a slice of MNIST, a few seconds.
KILL_SETTINGS = TrainingSettings(epochs=2, seed=21, validation_size=1000)
TRAIN_IMAGES = 20000


def small_mnist():
    """A slice of the real MNIST (20,000 training and 2,000 test images), quick to train on."""
    data = load_mnist()
    return from_arrays(
        data.train_images[:TRAIN_IMAGES],
        data.train_labels[:TRAIN_IMAGES],
        data.test_images[:2000],
        data.test_labels[:2000],
        source=f"{data.source} (first {TRAIN_IMAGES})",
    )


def _pause(where: str) -> None:
    print(f"paused {where}", flush=True)
    while True:
        time.sleep(60)


def main(argv: list[str]) -> int:
    root, mode = Path(argv[0]), argv[1]
    if mode == "model-file":
        fsync = artifacts._fsync

        def half_written(path: Path) -> None:
            if path.suffix == ".keras":
                with open(path, "r+b") as stream:
                    stream.truncate(path.stat().st_size // 2)
                _pause(mode)
            fsync(path)

        artifacts._fsync = half_written
    elif mode == "model-renamed":
        write = artifacts._write_atomically

        def paused_write(path: Path, text: str) -> None:
            _pause(mode)
            write(path, text)

        artifacts._write_atomically = paused_write
    elif mode == "manifest-file":
        fsync = artifacts._fsync

        def paused_fsync(path: Path) -> None:
            fsync(path)
            if path.suffix == ".json":
                _pause(mode)

        artifacts._fsync = paused_fsync

    def report(progress: Progress) -> None:
        print(f"progress {progress.phase} {progress.fraction:.3f}", flush=True)

    run = train(KILL_SETTINGS, data=small_mnist(), artifacts_dir=root, progress=report)
    result = {"path": str(run.path) if run.path else None, "notes": run.notes, "from_cache": run.from_cache}
    result["test_accuracy"] = run.test_accuracy
    print("result " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
