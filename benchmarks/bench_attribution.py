"""How long one explanation takes, and how well integrated gradients add up, for each default model.

For the recommended dense network and convnet (trained first if the artifacts folder has no run of
them; cached as usual in ``$MNIST_ARTIFACTS``): ``mnist_model.attribution.explain`` on test images,
in process, after two warm-up calls, median over ``--images``; the same through the work engine's
model server (a local Ray instance), which is what a page waits for; and the largest completeness
gap of integrated gradients over those images. Target: at most 100 ms for one image.

    MNIST_DATA=/path/to/mnist.npz python -m benchmarks.bench_attribution [--images 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

from mnist_model import attribution
from mnist_model.data import load_mnist
from mnist_model.settings import ARCHITECTURES, TrainingSettings
from mnist_model.training import train

TARGET_MS = 100.0


def timed_ms(action) -> float:
    started = time.perf_counter()
    action()
    return 1000 * (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="test images explained per model (default 50)")
    parser.add_argument("--skip-engine", action="store_true", help="time in process only")
    arguments = parser.parse_args()
    data = load_mnist()
    chosen = data.test_images[: arguments.images]
    runs = {architecture: train(TrainingSettings.recommended(architecture)) for architecture in ARCHITECTURES}
    engine = None
    if not arguments.skip_engine:
        from mnist_model.engine import Engine

        engine = Engine.connect()
    print(f"{'model':<6} {'in process':>11} {'engine':>9} {'target':>7} {'largest gap':>12}")
    for architecture, run in runs.items():
        for image in chosen[:2]:
            attribution.explain(run.model, image)
        local = [timed_ms(partial(attribution.explain, run.model, image)) for image in chosen]
        gaps = [abs(attribution.explain(run.model, image).completeness_gap) for image in chosen]
        remote = "-"
        if engine is not None:
            for image in chosen[:2]:
                engine.explain(run.key, image)
            served = [timed_ms(partial(engine.explain, run.key, image)) for image in chosen]
            remote = f"{statistics.median(served):.1f} ms"
        median = statistics.median(local)
        verdict = "ok" if median <= TARGET_MS else "SLOW"
        print(
            f"{architecture:<6} {median:>8.1f} ms {remote:>9} {TARGET_MS:>4.0f} ms {max(gaps):>12.4f}  {verdict}"
            f"  ({run.settings.describe()})"
        )
    if engine is not None:
        engine.close()


if __name__ == "__main__":
    main()
