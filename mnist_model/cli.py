"""The command line: ``python -m mnist_model train | evaluate | predict | summary | runs``.

Every command takes ``--json`` for machine-readable output. Exit status: 0 on success, 1 when the
work failed (no data, a refused image file), 2 for a usage error, which is reported in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mnist_model import calibration, detector
from mnist_model.data import DataError
from mnist_model.settings import ARCHITECTURES, STRATEGIES, TrainingSettings


class UsageError(Exception):
    """The command line was wrong; the message says how."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    try:
        arguments = parser.parse_args(argv)
        if arguments.command is None:
            raise UsageError(f"{parser.prog}: choose a command: train, evaluate, predict, summary or runs (see --help)")
        return arguments.handler(arguments)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mnist_model", description="Train, evaluate and use an MNIST digit classifier.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    settings = _Parser(add_help=False)
    group = settings.add_argument_group("training settings (defaults: the recommended ones for the architecture)")
    group.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        help="cnn: the convnet, the default model (unless $MNIST_DEFAULT_MODEL is mlp); mlp: the classic dense network",
    )
    group.add_argument("--epochs", type=int)
    group.add_argument("--batch-size", type=int)
    group.add_argument("--learning-rate", type=float)
    group.add_argument("--validation-size", type=int)
    group.add_argument("--seed", type=int)
    group.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    group.add_argument("--strategy", choices=STRATEGIES)
    output = _Parser(add_help=False)
    output.add_argument("--json", action="store_true", help="machine-readable output")
    # Only the commands that read MNIST take --data; summary and runs do not.
    common = _Parser(add_help=False, parents=[output])
    common.add_argument("--data", type=Path, help="mnist.npz or a folder of IDX files (default: $MNIST_DATA, Keras)")

    train = commands.add_parser("train", parents=[settings, common], help="train (or load the cached run)")
    train.add_argument("--retrain", action="store_true", help="train even if a cached run exists (not cached)")
    train.set_defaults(handler=_train)
    evaluate = commands.add_parser(
        "evaluate", parents=[settings, common], help="metrics on the test set, or accuracy on a folder of your images"
    )
    evaluate.add_argument(
        "--images",
        type=Path,
        metavar="FOLDER",
        help="score on the images of FOLDER instead of the test set: a labels.csv with the columns file and label "
        "(as the dashboard's My digits page saves and downloads them), beside the image files",
    )
    evaluate.set_defaults(handler=_evaluate)
    predict = commands.add_parser("predict", parents=[settings, common], help="predict test images or image files")
    predict.add_argument("files", nargs="*", type=Path, metavar="FILE", help="image files (PNG, JPEG, BMP, GIF, WebP)")
    predict.add_argument("--index", type=int, action="append", help="a test image index, 0-9999 (repeatable)")
    predict.set_defaults(handler=_predict)
    summary = commands.add_parser("summary", parents=[settings, output], help="the model's layers")
    summary.set_defaults(handler=_summary)
    runs = commands.add_parser("runs", parents=[output], help="list the cached training runs")
    runs.set_defaults(handler=_runs)
    return parser


def _settings(arguments) -> TrainingSettings:
    changes = {
        name: getattr(arguments, name)
        for name in ("epochs", "batch_size", "learning_rate", "validation_size", "seed", "augment", "strategy")
        if getattr(arguments, name) is not None
    }
    try:
        architecture = arguments.architecture or TrainingSettings.default().architecture
        return TrainingSettings.recommended(architecture, **changes)
    except ValueError as error:
        raise UsageError(f"python -m mnist_model {arguments.command}: {error}") from error


def _trained(arguments, *, quiet: bool = False):
    """The run for the command's settings, and the data. TensorFlow is imported only once the settings and
    the data are known to be good, so that a mistake on the command line is answered at once."""
    from mnist_model.data import load_mnist

    settings = _settings(arguments)
    data = load_mnist(arguments.data)
    from mnist_model.training import train

    progress = None if quiet or arguments.json or not sys.stderr.isatty() else _ProgressBar()
    run = train(settings, data=data, progress=progress, use_cache=not getattr(arguments, "retrain", False))
    for note in run.notes:
        print(f"warning: {note}", file=sys.stderr)
    return run, data


def _train(arguments) -> int:
    run, _ = _trained(arguments)
    result = {
        "settings": run.settings.to_dict(),
        "from_cache": run.from_cache,
        "train_seconds": round(run.train_seconds, 2),
        "test_loss": round(run.test_loss, 4),
        "test_accuracy": run.test_accuracy,
        "history": [
            {name: round(value, 4) if isinstance(value, float) else value for name, value in vars(epoch).items()}
            for epoch in run.history
        ],
        "model_file": str(run.model_file) if run.model_file else None,
    }
    if arguments.json:
        print(json.dumps(result))
        return 0
    print(f"{run.settings.describe()}")
    print(f"{'epoch':>5} {'loss':>8} {'accuracy':>9} {'val_loss':>9} {'val_acc':>8} {'seconds':>8}")
    for epoch in run.history:
        print(
            f"{epoch.epoch:>5} {epoch.loss:>8.4f} {epoch.accuracy:>9.4f} {epoch.val_loss:>9.4f} "
            f"{epoch.val_accuracy:>8.4f} {epoch.seconds:>8.2f}"
        )
    source = "loaded from the cache" if run.from_cache else "trained"
    print(f"{source}: test accuracy {run.test_accuracy:.2%}, test loss {run.test_loss:.4f}")
    print(f"training took {run.train_seconds:.1f} s; model file: {run.model_file or 'not saved'}")
    return 0


def _evaluate(arguments) -> int:
    if arguments.images is not None:
        return _evaluate_images(arguments)
    run, data = _trained(arguments)
    from mnist_model.evaluation import evaluate

    evaluation = evaluate(run.model, data.test_images, data.test_labels)
    before, after = evaluation.reliability(run.temperature)
    if arguments.json:
        result = {
            "loss": evaluation.loss,
            "accuracy": evaluation.accuracy,
            "confusion": evaluation.confusion.tolist(),
            "per_class": evaluation.per_class_rows(),
            "misclassified": len(evaluation.misclassified),
            "calibration": {
                "temperature": run.temperature,
                "error_before": before.error,
                "error_after": after.error,
                "unsure": evaluation.unsure_split().below,
            },
        }
        print(json.dumps(result))
        return 0
    print(f"{run.settings.describe()}")
    print(f"test accuracy {evaluation.accuracy:.2%}, loss {evaluation.loss:.4f}, {len(evaluation.misclassified)} wrong")
    print(
        f"calibration error {before.error:.2%} before and {after.error:.2%} after temperature scaling "
        f"(T = {run.temperature:.3g})"
    )
    print(f"\n{'digit':>5} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}")
    for row in evaluation.per_class_rows():
        print(f"{row['digit']:>5} {row['precision']:>9.4f} {row['recall']:>7.4f} {row['f1']:>6.4f} {row['support']:>7}")
    print("\nconfusion matrix (rows: true digit, columns: predicted)")
    print("     " + "".join(f"{digit:>6}" for digit in range(10)))
    for digit, row in enumerate(evaluation.confusion):
        print(f"{digit:>5}" + "".join(f"{count:>6}" for count in row))
    return 0


def _evaluate_images(arguments) -> int:
    """Accuracy on a folder of labelled images (see :mod:`mnist_model.mydigits`). The folder is read and
    every image preprocessed before TensorFlow is imported; a bad folder or CSV is a usage error."""
    from mnist_model import mydigits

    command = "python -m mnist_model evaluate"
    try:
        digit_set = mydigits.load(arguments.images, missing_ok=False)
        if digit_set.problems:
            more = len(digit_set.problems) - 1
            others = f" (and {more} more {'row' if more == 1 else 'rows'} with problems)" if more else ""
            labels = arguments.images / mydigits.LABELS_FILE
            raise UsageError(f"{command}: {_shown(labels)}, {_shown(digit_set.problems[0])}{others}")
        if not digit_set.entries:
            raise UsageError(f"{command}: {_shown(arguments.images / mydigits.LABELS_FILE)} lists no images")
        inputs = mydigits.prepare(mydigits.samples(digit_set))
    except mydigits.MyDigitsError as error:
        raise UsageError(f"{command}: {_shown(error)}") from None
    run, _ = _trained(arguments)
    if inputs.accepted.any():
        from mnist_model.predict import Predictor

        probabilities = Predictor(run.model).predict(inputs.model_inputs)
    else:
        probabilities = np.zeros((0, 10), dtype=np.float32)
    result = mydigits.score(digit_set.entries, inputs, probabilities)
    if arguments.json:
        records = [
            {
                "file": item.entry.file,
                "label": item.entry.label,
                "source": item.entry.source,
                "predicted": item.predicted,
                "confidence": None if item.confidence is None else round(item.confidence, 6),
                "correct": item.correct,
                **({"error": item.refusal} if item.refusal is not None else {}),
            }
            for item in result.results
        ]
        accuracy = None if result.count == 0 else result.accuracy
        summary = {"folder": str(arguments.images), "accuracy": accuracy, "count": result.count}
        print(json.dumps({**summary, "right": result.right, "refused": result.refused, "images": records}))
        return 1 if result.refused else 0
    print(f"{run.settings.describe()}")
    if result.count:
        print(
            f"{_shown(arguments.images)}: accuracy {result.accuracy:.2%} ({result.right} of {result.count} right"
            + (f", {result.refused} refused)" if result.refused else ")")
        )
    else:
        print(f"{_shown(arguments.images)}: none of the {result.refused} images could be read")
    for item in result.wrong:
        answer = f"a {item.entry.label} read as {item.predicted} ({_confidence(item.confidence)})"
        print(f"  wrong: {_shown(item.entry.file)}: {answer}")
    for item in result.results:
        if item.refusal is not None:
            print(f"  refused: {_shown(item.entry.file)}: {_shown(item.refusal)}")
    return 1 if result.refused else 0


def _predict(arguments) -> int:
    if not arguments.files and not arguments.index:
        raise UsageError("python -m mnist_model predict: give image FILEs or --index N (see --help)")
    run, data = _trained(arguments, quiet=True)
    from mnist_model.predict import Predictor

    predictor = Predictor(run.model)
    refused = False
    for index in arguments.index or []:
        if not 0 <= index < len(data.test_images):
            raise UsageError(f"python -m mnist_model predict: --index must be from 0 to {len(data.test_images) - 1}")
        digit, confidence, probabilities = predictor.predict_digit(data.test_images[index])
        result = {"index": index, "label": int(data.test_labels[index])}
        _print_prediction(arguments.json, result, digit, confidence, probabilities)
    checker = _digit_detector(data, arguments) if arguments.files else None
    for path in arguments.files:
        try:
            image = _read_image(path)
        except ValueError as error:
            refused = True
            if arguments.json:
                print(json.dumps({"file": str(path), "error": str(error)}))
            else:
                print(f"{_shown(path)}: error: {_shown(error)}")
            continue
        why_not = detector.reason(checker.scores(image.digit_inputs), image.digit_inputs, image.model_input)
        if why_not is not None:
            if arguments.json:
                print(json.dumps({"file": str(path), "digit": None, "reason": why_not}))
            else:
                print(f"{_shown(path)}: not a digit: {why_not}")
        elif image.is_number:
            _print_number(arguments.json, str(path), predictor.predict(image.digit_inputs))
        else:
            digit, confidence, probabilities = predictor.predict_digit(image.model_input)
            _print_prediction(arguments.json, {"file": str(path)}, digit, confidence, probabilities)
    return 1 if refused else 0


def _digit_detector(data, arguments):
    """The digit detector, trained first (once, two to three minutes) if the artifacts folder has none."""
    from mnist_model import config

    folder = config.detector_dir()
    if detector.read(data, folder) is None and not arguments.json:
        print("training the digit detector (once, two to three minutes)...", file=sys.stderr)
    return detector.load(data, folder)


def _shown(text: object) -> str:
    """``text`` for a terminal: control characters (in a file name, say) written as escapes, not obeyed."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in str(text))


def _read_image(path: Path):
    from mnist_model import images

    try:
        with open(path, "rb") as stream:
            return images.preprocess_file(stream, name=path.name)
    except OSError as error:
        raise images.ImageError(f"cannot read the file ({error.strerror or error})") from error


def _print_prediction(as_json: bool, result: dict, digit: int, confidence: float, probabilities) -> None:
    if as_json:
        extra = {"digit": digit, "confidence": round(confidence, 6), "unsure": calibration.unsure(confidence)}
        print(json.dumps({**result, **extra, "probabilities": [round(float(p), 6) for p in probabilities]}))
    elif "file" in result:
        print(f"{_shown(result['file'])}: {digit} ({_confidence(confidence)})")
    else:
        print(f"test image {result['index']}: {digit} ({_confidence(confidence)}), true label {result['label']}")


def _confidence(confidence: float) -> str:
    return f"{confidence:.1%}, unsure" if calibration.unsure(confidence) else f"{confidence:.1%}"


def _print_number(as_json: bool, file: str, probabilities: np.ndarray) -> None:
    """A number: its digits left to right, each with its confidence; the number's own confidence is
    their product, the chance that every digit is right if their errors are independent."""
    digits = probabilities.argmax(axis=1)
    confidences = probabilities.max(axis=1)
    number = "".join(str(int(digit)) for digit in digits)
    if as_json:
        each = [{"digit": int(d), "confidence": round(float(c), 6)} for d, c in zip(digits, confidences, strict=True)]
        print(
            json.dumps(
                {
                    "file": file,
                    "digit": None,
                    "number": number,
                    "digits": each,
                    "confidence": round(float(np.prod(confidences)), 6),
                    "unsure": calibration.unsure(float(np.prod(confidences))),
                }
            )
        )
    else:
        shown = ", ".join(f"{int(d)} {_confidence(c)}" for d, c in zip(digits, confidences, strict=True))
        print(f"{_shown(file)}: number {number} ({shown})")


def _summary(arguments) -> int:
    settings = _settings(arguments)
    from mnist_model.model import build_model, describe_layers

    # The layer structure does not depend on training, so an untrained model describes it.
    summary = describe_layers(build_model(settings))
    if arguments.json:
        print(
            json.dumps(
                {
                    "layers": summary.as_rows(),
                    "total_parameters": summary.total_parameters,
                    "trainable_parameters": summary.trainable_parameters,
                }
            )
        )
        return 0
    print(f"{'layer':<22} {'type':<20} {'output shape':<22} {'parameters':>10}")
    for row in summary.as_rows():
        print(f"{row['name']:<22} {row['type']:<20} {row['output_shape']:<22} {row['parameters']:>10,}")
    print(f"total {summary.total_parameters:,} parameters ({summary.trainable_parameters:,} trainable)")
    return 0


def _runs(arguments) -> int:
    from mnist_model.artifacts import list_runs

    records = list_runs()
    if arguments.json:
        rows = [
            {
                "key": record.key,
                "settings": record.settings.to_dict(),
                "test_accuracy": record.test_accuracy,
                "created": record.created,
                "train_seconds": record.train_seconds,
            }
            for record in records
        ]
        print(json.dumps(rows))
        return 0
    if not records:
        print("no cached runs yet: python -m mnist_model train")
    for record in records:
        print(f"{record.created}  {record.test_accuracy:.2%}  {record.settings.describe()}  [{record.key}]")
    return 0


class _ProgressBar:
    """A one-line progress bar on standard error."""

    def __init__(self, width: int = 30):
        self.width = width

    def __call__(self, progress) -> None:
        filled = int(self.width * progress.fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        left = progress.seconds_left
        eta = f", {left:.0f} s left" if left is not None else ""
        last = progress.history[-1] if progress.history else None
        metrics = f", val acc {last.val_accuracy:.4f}" if last else ""
        epoch = f"epoch {progress.epoch}/{progress.epochs}"
        line = f"\r[{bar}] {progress.fraction:4.0%} {epoch} {progress.phase}{eta}{metrics}"
        print(line.ljust(100), end="", file=sys.stderr, flush=True)
        if progress.phase == "done":
            print(file=sys.stderr)
