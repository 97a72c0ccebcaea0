"""The suite runner: ``python -m reliability [--quick | --soak] [--only NAME ...] [--report FILE]``.

Sections run in an order that lets them share work: one dashboard on an empty artifacts folder is
opened by eight sessions at once (which trains the default model once), then takes the hostile
uploads, the size-cap and widget checks and the upload soak; the command line and the in-process
checks then use the model that server cached. Each section prints as it ends; a summary of the
figures follows, and the exit status is 0 only if every check passed.

Modes: the default is the full run; ``--quick`` is CI's share (a browser subset of the corpus, a
20-second load test, a short soak, and no dashboard storage faults: those train the default model again);
``--soak`` is the full run with a long soak (thousands of predictions, hundreds of uploads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class Mode:
    """How much of everything a run does."""

    name: str
    browser_all_cases: bool  # upload every corpus file in the browser, not only the marked subset
    load_seconds: float
    soak_predictions: int
    soak_uploads: int
    dashboard_storage: tuple[str, ...]  # artifacts-folder faults to run a dashboard on
    worker_storage: tuple[str, ...]  # artifacts-folder faults to train under in a separate process


MODES = {
    "quick": Mode("quick", False, 20, 1000, 40, (), ()),
    "full": Mode("full", True, 60, 3000, 200, ("read-only", "full", "uncreatable"), ("read-only", "full")),
    "soak": Mode("soak", True, 60, 10000, 600, ("read-only", "full", "uncreatable"), ("read-only", "full")),
}
SECTIONS = (
    "sessions",
    "browser",
    "cap",
    "widgets",
    "hosts",
    "soak",
    "cli",
    "escapes",
    "pipeline",
    "load",
    "kills",
    "corruption",
    "planted",
    "storage",
    "mnist",
    "engine",
)
PREDICTION_THREADS = 16
UPLOAD_CAP_MB = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="CI's share: a few minutes")
    group.add_argument("--soak", action="store_true", help="the full run with a long soak")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--report", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--verbose", action="store_true", help="print every check, not only failures")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, corpus) afterwards")
    arguments = parser.parse_args(argv)
    mode = MODES["quick" if arguments.quick else "soak" if arguments.soak else "full"]
    return run(mode, set(arguments.only or SECTIONS), arguments.report, arguments.verbose, arguments.keep)


def run(mode: Mode, chosen: set[str], report: Path | None, verbose: bool, keep: bool) -> int:
    from reliability.processes import DEFAULT_MODEL_ENV
    from reliability.report import SectionResult, format_section

    if not os.environ.get("MNIST_DATA"):
        print("warning: MNIST_DATA is not set; MNIST is looked for in the Keras cache", file=sys.stderr)
    # As for the servers the suite starts (see processes.suite_environment): the in-process pages too.
    os.environ.setdefault(DEFAULT_MODEL_ENV, "mlp")
    scratch = Path(tempfile.mkdtemp(prefix="rel_artifacts-suite-"))
    print(f"reliability suite, {mode.name} mode; scratch folder {scratch}", flush=True)
    results: list[SectionResult] = []
    started = time.monotonic()

    def section(name: str, action: Callable[[], SectionResult]) -> None:
        if name not in chosen:
            return
        began = time.monotonic()
        try:
            outcome = action()
        except Exception:  # noqa: BLE001  (a section that crashes is a failed section, and the rest still run)
            outcome = SectionResult(f"{name} (crashed)")
            outcome.check("the section ran to the end", False, traceback.format_exc()[-3000:])
        outcome.seconds = time.monotonic() - began
        results.append(outcome)
        print(format_section(outcome, verbose=verbose), flush=True)

    try:
        _run_sections(mode, chosen, scratch, section)
    finally:
        total = time.monotonic() - started
        failed = [result for result in results if not result.passed]
        print(f"\n== Figures ({mode.name} mode, {total / 60:.1f} min)")
        for result in results:
            for label, value in result.figures.items():
                print(f"   {label}: {value}")
        checks = sum(len(result.checks) for result in results)
        passed = sum(check.passed for result in results for check in result.checks)
        print(f"\n{passed} of {checks} checks passed in {len(results)} sections; {len(failed)} sections failed.")
        if report is not None:
            payload = {
                "mode": mode.name,
                "seconds": total,
                "sections": [{**asdict(result), "passed": result.passed} for result in results],
            }
            report.write_text(json.dumps(payload, indent=2))
        if keep or failed:
            print(f"logs and corpus kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0 if results and not failed else 1


def _run_sections(mode: Mode, chosen: set[str], scratch: Path, section) -> None:
    import mnist_model
    from mnist_model import artifacts
    from mnist_model.training import train
    from reliability import browser, engine, faults, hostile, load
    from reliability.corpus import hostile_cases, hostile_drawings
    from reliability.processes import Dashboard, namespaces_available

    data = mnist_model.load_mnist()
    cases = hostile_cases(data.test_images, data.test_labels)
    good = next(case for case in cases if case.name == "digit.png")
    browser_cases = cases if mode.browser_all_cases else [case for case in cases if case.browser]
    main_artifacts = scratch / "main-artifacts"
    server_sections = {"sessions", "browser", "cap", "widgets", "hosts", "soak"}
    with browser.chromium() as chromium:
        if chosen & server_sections:
            with Dashboard(main_artifacts, scratch / "main-server.log") as dashboard:
                # The eight sessions must come first: they meet the empty cache.
                section("sessions", lambda: load.concurrent_sessions(dashboard, chromium))
                # The sections after this one need the default model. If the sessions did not get
                # it, train it here and restart the server, so that one failure is reported once.
                if not any(artifacts.runs_dir(main_artifacts).glob("*/manifest.json")):
                    train(artifacts_dir=main_artifacts)
                    dashboard.stop()
                    dashboard.start()
                page = chromium.new_page()
                section("browser", lambda: hostile.browser_uploads(dashboard, browser_cases, good, page))
                section("cap", lambda: hostile.upload_cap(dashboard, page, good, UPLOAD_CAP_MB))
                section("widgets", lambda: hostile.widget_bounds(dashboard, page))
                section("hosts", lambda: hostile.host_names(dashboard))
                soak_cases = [case for case in browser_cases if case.name != "over-10-mb.png"]
                predictor_holder: list = []

                def soak_section():
                    predictor_holder.append(_predictor(main_artifacts))
                    return load.soak(
                        dashboard, page, predictor_holder[0], soak_cases, good, mode.soak_predictions, mode.soak_uploads
                    )

                section("soak", soak_section)
                page.close()
        os.environ["MNIST_ARTIFACTS"] = str(main_artifacts)
        section("widgets", hostile.widget_bounds_forged)
        section("cli", lambda: hostile.command_line(cases, scratch / "corpus", main_artifacts))
        section("escapes", lambda: hostile.terminal_escapes(scratch / "escapes", main_artifacts))
        if chosen & {"pipeline", "load"}:
            predictor = _predictor(main_artifacts)
            drawings = hostile_drawings(data.test_images, data.test_labels)
            section("pipeline", lambda: hostile.in_process(cases, drawings, predictor))
            section(
                "load", lambda: load.predictor_load(predictor, data.test_images, PREDICTION_THREADS, mode.load_seconds)
            )
        section("kills", lambda: faults.killed_training(scratch / "kills"))
        section("corruption", lambda: faults.corrupted_entries(scratch / "corruption"))
        section("planted", lambda: faults.planted_models(scratch / "planted"))
        section("storage", lambda: faults.unwritable_storage_in_process(scratch / "storage"))
        mounts = namespaces_available(scratch)
        if "storage" in chosen and not mounts:
            print("   (read-only and full-disk faults skipped: unshare/mount is not permitted here)", flush=True)
        page = chromium.new_page()
        for kind in mode.dashboard_storage:
            if kind == "uncreatable" or mounts:
                section("storage", lambda kind=kind: faults.storage_dashboard(scratch / "storage", page, kind))
        for kind in mode.worker_storage if mounts else ():
            section("storage", lambda kind=kind: faults.storage_in_worker(scratch / "storage", kind))
        section("mnist", lambda: faults.broken_mnist(scratch / "mnist", page))
        section("engine", lambda: engine.engine_faults(scratch / "engine", page))
        page.close()


def _predictor(artifacts: Path):
    """The predictor the dashboard uses, for the default settings cached in ``artifacts``."""
    from mnist_model.predict import Predictor
    from mnist_model.training import train

    return Predictor(train(artifacts_dir=artifacts).model)
