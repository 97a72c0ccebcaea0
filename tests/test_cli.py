import json
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize(
    "arguments",
    [("train", "--epochs", "0"), ("summary", "--batch-size", "0"), ("evaluate", "--data", "/nowhere/mnist.npz")],
    ids=["train", "summary", "evaluate"],
)
def test_a_mistake_is_answered_before_tensorflow_is_imported(arguments):
    script = (
        "import sys\n"
        "from mnist_model.cli import main\n"
        f"status = main({list(arguments)!r})\n"
        "print(status, 'tensorflow' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT, timeout=120)
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
