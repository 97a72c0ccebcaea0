"""The dashboard's figures and wording: what a reader sees in a chart, and how numbers are written."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dashboard import charts, formats
from mnist_model import calibration, records
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
        (TrainingSettings.recommended("cnn"), "cnn · 8 ep · b256 · lr 4e-3 · aug"),
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


def test_setting_help_is_one_line_per_setting_the_form_offers():
    assert set(formats.SETTING_HELP) == {"learning_rate", "batch_size", "augment", "epochs", "cosine_decay"}
    assert set(formats.SETTING_HELP) <= set(TrainingSettings().to_dict())
    assert all("\n" not in text and text.endswith(".") for text in formats.SETTING_HELP.values())


def test_dashboard_formatting_and_charts_import_no_tensorflow():
    code = "import sys, dashboard.charts, dashboard.formats; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def confusion_matrix(seed: int = 0) -> np.ndarray:
    """A plausible test-set confusion matrix: about 1,000 images per digit, most of them right.

    Row 4 holds 1,010 images of a 4, 11 of them read as a 9 (the user's report); row 1 holds a
    single mistake among 20,000 images, a share that rounds to 0.0%.
    """
    rng = np.random.default_rng(seed)
    confusion = rng.poisson(2, (10, 10)) * (rng.random((10, 10)) < 0.4)
    np.fill_diagonal(confusion, rng.integers(950, 1100, 10))
    confusion[4] = 0
    confusion[4, 4], confusion[4, 9] = 999, 11
    confusion[1] = 0
    confusion[1, 1], confusion[1, 7] = 19999, 1
    return confusion


def heatmap(figure, name: str):
    return next(trace for trace in figure.data if trace.type == "heatmap" and trace.name == name)


def cell_texts(figure) -> np.ndarray:
    """What each cell shows: the text of whichever heatmap trace fills it."""
    correct, mistakes = heatmap(figure, "correct"), heatmap(figure, "mistakes")
    diagonal = np.eye(10, dtype=bool)
    return np.where(diagonal, np.array(correct.text), np.array(mistakes.text))


@pytest.mark.parametrize("mistakes_only", [False, True])
@pytest.mark.parametrize("normalise", [False, True])
def test_mistakes_have_a_colour_scale_without_the_diagonal(normalise, mistakes_only):
    confusion = confusion_matrix()
    figure = charts.confusion_heatmap(confusion, normalise=normalise, mistakes_only=mistakes_only)
    shown = confusion / confusion.sum(axis=1, keepdims=True) if normalise else confusion
    off_diagonal = ~np.eye(10, dtype=bool)
    mistakes = heatmap(figure, "mistakes")
    assert (mistakes.zmin, mistakes.zmax) == (0, pytest.approx(shown[off_diagonal].max()))
    assert mistakes.zmax < shown.diagonal().min() / 10
    assert all(mistakes.z[digit][digit] is None for digit in range(10))
    correct = heatmap(figure, "correct")
    assert all(correct.z[true][predicted] is None for true, predicted in zip(*np.nonzero(off_diagonal), strict=True))
    assert correct.showscale is False


def test_mistakes_only_shows_the_diagonal_flat_grey_with_its_values_in_the_hover():
    confusion = confusion_matrix()
    figure = charts.confusion_heatmap(confusion, normalise=False, mistakes_only=True)
    correct = heatmap(figure, "correct")
    assert {colour for _, colour in correct.colorscale} == {charts.NEUTRAL_COLOUR}
    assert all(text == "" for text in np.array(correct.text).diagonal())
    hover = next(trace for trace in figure.data if trace.type == "scatter")
    counts = {
        (point_x, point_y): data[0] for point_x, point_y, data in zip(hover.x, hover.y, hover.customdata, strict=True)
    }
    assert all(counts[digit, digit] == confusion[digit, digit] for digit in range(10))
    default = heatmap(charts.confusion_heatmap(confusion, normalise=False), "correct")
    assert list(np.array(default.text).diagonal()) == [str(count) for count in confusion.diagonal()]


def test_shares_read_with_one_decimal_and_the_reported_cell_reads_1_1_percent():
    figure = charts.confusion_heatmap(confusion_matrix(), normalise=True)
    texts = cell_texts(figure)
    assert texts[4, 9] == "1.1%"
    assert texts[4, 4] == "98.9%"
    assert texts[1, 7] == "<0.1%"


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("normalise", [False, True])
def test_no_cell_with_images_reads_zero(seed, normalise):
    confusion = confusion_matrix(seed)
    texts = cell_texts(charts.confusion_heatmap(confusion, normalise=normalise))
    for (true, predicted), count in np.ndenumerate(confusion):
        text = texts[true, predicted]
        if count == 0:
            assert text == ""
        elif normalise:
            assert re.fullmatch(r"[<>]?\d+\.\d%", text) and not re.fullmatch(r"0(\.0)?%", text), text
        else:
            assert text == str(count)


def test_cells_are_square_and_large_enough_to_read():
    figure = charts.confusion_heatmap(confusion_matrix(), normalise=False)
    assert figure.layout.yaxis.scaleanchor == "x" and figure.layout.yaxis.scaleratio == 1
    assert figure.layout.xaxis.constrain == figure.layout.yaxis.constrain == "domain"
    assert figure.layout.width == figure.layout.height
    assert 480 <= figure.layout.height <= 560


def test_a_selected_cell_gives_the_predicted_digit_as_x_and_the_true_digit_as_y():
    confusion = np.zeros((10, 10), dtype=int)
    confusion[3, 8] = 7  # seven images of a 3 read as an 8, none the other way round
    figure = charts.confusion_heatmap(confusion, normalise=False)
    assert "select" in figure.layout.clickmode
    points = next(trace for trace in figure.data if trace.type == "scatter")
    assert len(points.x) == 100 and points.mode == "markers"
    counts = {
        (point_x, point_y): data[0]
        for point_x, point_y, data in zip(points.x, points.y, points.customdata, strict=True)
    }
    assert counts[8, 3] == 7 and counts[3, 8] == 0
    assert heatmap(figure, "mistakes").z[3][8] == 7
    assert figure.layout.xaxis.title.text == "predicted digit" and figure.layout.yaxis.title.text == "true digit"
    assert list(figure.layout.yaxis.range) == [9.5, -0.5]  # true digit 0 at the top


def history(accuracy: list[float], loss: list[float]) -> list[EpochRecord]:
    return [
        EpochRecord(number, loss[number - 1], value, loss[number - 1] * 0.9, value + 0.01, 1.5)
        for number, value in enumerate(accuracy, start=1)
    ]


def nice_step_at_least(rough: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``rough`` (Plotly's auto tick step)."""
    power = 10.0 ** math.floor(math.log10(rough))
    return next(factor * power for factor in (1, 2, 5, 10) if factor * power >= rough * (1 - 1e-9))


def d3_fixed(value: float, tick_format: str) -> str:
    decimals = int(re.fullmatch(r"\.(\d+)[f%]", tick_format).group(1))
    return f"{value:.{decimals}%}" if tick_format.endswith("%") else f"{value:.{decimals}f}"


@pytest.mark.parametrize(
    ("low", "high", "percent"),
    [(1.342, 1.979, False), (0.02, 0.05, False), (0.3, 2.3, False), (0.9, 0.98, True), (0.991, 0.994, True)],
)
def test_tick_labels_are_exact_and_distinct_at_any_step_plotly_may_pick(low, high, percent):
    tick_format = charts._tick_format(np.array([low, high]), percent=percent)
    # Plotly pads the range and may show fewer ticks than the maximum, so the step is at least this.
    for step in {nice_step_at_least((high - low) * stretch / charts._VALUE_TICKS) for stretch in (1, 1.1, 2, 3)}:
        ticks = [index * step for index in range(math.floor(low / step), math.ceil(high / step) + 1)]
        labels = [d3_fixed(tick, tick_format) for tick in ticks]
        assert len(set(labels)) == len(labels)
        scale = 100 if percent else 1
        assert all(
            float(label.rstrip("%")) == pytest.approx(tick * scale) for label, tick in zip(labels, ticks, strict=True)
        )


def test_training_curves_tick_accuracy_in_percent_and_loss_in_round_decimals():
    figure = charts.training_curves(
        history([0.55, 0.80, 0.88, 0.91], [1.979, 1.66, 1.342, 0.9]), show_loss=True, epochs=8
    )
    accuracy_axis, loss_axis = figure.layout.yaxis, figure.layout.yaxis2
    assert accuracy_axis.tickformat == ".0%"
    assert loss_axis.tickmode == "auto" and loss_axis.tickformat == ".1f"
    assert accuracy_axis.nticks == loss_axis.nticks == charts._VALUE_TICKS
    assert list(figure.layout.xaxis.range) == [0.5, 8.5]
    accuracy_trace = next(trace for trace in figure.data if trace.name == "training accuracy")
    assert "%{y:.2%}" in accuracy_trace.hovertemplate


def test_a_late_training_run_gets_decimals_where_it_needs_them():
    figure = charts.training_curves(history([0.985, 0.988, 0.990], [0.05, 0.04, 0.035]), show_loss=True)
    assert figure.layout.yaxis.tickformat == ".1%"
    assert figure.layout.yaxis2.tickformat == ".3f"


def test_every_legend_sits_below_the_plot_clear_of_the_mode_bar():
    runs = [
        SimpleNamespace(settings=TrainingSettings(), history=history([0.9, 0.95], [0.3, 0.2])),
        SimpleNamespace(settings=TrainingSettings(augment=False), history=history([0.92, 0.96], [0.25, 0.15])),
    ]
    counts = pd.DataFrame(
        [{"digit": digit, "split": split, "images": 1000} for digit in range(10) for split in ("train", "test")]
    )
    figures = [
        charts.training_curves(history([0.9, 0.95], [0.3, 0.2]), show_loss=True),
        charts.run_comparison(runs, "val_accuracy"),
        charts.class_balance(counts),
        charts.reliability_diagram(*[calibration.reliability(np.array([0.5, 0.99]), np.array([True, True]))] * 2),
    ]
    for figure in figures:
        legend = figure.layout.legend
        assert (legend.orientation, legend.yref, legend.y, legend.yanchor) == ("h", "container", 0, "bottom")


def test_run_comparison_names_runs_by_their_short_label_and_describes_them_on_hover():
    runs = [SimpleNamespace(settings=TrainingSettings(seed=4), history=history([0.9, 0.95], [0.3, 0.2]))]
    figure = charts.run_comparison(runs, "val_accuracy")
    assert figure.data[0].name == formats.short_settings(runs[0].settings)
    assert runs[0].settings.describe() in figure.data[0].hovertemplate
    assert figure.layout.yaxis.tickformat.endswith("%")


def test_reliability_diagram_shows_filled_bins_before_and_after_beside_the_diagonal():
    rng = np.random.default_rng(0)
    confidence = np.concatenate([rng.uniform(0.95, 1.0, 900), rng.uniform(0.4, 0.6, 100)])
    correct = rng.random(1000) < 0.9
    before = calibration.reliability(confidence, correct)
    after = calibration.reliability(confidence * 0.95, correct)
    figure = charts.reliability_diagram(before, after)
    diagonal, shown_before, shown_after = figure.data
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]
    assert len(shown_before.x) == int((before.counts > 0).sum()) < calibration.BINS
    assert f"{before.error:.2%}" in shown_before.name and f"{after.error:.2%}" in shown_after.name
    assert sum(row[2] for row in shown_after.customdata) == 1000


def attribution_of(digit: int, with_grad_cam: bool) -> records.Attribution:
    rng = np.random.default_rng(digit)
    return records.Attribution(
        digit=digit,
        probability=0.9,
        baseline_probability=0.1,
        gradient=rng.normal(size=(28, 28)).astype(np.float32),
        integrated=rng.normal(scale=0.01, size=(28, 28)).astype(np.float32),
        grad_cam=rng.random((28, 28), dtype=np.float32) if with_grad_cam else None,
        grad_cam_layer="conv_3" if with_grad_cam else None,
    )


@pytest.mark.parametrize("with_grad_cam", [True, False])
def test_attribution_maps_draw_each_map_over_the_input_centred_on_zero(with_grad_cam):
    image = (np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)
    explained = attribution_of(7, with_grad_cam)
    figure = charts.attribution_maps(image, explained)
    titles = [annotation.text for annotation in figure.layout.annotations]
    assert titles == ["Integrated gradients", "Gradient"] + (["Grad-CAM (conv_3)"] if with_grad_cam else [])
    inputs, maps = figure.data[0::2], figure.data[1::2]
    for shown in inputs:
        np.testing.assert_allclose(shown.z, image / 255.0, atol=1e-6)
    np.testing.assert_array_equal(maps[0].z, explained.integrated)
    np.testing.assert_array_equal(maps[1].z, explained.gradient)
    # Signed maps put zero (see-through) in the middle of the colour scale: red for, blue against.
    for signed in maps[:2]:
        magnitudes = np.abs(np.asarray(signed.z))
        assert signed.zmin == -signed.zmax
        # The full colour from the 90th percentile: a tenth of the 784 pixels are beyond it.
        assert 70 <= (magnitudes > signed.zmax).sum() <= 86
    if with_grad_cam:
        assert maps[2].zmin == 0 and "share" not in maps[2].hovertemplate


def test_integrated_maps_of_two_digits_share_one_colour_scale():
    image = np.zeros((28, 28), dtype=np.uint8)
    weak, strong = attribution_of(4, False), attribution_of(9, False)
    strong = records.Attribution(**{**vars(strong), "integrated": strong.integrated * 10})
    figure = charts.integrated_maps(image, [weak, strong], ["For 4", "For 9"])
    maps = figure.data[1::2]
    assert maps[0].zmax == maps[1].zmax == pytest.approx(float(np.percentile(np.abs(strong.integrated), 90)))
    assert "share of the 4" in maps[0].hovertemplate and "share of the 9" in maps[1].hovertemplate


def test_the_attribution_note_gives_the_rise_it_explains_and_names_grad_cams_layer():
    note = formats.attribution_note(attribution_of(3, True))
    assert "probability of 3" in note and "from 10.0% for a black image to 90.0%" in note
    assert "conv_3" in note
    assert "Grad-CAM" not in formats.attribution_note(attribution_of(3, False))


def test_feature_maps_are_tiled_with_a_gap_and_each_hover_names_its_map():
    values = np.random.default_rng(1).random((5, 5, 64), dtype=np.float32)
    figure = charts.layer_activation(records.LayerActivation("conv_2", "Conv2D", "feature maps", values))
    mosaic, which = np.asarray(figure.data[0].z, dtype=float), np.asarray(figure.data[0].customdata)
    assert mosaic.shape == (4 * 6 - 1, 16 * 6 - 1)  # 64 maps of 5x5, 16 to a row, one-pixel gaps
    for index in (0, 17, 63):
        top, left = (index // 16) * 6, (index % 16) * 6
        np.testing.assert_allclose(mosaic[top : top + 5, left : left + 5], values[:, :, index])
        assert (which[top : top + 5, left : left + 5] == index + 1).all()
    assert np.isnan(mosaic[5]).all() and "map %{customdata}" in figure.data[0].hovertemplate


def test_units_run_in_rows_of_32_and_the_ten_outputs_are_labelled_digits():
    units = np.arange(128, dtype=np.float32)
    figure = charts.layer_activation(records.LayerActivation("dense_1", "Dense", "units", units))
    np.testing.assert_array_equal(np.asarray(figure.data[0].z), units.reshape(4, 32))
    assert "unit %{customdata}" in figure.data[0].hovertemplate and not figure.layout.xaxis.showticklabels
    outputs = charts.layer_activation(records.LayerActivation("probabilities", "Dense", "units", np.eye(10)[3]))
    assert np.asarray(outputs.data[0].z).shape == (1, 10) and "digit %{customdata}" in outputs.data[0].hovertemplate
    assert outputs.layout.xaxis.showticklabels and list(outputs.layout.xaxis.tickvals) == list(range(10))


def test_an_activation_caption_names_the_layer_its_shape_and_how_much_of_it_is_active():
    maps = records.LayerActivation("conv_1", "Conv2D", "feature maps", np.zeros((12, 12, 32), dtype=np.float32))
    assert formats.activation_caption(maps, last=False).startswith("**conv_1** (Conv2D): 32 feature maps of 12x12")
    units = records.LayerActivation("dense_1", "Dense", "units", np.array([0, 1, 2, 0], dtype=np.float32))
    assert "4 units, from 0 to 2; 50% of them above zero" in formats.activation_caption(units, last=False)
    outputs = records.LayerActivation("probabilities", "Dense", "units", np.eye(10, dtype=np.float32)[2])
    assert "the ten outputs" in formats.activation_caption(outputs, last=True)


def test_a_confusion_change_is_green_where_the_second_run_is_better_and_red_where_worse():
    change = np.zeros((10, 10), dtype=np.int64)
    change[4, 4], change[4, 9] = 3, -3  # three more 4s right, three fewer read as 9: better twice
    change[7, 7], change[7, 1] = -2, 2  # two 7s now read as 1: worse twice
    figure = charts.confusion_change(change)
    heatmap = figure.data[0]
    z = np.asarray(heatmap.z)
    assert z[4, 4] > 0 and z[4, 9] > 0 and z[7, 7] < 0 and z[7, 1] < 0 and z[0, 0] == 0
    assert heatmap.zmin == -heatmap.zmax == -3
    text = np.asarray(heatmap.text)
    assert text[4, 4] == "+3" and text[4, 9] == "-3" and text[7, 1] == "+2" and text[0, 0] == ""
    assert np.asarray(heatmap.customdata)[7, 1].tolist() == ["2", "worse"]


def a_map(explained: tuple[float, float] | None) -> records.Projection:
    coordinates = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    return records.Projection("pca" if explained else "tsne", coordinates, "dense_2", 128, explained, 1.0)


@pytest.mark.parametrize("mistakes_only", [False, True])
def test_the_test_set_map_draws_each_image_once_with_its_index_and_marks_the_mistakes(mistakes_only: bool) -> None:
    labels = np.arange(60) % 10
    predictions = labels.copy()
    predictions[[3, 17, 42]] = (labels[[3, 17, 42]] + 1) % 10
    projection = a_map((0.3, 0.2))
    figure = charts.test_set_map(
        projection, labels, predictions, np.full(60, 0.9), mistakes_only=mistakes_only, selected=17
    )
    drawn = [trace for trace in figure.data if trace.customdata is not None and len(trace.customdata)]
    assert {trace.type for trace in figure.data} == {"scattergl"}
    indices = np.concatenate([trace.customdata[:, 0] for trace in drawn]).astype(int)
    assert sorted(indices) == ([3, 17, 42] if mistakes_only else list(range(60)))
    for trace in drawn:
        rows = trace.customdata[:, 0].astype(int)
        np.testing.assert_array_equal(np.column_stack([trace.x, trace.y]), projection.coordinates[rows])
        assert set(labels[rows]) == {int(trace.name)}  # one trace per true digit, in its colour
        assert trace.marker.color == charts.DIGIT_COLOURS[int(trace.name)]
        assert (trace.marker.symbol == "diamond") == bool((labels[rows] != predictions[rows]).all())
    assert any(trace.name == "mistake (3)" for trace in figure.data)
    assert figure.layout.xaxis.title.text == "first principal component (30.0% of the variance)"


def test_the_t_sne_map_has_no_axis_values_and_its_caption_says_why() -> None:
    projection = a_map(None)
    figure = charts.test_set_map(projection, np.zeros(60, int), np.zeros(60, int), np.ones(60))
    assert figure.layout.xaxis.showticklabels is False and figure.layout.yaxis.showticklabels is False
    caption = formats.projection_caption(projection)
    assert "128 values" in caption and "dense_2" in caption and "the axes, mean little" in caption
