"""Hostile and broken files through the image pipeline in this process and through the command line.

"Handled cleanly" means: a refused file gets a message naming it and what is accepted (never a
traceback, crash or hang), and a genuine digit in an unusual format is predicted correctly. In
process, each file also has its CPU seconds and the peak memory it adds measured: the bound is 150 MB
over a normal upload's peak (a check) and 2 s of CPU (a figure; 20 s counts as a hang).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial

import pytest

from reliability.corpus import COSTLY, DRAWING_SIZE, Case, write_corpus
from reliability.processes import PROJECT_ROOT, peak_resident_mb, reset_peak, resident_mb, suite_environment
from reliability.tampering import plant_escaping_manifest

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

# Longer than this for one file is treated as a hang.
HANG_SECONDS = 20.0
# The most peak memory one upload or drawing may add beyond what a normal upload adds, in MB.
MAX_EXTRA_MB = 150


def handled_cleanly(case: Case, outcome: str, message: str, digit: int | None, *, named: bool = True) -> bool:
    if case.expect == "predict":
        return outcome == "predict" and digit == case.digit
    # A clear message names the file it is about (a drawing has no name) and is a sentence, not a traceback.
    return (
        outcome == "refuse"
        and (case.name in message or not named)
        and (case.reason is None or case.reason in message)
        and "Traceback" not in message
    )


@dataclass(frozen=True)
class Cost:
    outcome: str  # "predict", "refuse" or "crash"
    detail: str
    digit: int | None
    cpu_seconds: float
    extra_mb: float


def cost_of(work, predictor) -> Cost:
    """Run ``work`` (preparing an image) and predict its digit: the outcome, the CPU seconds this process
    spent and the peak resident memory it added, in MB, measured from a trimmed heap."""
    from mnist_model import images

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the figures are only less exact
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    reset_peak()
    before = resident_mb()
    started = time.process_time()
    try:
        prepared = work()
        digit = int(predictor.predict_digit(prepared.model_input)[0])
        outcome, detail = "predict", f"predicted {digit}"
    except images.ImageError as error:
        outcome, detail, digit = "refuse", str(error), None
    except Exception as error:  # noqa: BLE001  (any other exception is exactly what this looks for)
        outcome, detail, digit = "crash", f"{type(error).__name__}: {error}", None
    return Cost(outcome, detail, digit, time.process_time() - started, peak_resident_mb() - before)


@pytest.fixture(scope="module")
def normal_upload_mb(predictor, good) -> float:
    """The peak memory a plain PNG of a digit adds (the second time: the first also warms up the predictor)."""
    from mnist_model import images

    for _ in range(2):
        cost = cost_of(partial(images.preprocess_file, good.content, name=good.name), predictor)
    return cost.extra_mb


class Worst:
    """The costliest case seen so far in each group, for the figures."""

    def __init__(self, figures, normal_mb: float) -> None:
        self.figures, self.normal_mb, self.rows = figures, normal_mb, {}

    def add(self, groups: list[str], case: Case, cost: Cost, clean: bool) -> None:
        for group in groups:
            rows = self.rows.setdefault(group, [])
            rows.append((case.name, cost.cpu_seconds, cost.extra_mb, clean))
            costliest = max(rows, key=lambda row: row[1])
            largest = max(rows, key=lambda row: row[2])
            self.figures.note(
                f"{group} in process",
                f"{len(rows)} tried, {sum(row[3] for row in rows)} handled cleanly; worst CPU {costliest[1]:.2f} s "
                f"({costliest[0]}; bound 2 s), worst extra peak memory {largest[2]:+.0f} MB ({largest[0]}; bound "
                f"{MAX_EXTRA_MB} MB over a normal upload's {self.normal_mb:+.0f} MB)",
            )


@pytest.fixture(scope="module")
def worst(figures, normal_upload_mb) -> Worst:
    return Worst(figures, normal_upload_mb)


def test_each_file_in_process_is_refused_clearly_or_predicted_right(
    file_name, files, predictor, normal_upload_mb, worst
):
    from mnist_model import images

    case = files[file_name]
    cost = cost_of(partial(images.preprocess_file, case.content, name=case.name), predictor)
    clean = handled_cleanly(case, cost.outcome, cost.detail, cost.digit)
    worst.add(["files", *(tag for tag in case.tags if tag == COSTLY)], case, cost, clean)
    shown = f"{cost.outcome}: {cost.detail[:200]}; {cost.cpu_seconds:.2f} s of CPU, peak {cost.extra_mb:+.0f} MB"
    assert clean, f"{case.what}: {shown}"
    assert cost.cpu_seconds < HANG_SECONDS, shown
    assert cost.extra_mb <= normal_upload_mb + MAX_EXTRA_MB, shown


def test_each_drawing_in_process_is_refused_clearly_or_predicted_right(
    drawing_name, drawings, predictor, normal_upload_mb, worst
):
    from mnist_model import images

    case = drawings[drawing_name]
    cost = cost_of(partial(images.preprocess_drawing, case.content, DRAWING_SIZE), predictor)
    clean = handled_cleanly(case, cost.outcome, cost.detail, cost.digit, named=False)
    worst.add(["drawings"], case, cost, clean)
    shown = f"{cost.outcome}: {cost.detail[:200]}; {cost.cpu_seconds:.2f} s of CPU, peak {cost.extra_mb:+.0f} MB"
    assert clean, f"{case.what}: {shown}"
    assert cost.cpu_seconds < HANG_SECONDS, shown
    assert cost.extra_mb <= normal_upload_mb + MAX_EXTRA_MB, shown


@dataclass(frozen=True)
class CommandSeen:
    status: int
    lines: list[str]
    errors: str


@pytest.fixture(scope="module")
def command_line(files, model_store, scratch, figures) -> dict[str, CommandSeen]:
    """``python -m mnist_model predict FILE...`` over the whole corpus at once, in JSON and in text."""
    paths = write_corpus(scratch / "corpus", list(files.values()))
    command = [sys.executable, "-m", "mnist_model", "predict", *map(str, paths)]
    seen = {}
    for output in ("json", "text"):
        started = time.monotonic()
        completed = subprocess.run(
            command + (["--json"] if output == "json" else []),
            cwd=PROJECT_ROOT,
            env=suite_environment(model_store),
            capture_output=True,
            text=True,
            timeout=600,
        )
        figures.note(f"command line, {output} output", f"{len(paths)} files in {time.monotonic() - started:.1f} s")
        seen[output] = CommandSeen(completed.returncode, completed.stdout.splitlines(), completed.stderr)
    return seen


@pytest.mark.parametrize("output", ["json", "text"])
def test_the_command_line_answers_each_file_on_its_own_line_and_exits_1(command_line, files, output):
    seen = command_line[output]
    assert seen.status == 1, f"exit {seen.status}: some files are refused, so the status is 1"
    assert "Traceback" not in seen.errors, seen.errors[-500:]
    assert len(seen.lines) == len(files), f"{len(seen.lines)} lines for {len(files)} files"


def test_the_command_line_answers_each_file_cleanly(command_line, file_name, files, scratch, figures):
    case, path = files[file_name], str(scratch / "corpus" / file_name)
    records = {}
    for line in command_line["json"].lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            record = json.loads(line)
            records[record["file"]] = record
    record = records.get(path, {})
    outcome = "refuse" if "error" in record else "predict" if "digit" in record else "missing"
    clean = handled_cleanly(case, outcome, record.get("error", ""), record.get("digit"))
    assert figures.tally("handled cleanly through the command line", clean), json.dumps(record)[:300]
    text = [line for line in command_line["text"].lines if line.startswith(f"{path}: ")]
    assert len(text) == 1, f"text lines starting with the file's name: {text}"


@pytest.mark.parametrize(
    "command",
    [
        "runs, over a planted manifest",
        "predict, a file named with escapes",
        "predict --json, a file named with escapes",
    ],
)
def test_no_control_character_reaches_the_terminal(command, tmp_path, model_store):
    """Text from files the command line did not write (a planted manifest, file names) reaches the
    terminal with its control characters escaped, so it cannot send escape sequences."""
    store = tmp_path / "store"
    escape = plant_escaping_manifest(store)
    named = tmp_path / f"{escape}digit.txt"
    named.write_text("not an image")
    arguments, folder = {
        "runs, over a planted manifest": (["runs"], store),
        "predict, a file named with escapes": (["predict", str(named)], model_store),
        "predict --json, a file named with escapes": (["predict", "--json", str(named)], model_store),
    }[command]
    completed = subprocess.run(
        [sys.executable, "-m", "mnist_model", *arguments],
        cwd=PROJECT_ROOT,
        env=suite_environment(folder),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert "\x1b" not in output and "\x07" not in output, repr(output[-300:])
    assert "Traceback" not in output, output[-1000:]
