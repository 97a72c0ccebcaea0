"""What the reliability tests measure besides pass or fail: figures to print at the end of the run,
and tallies ("handled cleanly: 53 of 53") over the cases of a parametrized test."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Figures:
    """Figures by label, in the order they were first given, and tallies of passed cases by label."""

    values: dict[str, str] = field(default_factory=dict)
    tallies: dict[str, list[bool]] = field(default_factory=dict)

    def note(self, label: str, value: str) -> None:
        self.values[label] = value

    def tally(self, label: str, passed: bool) -> bool:
        """Count one case under ``label``; returns ``passed``, for the assertion that follows."""
        self.tallies.setdefault(label, []).append(bool(passed))
        return bool(passed)

    def lines(self) -> list[str]:
        counted = [f"{label}: {sum(cases)} of {len(cases)}" for label, cases in self.tallies.items()]
        return [f"{label}: {value}" for label, value in self.values.items()] + counted

    def write(self, path: Path) -> None:
        counted = {label: {"passed": sum(cases), "of": len(cases)} for label, cases in self.tallies.items()}
        path.write_text(json.dumps({"figures": self.values, "tallies": counted}, indent=2))


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (0-1) of ``values``, interpolated linearly; 0.0 when empty."""
    return float(np.quantile(values, fraction)) if values else 0.0
