import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parent.parent


def run_cli(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_model", *arguments],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def stderr_lines(completed: subprocess.CompletedProcess) -> list[str]:
    """What the command said on standard error, without TensorFlow's start-up lines."""
    noise = ("WARNING: All log messages", "I0000", "To enable the following", "E0000", "W0000")
    return [line for line in completed.stderr.splitlines() if line.strip() and not line.startswith(noise)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((), "choose a command"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        (("train", "--epochs", "0"), "epochs must be from 1 to 1000; got 0"),
        (("train", "--batch-size", "many"), "invalid int value: 'many'"),
        (("train", "--architecture", "rnn"), "invalid choice: 'rnn'"),
        (("predict",), "give image FILEs or --index N"),
    ],
)
def test_usage_error_prints_one_line_and_exits_2(arguments, message):
    completed = run_cli(*arguments)
    assert completed.returncode == 2
    lines = stderr_lines(completed)
    assert len(lines) == 1 and message in lines[0], completed.stderr
    assert completed.stdout == ""


def main_in_a_new_process(arguments: list[str]) -> subprocess.CompletedProcess:
    """The command line's ``main(arguments)`` in a new Python process, which then prints its exit status
    and whether TensorFlow was imported."""
    script = (
        "import sys\n"
        "from mnist_model.cli import main\n"
        f"status = main({arguments!r})\n"
        "print(status, 'tensorflow' in sys.modules)\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT, timeout=120)


@pytest.mark.parametrize(
    "arguments",
    [("train", "--epochs", "0"), ("summary", "--batch-size", "0"), ("evaluate", "--data", "/nowhere/mnist.npz")],
    ids=["train", "summary", "evaluate"],
)
def test_a_mistake_is_answered_before_tensorflow_is_imported(arguments):
    completed = main_in_a_new_process(list(arguments))
    assert completed.stdout.split() in (["2", "False"], ["1", "False"]), completed.stdout + completed.stderr


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "summary", "runs"])
def test_every_command_has_help(command):
    completed = run_cli(command, "--help")
    assert completed.returncode == 0
    assert "--json" in completed.stdout


@pytest.mark.slow
def test_summary_json_lists_the_layers_of_the_classic_network():
    completed = run_cli("summary", "--json", "--architecture", "mlp")
    summary = json.loads(completed.stdout)
    assert [row["type"] for row in summary["layers"]] == ["Flatten", "Dense", "Dense", "Dense"]
    assert summary["total_parameters"] == 118_282


@pytest.mark.slow
@pytest.mark.parametrize(
    ("environment", "architecture"), [({}, "cnn"), ({"MNIST_DEFAULT_MODEL": "mlp"}, "mlp")], ids=["unset", "mlp"]
)
def test_the_default_model_is_the_convnet_unless_configured(environment, architecture):
    from mnist_model.cli import _build_parser, _settings
    from mnist_model.settings import TrainingSettings

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MNIST_DEFAULT_MODEL", raising=False)
        for name, value in environment.items():
            patch.setenv(name, value)
        for command in (["train"], ["evaluate"], ["predict", "digit.png"], ["summary"]):
            assert _settings(_build_parser().parse_args(command)) == TrainingSettings.recommended(architecture)
    completed = run_cli("summary", "--json", env=environment)
    layers = [row["type"] for row in json.loads(completed.stdout)["layers"]]
    assert ("Conv2D" in layers) is (architecture == "cnn")


def test_an_unknown_default_model_is_a_usage_error():
    completed = run_cli("summary", env={"MNIST_DEFAULT_MODEL": "rnn"})
    assert completed.returncode == 2
    assert "MNIST_DEFAULT_MODEL must be cnn or mlp; it is 'rnn'" in stderr_lines(completed)[0]


def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path):
    completed = run_cli("train", env={"MNIST_DATA": str(tmp_path / "nowhere.npz")})
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert "nowhere.npz, which does not exist" in completed.stderr


def test_runs_never_prints_a_planted_manifests_terminal_escapes(tmp_path):
    from reliability.tampering import plant_escaping_manifest

    plant_escaping_manifest(tmp_path)
    completed = run_cli("runs", env={"MNIST_ARTIFACTS": str(tmp_path)})
    assert completed.returncode == 0
    assert completed.stdout.count("mlp-") == 1 and "mlp-0123456789abcdef" in completed.stdout
    assert "\x1b" not in completed.stdout + completed.stderr


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("digit.png", "digit.png"),
        ("\x1b[2Jdigit.png", "\\x1b[2Jdigit.png"),
        ("a\nb\tc", "a\\nb\\tc"),
        ("seven-7.png", "seven-7.png"),
    ],
)
def test_file_names_reach_the_terminal_with_control_characters_escaped(text, shown):
    from mnist_model.cli import _shown

    assert _shown(text) == shown


def labelled_folder(folder: Path, rows: str, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    (folder / "labels.csv").write_text(rows)
    return folder


def digit_png(image) -> bytes:
    """A MNIST test image as people upload digits: eight times larger, dark ink on white."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(255 - image).resize((224, 224), Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (None, "nowhere does not exist"),
        ("", "must start with a header naming the columns file and label"),
        ("file,label\n", "labels.csv lists no images"),
        ("file,label\na.png,x\na.png,12\n", "labels.csv, line 2: label 'x' is not a digit from 0 to 9 (and 1 more row"),
        ("file,label\ngone.png,3\n", "labels.csv, line 2: file 'gone.png' does not exist"),
    ],
    ids=["no folder", "no header", "empty", "bad label", "missing file"],
)
def test_evaluate_images_answers_a_bad_folder_in_one_line_with_status_2_before_tensorflow(
    tmp_path: Path, rows: str | None, message: str
) -> None:
    folder = tmp_path / "nowhere"
    if rows is not None:
        labelled_folder(folder, rows, {"a.png": b"\x89PNG\r\n\x1a\n"})
    completed = main_in_a_new_process(["evaluate", "--images", str(folder)])
    assert completed.stdout.split() == ["2", "False"], completed.stdout + completed.stderr
    lines = stderr_lines(completed)
    assert len(lines) == 1 and message in lines[0], lines


@pytest.mark.slow
@pytest.mark.integration
def test_evaluate_images_scores_a_folder_as_the_model_reads_each_image(mnist, mnist_path: Path, tmp_path: Path):
    from mnist_model import images, mydigits
    from mnist_model.predict import Predictor
    from mnist_model.settings import TrainingSettings
    from mnist_model.training import train

    folder = tmp_path / "my-digits"
    indices = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 247, 321]  # 247 and 321 are misread by many small networks
    for index in indices:
        mydigits.add(
            folder,
            digit_png(mnist.test_images[index]),
            name=f"{index}.png",
            label=int(mnist.test_labels[index]),
            source="upload",
        )
    blank = digit_png(np.zeros((28, 28), np.uint8))
    mydigits.add(folder, blank, name="blank.png", label=3, source="upload")
    artifacts = tmp_path / "artifacts"
    options = ["--architecture", "mlp", "--epochs", "1", "--no-augment"]
    env = {"MNIST_DATA": str(mnist_path), "MNIST_ARTIFACTS": str(artifacts)}
    completed = run_cli("evaluate", "--images", str(folder), "--json", *options, env=env)
    assert completed.returncode == 1, completed.stderr  # the blank image is refused
    result = json.loads(completed.stdout)
    # The reference: the same cached run, in this process, on the same preprocessing.
    run = train(TrainingSettings.recommended("mlp", epochs=1, augment=False), data=mnist, artifacts_dir=artifacts)
    assert run.from_cache
    predictor = Predictor(run.model)
    expected = [
        int(predictor.predict_digit(images.preprocess_file(digit_png(mnist.test_images[index])).model_input)[0])
        for index in indices
    ]
    labels = [int(mnist.test_labels[index]) for index in indices]
    right = sum(p == label for p, label in zip(expected, labels, strict=True))
    assert [record["predicted"] for record in result["images"]] == [*expected, None]
    assert [record["label"] for record in result["images"]] == [*labels, 3]
    assert (result["count"], result["right"], result["refused"]) == (len(indices), right, 1)
    assert result["accuracy"] == pytest.approx(right / len(indices))
    assert "error" in result["images"][-1] and "error" not in result["images"][0]
    text = run_cli("evaluate", "--images", str(folder), *options, env=env)
    assert f"accuracy {right / len(indices):.2%} ({right} of {len(indices)} right, 1 refused)" in text.stdout
    wrong = [line for line in text.stdout.splitlines() if line.startswith("  wrong: ")]
    assert len(wrong) == len(indices) - right
    # Without --images, evaluate still reports on the MNIST test set with its own fields.
    plain = json.loads(run_cli("evaluate", "--json", *options, env=env).stdout)
    assert {"loss", "accuracy", "confusion", "per_class", "misclassified", "calibration"} == set(plain)
