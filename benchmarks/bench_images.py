"""Preprocessing speed and accuracy on realistic images: the figures the README reports.

Speed: a 280x280 canvas drawing and a 12-megapixel phone JPEG, median of many runs, end to end
(array or bytes in, 28x28 out) after one warm-up call. Targets: a canvas in at
most 5 ms, a 12-megapixel JPEG in at most 150 ms. The JPEG is made here: a digit on unevenly lit
paper, 4000x3000, quality 90, like a phone photo.

Accuracy (``--accuracy``, needs MNIST): the generated realistic set of benchmarks/realistic_digits.py,
classified after preprocessing and after a naive resize, by the quick dense network the dashboard
serves first, the augmented dense network and one trained without augmentation (``--cnn`` adds the
default model, the recommended convnet, which takes about a minute to train).
Numbers (``--accuracy`` too): the generated numbers of 2-4 digits, the share cut into the right
number of digits and the share read exactly, by style; and how many one-digit images were taken
for numbers. Not a digit (``--accuracy`` too): the share of MNIST test digits, realistic digits
and generated non-digits that the digit detector flags.
Trained models are cached as usual, in ``$MNIST_ARTIFACTS``.

    python -m benchmarks.bench_images [--repeats 50] [--accuracy [--seeds 0 1 2] [--cnn]]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnist_model.images import ImageError, preprocess_canvas, preprocess_file

PROJECT = Path(__file__).resolve().parent.parent

TARGET_MS = {"canvas 280x280 RGBA": 5.0, "JPEG 4000x3000 (12 MP)": 150.0}


def make_canvas() -> np.ndarray:
    """uint8 (280, 280, 4): a 3 drawn in white with a 20-pixel brush on a transparent canvas."""
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.arc((80, 40, 200, 140), 200, 450, fill=(255, 255, 255, 255), width=20)
    draw.arc((70, 120, 210, 240), 270, 160, fill=(255, 255, 255, 255), width=20)
    return np.asarray(canvas)


def make_phone_jpeg() -> bytes:
    """A 4000x3000 JPEG of a dark 3 on grey, unevenly lit, slightly noisy paper."""
    rng = np.random.default_rng(0)
    width, height = 1000, 750
    lighting = np.linspace(0.65, 0.95, width, dtype=np.float32)[None, :] * np.ones((height, 1), np.float32)
    paper = lighting + rng.normal(0, 0.02, (height, width)).astype(np.float32)
    image = Image.fromarray(np.clip(paper * 255, 0, 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.arc((380, 180, 620, 380), 200, 450, fill=(25, 25, 40), width=28)
    draw.arc((360, 340, 640, 580), 270, 160, fill=(25, 25, 40), width=28)
    buffer = io.BytesIO()
    image.resize((4000, 3000), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def median_ms(action, repeats: int) -> float:
    action()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


def speed(repeats: int) -> None:
    canvas = make_canvas()
    jpeg = make_phone_jpeg()
    cases = {
        "canvas 280x280 RGBA": lambda: preprocess_canvas(canvas),
        "JPEG 4000x3000 (12 MP)": lambda: preprocess_file(jpeg),
    }
    print(f"Preprocessing to 28x28, median of {repeats} runs (JPEG: {len(jpeg) / 1e6:.1f} MB)")
    print(f"{'input':<24} {'median ms':>10} {'target ms':>10}  verdict")
    for name, action in cases.items():
        milliseconds = median_ms(action, repeats)
        verdict = "ok" if milliseconds <= TARGET_MS[name] else "SLOW"
        print(f"{name:<24} {milliseconds:>10.1f} {TARGET_MS[name]:>10.0f}  {verdict}")


def accuracy(seeds: list[int], with_cnn: bool) -> None:
    from benchmarks import realistic_digits as realistic
    from mnist_model import TrainingSettings, calibration, load_mnist
    from mnist_model.evaluation import evaluate
    from mnist_model.training import train

    samples = [sample for seed in seeds for sample in realistic.realistic_set(300, seed=seed)]
    labels = np.array([sample.label for sample in samples])
    styles = np.array([sample.style for sample in samples])
    prepared = [
        preprocess_canvas(sample.canvas) if sample.canvas is not None else preprocess_file(sample.data)
        for sample in samples
    ]
    preprocessed = np.stack([result.model_input for result in prepared])
    filled = np.array([any("outlined" in note for note in result.notes) for result in prepared])
    naive = np.stack(
        [
            np.asarray(
                (Image.fromarray(sample.canvas) if sample.canvas is not None else Image.open(io.BytesIO(sample.data)))
                .convert("L")
                .resize((28, 28)),
                dtype=np.float32,
            )
            / 255.0
            for sample in samples
        ]
    )
    candidates = {
        "mlp, quick (served first)": TrainingSettings.quick(),
        "mlp, augmented": TrainingSettings(),
        "mlp, no augmentation": TrainingSettings(augment=False),
    }
    if with_cnn:
        candidates["default: cnn, recommended"] = TrainingSettings.recommended("cnn")
    data = load_mnist()
    print(f"\nRealistic set: {len(samples)} images (seeds {', '.join(map(str, seeds))}), {len(set(styles))} styles")
    header = f"{'model':<18} {'MNIST test':>10} {'realistic':>10} {'naive resize':>13}  " + "  ".join(
        f"{style:>16}" for style in realistic.STYLES
    )
    print(header)
    confidence_rows, kind_rows = [], []
    kinds = np.array([sample.kind for sample in samples])
    for name, settings in candidates.items():
        run = train(settings, data=data)
        probabilities = run.model.predict(preprocessed, verbose=0)
        predicted = probabilities.argmax(axis=1)
        naive_predicted = run.model.predict(naive, verbose=0).argmax(axis=1)
        correct = predicted == labels
        by_style = "  ".join(f"{correct[styles == style].mean():>16.1%}" for style in realistic.STYLES)
        print(
            f"{name:<18} {run.test_accuracy:>10.2%} {correct.mean():>10.1%} "
            f"{(naive_predicted == labels).mean():>13.1%}  {by_style}"
        )
        confidence_rows.append((name, run, probabilities.max(axis=1), correct))
        kind_rows.append(
            f"{name:<26} {correct[kinds == 'digit'].mean():>8.1%}  "
            + "  ".join(f"{correct[kinds == kind].mean():>12.1%}" for kind in realistic.HARD_KINDS)
        )
    print(f"\nBy kind: {'other':>21}  " + "  ".join(f"{kind:>12}" for kind in realistic.HARD_KINDS))
    counts = [f"({(kinds == kind).sum()})" for kind in ("digit", *realistic.HARD_KINDS)]
    print(f"{'images':<26} {counts[0]:>8}  " + "  ".join(f"{count:>12}" for count in counts[1:]))
    fills = [str(int(filled[kinds == kind].sum())) for kind in ("digit", *realistic.HARD_KINDS)]
    print(f"{'filled as outlines':<26} {fills[0]:>8}  " + "  ".join(f"{count:>12}" for count in fills[1:]))
    for row in kind_rows:
        print(row)
    print(
        f"\nConfidence (calibration error: test set before / after; realistic set after; answers below "
        f"{calibration.UNSURE_BELOW:.0%} are unsure)"
    )
    columns = f"{'T':>5} {'test ECE':>15} {'real ECE':>9} {'unsure':>7} {'right if unsure':>16} {'if sure':>8}"
    print(f"{'model':<26} {columns}")
    robust, on_test = {}, {}
    for name, run, confidence, correct in confidence_rows:
        result = evaluate(run.model, data.test_images, data.test_labels)
        before, after = result.reliability(run.temperature)
        on_test[name] = []
        for line in (calibration.UNSURE_BELOW, 0.9):
            part = result.unsure_split(line)
            on_test[name].append(
                f"below {line:.0%} {part.below:.1%} (right {part.right_below:.0%} against {part.right_above:.2%})"
            )
        real = calibration.reliability(confidence, correct)
        unsure = calibration.split(confidence, correct)
        print(
            f"{name:<26} {run.temperature:>5.2f} {before.error:>7.2%} / {after.error:.2%} {real.error:>9.2%} "
            f"{unsure.below:>7.1%} {unsure.right_below:>16.1%} {unsure.right_above:>8.1%}"
        )
        robust[name] = _temperature_without_costliest(run, data, 10)
    print(
        "T fitted without the 10 costliest validation images: " + ", ".join(f"{n} {t:.2f}" for n, t in robust.items())
    )
    for name, shares in on_test.items():
        print(f"test answers of {name}: " + "; ".join(shares))


def _temperature_without_costliest(run, data, count: int) -> float:
    """The temperature fitted on the run's validation split less its ``count`` costliest images."""
    from mnist_model import calibration
    from mnist_model.evaluation import predict_probabilities
    from mnist_model.training import validation_split

    held_out, _ = validation_split(run.settings, len(data.train_images))
    labels = data.train_labels[held_out].astype(np.int64)
    raw = calibration.uncalibrated(predict_probabilities(run.model, data.train_images[held_out]), run.temperature)
    logits = np.log(np.clip(raw, 1e-300, 1.0))
    loss = -logits[np.arange(len(labels)), labels]
    keep = np.argsort(loss)[:-count]
    return calibration.fit_temperature(logits[keep], labels[keep])


def numbers(seeds: list[int], with_cnn: bool) -> None:
    from benchmarks import realistic_digits as realistic
    from mnist_model import TrainingSettings, load_mnist
    from mnist_model.predict import Predictor
    from mnist_model.training import train

    samples = [sample for seed in seeds for sample in realistic.realistic_numbers(150, seed=seed)]
    started = time.perf_counter()
    prepared = [
        preprocess_canvas(sample.canvas) if sample.canvas is not None else preprocess_file(sample.data)
        for sample in samples
    ]
    per_image_ms = (time.perf_counter() - started) * 1000 / len(samples)
    styles = np.array([sample.style for sample in samples])
    cut = np.array([len(result.digits) == len(sample.label) for sample, result in zip(samples, prepared, strict=True)])
    singles = [sample for seed in seeds for sample in realistic.realistic_set(300, seed=seed)]
    taken_for_numbers = sum(
        (preprocess_canvas(s.canvas) if s.canvas is not None else preprocess_file(s.data)).is_number for s in singles
    )
    print(
        f"\nNumbers: {len(samples)} images of 2-4 digits (seeds {', '.join(map(str, seeds))}), "
        f"{per_image_ms:.0f} ms each to preprocess; {taken_for_numbers} of {len(singles)} one-digit images "
        f"taken for numbers; {sum(any('outlined' in note for note in result.notes) for result in prepared)} "
        "numbers filled as outlines"
    )
    print(f"{'':<26} {'all':>6}  " + "  ".join(f"{style:>16}" for style in realistic.STYLES))

    def row(name: str, hits: np.ndarray) -> None:
        by_style = "  ".join(f"{hits[styles == style].mean():>16.1%}" for style in realistic.STYLES)
        print(f"{name:<26} {hits.mean():>6.1%}  {by_style}")

    row("cut into its digits", cut)
    candidates = {"mlp quick (served first)": TrainingSettings.quick(), "mlp augmented": TrainingSettings()}
    if with_cnn:
        candidates["default: cnn, recommended"] = TrainingSettings.recommended("cnn")
    data = load_mnist()
    for name, settings in candidates.items():
        predictor = Predictor(train(settings, data=data).model)
        read = np.array(
            [
                result.is_number
                and "".join(str(d) for d in predictor.predict(result.digit_inputs).argmax(axis=1)) == sample.label
                for sample, result in zip(samples, prepared, strict=True)
            ]
        )
        row(f"read exactly: {name.split(',')[0]}", read)


def non_digits(seeds: list[int]) -> None:
    from benchmarks import realistic_digits as realistic
    from mnist_model import config, detector, load_mnist

    data = load_mnist()
    folder = config.detector_dir()
    started = time.perf_counter()
    trained_now = detector.read(data, folder) is None
    checker = detector.load(data, folder)
    seconds = time.perf_counter() - started

    def flagged(samples) -> np.ndarray:
        result = []
        for sample in samples:
            try:
                prepared = (
                    preprocess_canvas(sample.canvas) if sample.canvas is not None else preprocess_file(sample.data)
                )
            except ImageError:
                result.append(True)
            else:
                result.append(
                    detector.reason(checker.scores(prepared.digit_inputs), prepared.digit_inputs, prepared.model_input)
                    is not None
                )
        return np.array(result)

    mnist_flagged = np.mean(checker.scores(data.test_images.astype(np.float32) / 255) < detector.THRESHOLD)
    digits = flagged([sample for seed in seeds for sample in realistic.realistic_set(300, seed=seed)])
    others = [sample for seed in seeds for sample in realistic.realistic_non_digits(120, seed=seed)]
    hits = flagged(others)
    kinds = np.array([sample.kind for sample in others])
    print(
        f"\nNot a digit (threshold {detector.THRESHOLD}; detector {'trained' if trained_now else 'loaded'} in "
        f"{seconds:.1f} s): flagged {mnist_flagged:.2%} of the MNIST test digits, {digits.mean():.1%} of "
        f"{len(digits)} realistic digits, {hits.mean():.1%} of {len(hits)} non-digits"
    )
    print("  by kind: " + ", ".join(f"{kind} {hits[kinds == kind].mean():.0%}" for kind in realistic.NON_DIGIT_KINDS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per case (default 50)")
    parser.add_argument("--accuracy", action="store_true", help="also measure accuracy on the realistic set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="realistic sets to use (default 0)")
    parser.add_argument("--cnn", action="store_true", help="include the recommended cnn in the accuracy table")
    arguments = parser.parse_args()
    speed(arguments.repeats)
    if arguments.accuracy:
        accuracy(arguments.seeds, arguments.cnn)
        numbers(arguments.seeds, arguments.cnn)
        non_digits(arguments.seeds)


if __name__ == "__main__":
    main()
