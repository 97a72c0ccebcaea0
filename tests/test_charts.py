"""The dashboard's figures and wording: what a reader sees in a chart, and how numbers are written."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from dashboard import formats
from mnist_model.records import EpochRecord
from mnist_model.settings import TrainingSettings


@pytest.mark.parametrize(
    ("value", "small_decimals", "expected"),
    [
        (11 / 1010, True, "1.1%"),
        (0.989, True, "98.9%"),
        (1.0, True, "100.0%"),
        (0.0, True, "0.0%"),
        (1 / 1135, True, "0.1%"),
        (1 / 20000, True, "<0.1%"),
        (0.99996, True, ">99.9%"),
        (0.25, True, "25.0%"),
        (11 / 1010, False, "1%"),
        (0.004, False, "<1%"),
        (0.996, False, ">99%"),
        (float("nan"), True, "–"),
    ],
)
def test_percent_keeps_one_decimal_and_never_rounds_a_non_zero_share_to_zero(value, small_decimals, expected):
    assert formats.percent(value, small_decimals) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.2, "<1 s"), (12.3, "12 s"), (59.6, "1 min"), (105, "1 min 45 s"), (3600, "1 h"), (3900, "1 h 5 min")],
)
def test_seconds_reads_as_minutes_and_seconds(value, expected):
    assert formats.seconds(value) == expected


@pytest.mark.parametrize(
    ("iso", "expected"),
    [
        ("2026-11-29T21:01:00+00:00", "29 Nov 2026, 21:01 UTC"),
        ("2026-11-29T22:01:00+01:00", "29 Nov 2026, 21:01 UTC"),
        ("2026-03-01T00:30:00-01:00", "1 Mar 2026, 01:30 UTC"),
        ("2026-11-29T21:01:00", "29 Nov 2026, 21:01 UTC"),
        ("not a date", "not a date"),
    ],
)
def test_when_writes_an_iso_time_as_a_utc_date(iso, expected):
    assert formats.when(iso) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 29, 23, 59, tzinfo=UTC), "today, 21:01 UTC"),
        (datetime(2026, 11, 30, 8, 0, tzinfo=UTC), "yesterday, 21:01 UTC"),
        (datetime(2026, 12, 1, 8, 0, tzinfo=UTC), "29 Nov 2026, 21:01 UTC"),
    ],
)
def test_when_says_today_or_yesterday_relative_to_now(now, expected):
    assert formats.when("2026-11-29T21:01:00+00:00", now=now) == expected


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (TrainingSettings(), "mlp · 10 ep · b512 · lr 3e-3 · aug"),
        (TrainingSettings.recommended("cnn"), "cnn · 12 ep · b128 · lr 2e-3 · aug"),
        (
            TrainingSettings(learning_rate=0.0015, augment=False, cosine_decay=False, seed=3),
            "mlp · 10 ep · b512 · lr 1.5e-3 · const lr · seed 3",
        ),
        (TrainingSettings(learning_rate=0.1, validation_size=10000), "mlp · 10 ep · b512 · lr 0.1 · aug · val 10000"),
    ],
)
def test_short_settings_names_the_run_compactly(settings, expected):
    assert formats.short_settings(settings) == expected


def test_short_settings_fits_a_narrow_sidebar():
    typical = [TrainingSettings(), TrainingSettings.recommended("cnn"), TrainingSettings(epochs=100, batch_size=64)]
    assert all(len(formats.short_settings(settings)) <= 36 for settings in typical)
    extreme = TrainingSettings(
        architecture="cnn",
        epochs=1000,
        batch_size=65536,
        learning_rate=0.00125,
        cosine_decay=False,
        validation_size=50000,
        seed=2**31 - 1,
        strategy="mirrored",
    )
    assert len(formats.short_settings(extreme)) <= 96


def test_short_settings_differ_whenever_the_settings_do():
    variants = [
        TrainingSettings(),
        TrainingSettings(augment=False),
        TrainingSettings(cosine_decay=False),
        TrainingSettings(seed=1),
        TrainingSettings(validation_size=4000),
        TrainingSettings(strategy="mirrored"),
        TrainingSettings(learning_rate=0.002),
        TrainingSettings(batch_size=256),
        TrainingSettings(epochs=9),
        TrainingSettings(architecture="cnn"),
    ]
    assert len({formats.short_settings(settings) for settings in variants}) == len(variants)


def simulated_reports(startup: float, run_seconds: float, epochs: int, chunks: int = 10):
    """(elapsed, fraction, epochs_done) after each chunk of a run that spends ``startup`` s before steady work.

    The start-up (moving the data, building the model, compiling the graph) is paid in the first chunk.
    """
    reports = []
    for step in range(1, epochs * chunks + 1):
        fraction = step / (epochs * chunks)
        reports.append((startup + run_seconds * fraction, fraction, step // chunks))
    return reports


def test_time_left_waits_for_progress_before_estimating():
    first_elapsed, first_fraction, _ = simulated_reports(1.5, 10.5, 8)[0]
    assert formats.time_left(first_elapsed, first_fraction, 0) is None
    assert formats.time_left(first_elapsed, first_fraction, 0, since=(first_elapsed, first_fraction)) is None
    assert formats.time_left(0.0, 0.0, 0) is None


def test_time_left_from_the_pace_since_the_first_report_is_close_to_the_truth_from_the_second_report():
    # The reported case: 8 epochs, 12 s of training of which 1.5 s start-up. Extrapolating the elapsed
    # time at the first report promised about 100 s.
    reports = simulated_reports(1.5, 10.5, 8)
    first_elapsed, first_fraction, _ = reports[0]
    for elapsed, fraction, epochs_done in reports[1:-1]:
        truth = 10.5 * (1 - fraction)
        estimate = formats.time_left(elapsed, fraction, epochs_done, since=(first_elapsed, first_fraction))
        assert estimate == pytest.approx(truth, rel=1e-6)


def test_time_left_without_a_baseline_waits_for_a_quarter_of_the_run_and_stays_within_twice_the_truth():
    reports = simulated_reports(1.5, 10.5, 8)
    for elapsed, fraction, epochs_done in reports[:-1]:
        estimate = formats.time_left(elapsed, fraction, epochs_done)
        if epochs_done < 1 or fraction < 0.25:
            assert estimate is None
        else:
            assert 10.5 * (1 - fraction) <= estimate <= 2 * 10.5 * (1 - fraction)
    assert formats.time_left(12.0, 1.0, 8) == 0.0


def epoch(number: int, accuracy: float, val_accuracy: float) -> EpochRecord:
    return EpochRecord(number, 0.3, accuracy, 0.2, val_accuracy, 1.5)


def test_curve_note_explains_validation_above_training_only_when_it_is():
    above = [epoch(1, 0.90, 0.93), epoch(2, 0.94, 0.96)]
    below = [epoch(1, 0.90, 0.93), epoch(2, 0.97, 0.96)]
    note = formats.curve_note(above, augmented=True)
    assert note is not None and "augmented" in note and "end of the epoch" in note
    assert "augmented images" not in formats.curve_note(above, augmented=False)
    assert formats.curve_note(below, augmented=True) is None
    assert formats.curve_note([], augmented=True) is None
    assert formats.curve_note([vars(record) for record in above], augmented=True) == note


def test_setting_help_is_one_line_per_setting_the_form_offers():
    assert set(formats.SETTING_HELP) == {"learning_rate", "batch_size", "augment", "epochs", "cosine_decay"}
    assert set(formats.SETTING_HELP) <= set(TrainingSettings().to_dict())
    assert all("\n" not in text and text.endswith(".") for text in formats.SETTING_HELP.values())


def test_dashboard_formatting_and_charts_import_no_tensorflow():
    code = "import sys, dashboard.charts, dashboard.formats; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
