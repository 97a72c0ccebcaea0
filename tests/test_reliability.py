"""CI's share of the reliability suite: ``python -m reliability --quick``, one test per section.

The suite runs once for the module, as a separate process against a real dashboard server, headless
Chromium and the real MNIST copy (see ``reliability/``); each test then asserts that one section's
checks all passed, and names the failed checks when not. Several minutes of work: marked ``browser``
and ``integration``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The quick run takes ten to twenty-five minutes on two cores (it trains the default model several
# times, and some runners train it five times slower than others); it is stopped after 45 minutes.
SUITE_TIMEOUT_SECONDS = 45 * 60


@pytest.fixture(scope="module")
def sections(mnist_path: Path, tmp_path_factory: pytest.TempPathFactory, trained_detector) -> dict[str, dict]:
    """The quick suite's results, by section title."""
    report = tmp_path_factory.mktemp("reliability") / "report.json"
    environment = {**os.environ, "MNIST_DATA": str(mnist_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(
        [sys.executable, "-m", "reliability", "--quick", "--report", str(report)],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_SECONDS,
    )
    print(completed.stdout)
    assert report.exists(), f"the suite wrote no report (exit {completed.returncode}):\n{completed.stderr[-3000:]}"
    results = json.loads(report.read_text())["sections"]
    return {section["title"]: section for section in results}


def failures(sections: dict[str, dict], prefix: str) -> list[str]:
    """The failed checks of every section whose title starts with ``prefix``; at least one must exist."""
    chosen = [section for title, section in sections.items() if title.startswith(prefix)]
    assert chosen, f"no section starting {prefix!r} ran; sections: {sorted(sections)}"
    return [
        f"{section['title']}: {check['name']}: {check['detail'][:400]}"
        for section in chosen
        for check in section["checks"]
        if not check["passed"]
    ]


SECTIONS = {
    "eight_sessions_on_an_empty_cache_train_once_and_show_the_same_model": "Load: eight sessions on an empty cache",
    "hostile_uploads_get_clear_messages_and_the_server_keeps_answering": "Hostile input: browser uploads",
    "uploads_over_the_cap_are_refused_by_the_server": "Hostile input: upload size cap",
    "typed_test_indices_are_bounded": "Hostile input: widget values",
    "forged_test_indices_are_bounded": "Hostile input: forged widget values",
    "soak_keeps_memory_and_threads_flat": "Soak:",
    "hostile_files_on_the_command_line_get_one_clear_line_each": "Hostile input: command line",
    "hostile_files_in_process_are_refused_or_predicted_correctly": "Hostile input: the image pipeline in process",
    "only_this_machines_own_host_names_get_a_session": "Hostile input: host names",
    "no_control_character_reaches_the_terminal": "Hostile input: terminal escapes",
    "sixteen_threads_share_one_predictor_without_errors": "Load: 16 threads on one predictor",
    "a_kill_during_training_or_saving_leaves_nothing_half_written_in_use": "Faults: killed during training and saving",
    "corrupted_cache_entries_are_detected_reported_and_rebuilt": "Faults: corrupted cache entries",
    "planted_model_files_are_refused_before_any_code_runs": "Faults: planted model files",
    "an_uncreatable_artifacts_folder_falls_back_to_memory": "Faults: artifacts folder missing and not creatable",
    "missing_or_corrupt_mnist_is_explained_in_the_dashboard": "Faults: MNIST missing or corrupt",
    "engine_faults_are_explained_and_nothing_half_written_is_stored": "Faults: the model engine",
}


@pytest.mark.parametrize("prefix", list(SECTIONS.values()), ids=list(SECTIONS))
def test_reliability_section(sections: dict[str, dict], prefix: str) -> None:
    assert not failures(sections, prefix)


def test_no_section_crashed(sections: dict[str, dict]) -> None:
    crashed = [
        f"{title}:\n{section['checks'][0]['detail']}"
        for title, section in sections.items()
        if title.endswith("(crashed)")
    ]
    assert not crashed, "\n\n".join(crashed)
