"""What every section of the suite returns: named pass/fail checks and the figures it measured."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Check:
    """One pass/fail statement about the system, with what was seen."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class SectionResult:
    """A section's checks and its figures (label -> value, printed and recorded in the README)."""

    title: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(passed), detail))
        return bool(passed)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks) and bool(self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (0-1) of ``values``, interpolated linearly; 0.0 when empty."""
    return float(np.quantile(values, fraction)) if values else 0.0


def format_section(result: SectionResult, *, verbose: bool = False) -> str:
    """The section as text: a headline, its failures (every check when verbose), then its figures."""
    status = "PASS" if result.passed else "FAIL"
    passed = sum(check.passed for check in result.checks)
    lines = [f"== {result.title}: {status} ({passed}/{len(result.checks)} checks, {result.seconds:.0f} s)"]
    for check in result.checks:
        if verbose or not check.passed:
            mark = "ok  " if check.passed else "FAIL"
            lines.append(f"   {mark} {check.name}" + (f": {check.detail}" if check.detail else ""))
    lines += [f"   {label}: {value}" for label, value in result.figures.items()]
    return "\n".join(lines)
