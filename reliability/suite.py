"""``python -m reliability [--quick | --soak] [--report FILE] [PYTEST OPTIONS ...]``.

The reliability suite is ordinary pytest: the tests marked ``reliability`` (``tests/reliability/``
and the cache's tamper tests in ``tests/test_train.py``). This front runs them in a mode and prints
their figures at the end; anything else on its command line goes to pytest, so ``-k kills`` picks
the kill tests and ``-x`` stops at the first failure. Plain ``pytest`` runs the quick mode with
everything else.

Modes: the default is the full run (about 30 minutes); ``--quick`` is CI's share (a browser subset
of the corpus, a 20-second load test, a short soak, and none of the tests marked ``full_mode``: the
storage faults, which train the default model again); ``--soak`` is the full run with a long soak
(thousands of predictions, hundreds of uploads).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mode:
    """How much of everything a run does."""

    name: str
    browser_all_cases: bool  # upload every corpus file in the browser, not only the marked subset
    load_seconds: float
    soak_predictions: int
    soak_uploads: int
    every_test: bool  # also the tests marked full_mode (storage faults that train the default model again)


MODES = {
    "quick": Mode("quick", False, 20, 1000, 40, False),
    "full": Mode("full", True, 60, 3000, 200, True),
    "soak": Mode("soak", True, 60, 10000, 600, True),
}


def main(argv: list[str] | None = None) -> int:
    import pytest

    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.split("\n\n")[1])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="CI's share: a few minutes")
    group.add_argument("--soak", action="store_true", help="the full run with a long soak")
    parser.add_argument("--report", type=Path, help="also write the figures as JSON to this file")
    arguments, rest = parser.parse_known_args(argv)
    mode = "quick" if arguments.quick else "soak" if arguments.soak else "full"
    options = [str(PROJECT_ROOT / "tests"), "-m", "reliability", "--reliability-mode", mode, *rest]
    if arguments.report is not None:
        options += ["--reliability-report", str(arguments.report)]
    return int(pytest.main(options))
