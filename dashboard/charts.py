"""Plotly figures for the dashboard, built from results that ``mnist_model`` computed.

Presentation only: each function turns arrays or records into a figure, and nothing here trains,
evaluates or changes an image's content.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import formats
from mnist_model import calibration, records
from mnist_model.data import as_model_input

if TYPE_CHECKING:
    from mnist_model.artifacts import RunRecord

DIGITS = list(range(10))
TRAIN_COLOUR = "#2563eb"
VALIDATION_COLOUR = "#f97316"
HIGHLIGHT_COLOUR = "#16a34a"
MUTED_COLOUR = "#94a3b8"
NEUTRAL_COLOUR = "#e2e8f0"
# Correct predictions (the diagonal) in blue, mistakes on their own white-to-red scale.
CORRECT_SCALE = [[0.0, "#eff6ff"], [1.0, "#1d4ed8"]]
MISTAKE_SCALE = [[0.0, "#ffffff"], [0.15, "#fde2c8"], [0.5, "#f97316"], [1.0, "#b91c1c"]]
_MARGINS = {"l": 10, "r": 10, "t": 40, "b": 10}
# Below the plot, clear of Plotly's mode bar (top right); the reserved margin keeps it off the axis title.
_LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0, "yanchor": "bottom"}
# At most this many ticks on a value axis: it bounds how fine a step Plotly picks, so tick labels can
# be given just enough decimals (see _tick_format).
_VALUE_TICKS = 6


def _epochs(history: Sequence[records.EpochRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        [vars(record) for record in history], columns=[column.name for column in fields(records.EpochRecord)]
    )


def training_curves(
    history: Sequence[records.EpochRecord], *, show_loss: bool = False, epochs: int | None = None
) -> go.Figure:
    """Training against validation accuracy per epoch (and loss on a second axis when asked).

    epochs: fixes the x axis to the whole run, so curves grow across it while training is under way.
    Accuracy ticks read as percentages and loss ticks as round decimals, each with just enough places
    for the range shown; the legend sits below the plot.
    """
    table = _epochs(history)
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    series = [
        ("accuracy", "training accuracy", TRAIN_COLOUR),
        ("val_accuracy", "validation accuracy", VALIDATION_COLOUR),
    ]
    if show_loss:
        series += [("loss", "training loss", TRAIN_COLOUR), ("val_loss", "validation loss", VALIDATION_COLOUR)]
    for column, name, colour in series:
        is_loss = "loss" in column
        value = "%{y:.4f}" if is_loss else "%{y:.2%}"
        figure.add_trace(
            go.Scatter(
                x=table["epoch"],
                y=table[column],
                customdata=table["seconds"],
                name=name,
                mode="lines+markers",
                line={"color": colour, "dash": "dot" if is_loss else "solid"},
                hovertemplate=f"{value} (epoch took %{{customdata:.1f}} s)<extra>%{{fullData.name}}</extra>",
            ),
            secondary_y=is_loss,
        )
    accuracy = table[["accuracy", "val_accuracy"]].to_numpy(dtype=float)
    loss = table[["loss", "val_loss"]].to_numpy(dtype=float)
    figure.update_xaxes(title_text="epoch", range=[0.5, (epochs or max(len(table), 1)) + 0.5], dtick=1)
    figure.update_yaxes(
        title_text="accuracy", tickformat=_tick_format(accuracy, percent=True), nticks=_VALUE_TICKS, secondary_y=False
    )
    # Plotly's default for an overlaying axis is tickmode "sync": ticks at the accuracy axis's grid
    # lines, which land on values such as 1.979 and 1.66. Loss gets its own round ticks instead.
    figure.update_yaxes(
        title_text="loss",
        tickmode="auto",
        nticks=_VALUE_TICKS,
        tickformat=_tick_format(loss, percent=False),
        secondary_y=True,
        showgrid=False,
        visible=show_loss,
    )
    figure.update_layout(height=360, margin=_MARGINS, hovermode="x unified", legend=_LEGEND_BELOW)
    return figure


def run_comparison(runs: Sequence[RunRecord], metric: str) -> go.Figure:
    """One line per cached run: ``metric`` (a history column such as ``val_accuracy``) per epoch.

    Each run is named by its short label in the legend and by its full description on hover.
    """
    figure = go.Figure()
    values = []
    for run in runs:
        table = _epochs(run.history)
        values.append(table[metric].to_numpy(dtype=float))
        figure.add_trace(
            go.Scatter(
                x=table["epoch"],
                y=table[metric],
                name=formats.short_settings(run.settings),
                mode="lines+markers",
                hovertemplate="epoch %{x}: %{y:" + (".2%" if "accuracy" in metric else ".4f") + "}"
                f"<extra>{run.settings.describe()}</extra>",
            )
        )
    is_accuracy = "accuracy" in metric
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_yaxes(
        title_text=metric.replace("_", " "),
        nticks=_VALUE_TICKS,
        tickformat=_tick_format(np.concatenate(values) if values else np.array([]), percent=is_accuracy),
    )
    figure.update_layout(height=360, margin=_MARGINS, showlegend=True, legend=_LEGEND_BELOW)
    return figure


def confusion_heatmap(
    confusion: np.ndarray, *, normalise: bool, mistakes_only: bool = False, size: int = 520
) -> go.Figure:
    """The confusion matrix: y the true digit (rows, top to bottom), x the predicted digit (columns).

    confusion: int array (10, 10), images per (true, predicted) pair. normalise: show each cell as a
    share of its row (of the images of that true digit) instead of a count; shares have one decimal
    and a non-zero count never reads as 0% (see :func:`formats.percent`).

    The mistakes (off the diagonal) have a colour scale of their own, from zero to the largest
    mistake, so that 11 images read as clearly as 100; otherwise the 1,000-odd correct images of each
    digit would leave every mistake pale. The diagonal is a separate trace on its own blue scale, or,
    with ``mistakes_only``, flat grey without text (its values stay in the hover). Zero-count mistakes
    are left blank. Cells are square, ``size`` pixels being the figure's width and height.

    A transparent marker sits on every cell so that a click selects the cell (Streamlit reports
    selections of points, not of heatmap cells): a selected point's x is the predicted digit, its y
    the true digit.
    """
    confusion = np.asarray(confusion)
    row_totals = confusion.sum(axis=1, keepdims=True)
    shares = confusion / np.maximum(row_totals, 1)
    shown = shares if normalise else confusion.astype(float)
    diagonal = np.eye(len(DIGITS), dtype=bool)
    share_text = np.vectorize(formats.percent, otypes=[str])(shares)
    text = np.where(confusion == 0, "", share_text if normalise else confusion.astype(str))

    mistakes = np.where(diagonal, np.nan, shown)
    largest_mistake = float(np.nanmax(mistakes))
    mistake_range = largest_mistake if largest_mistake > 0 else (0.01 if normalise else 1.0)
    correct = np.where(diagonal, shown, np.nan)
    figure = go.Figure()
    figure.add_trace(
        go.Heatmap(
            z=_with_gaps(correct),
            x=DIGITS,
            y=DIGITS,
            colorscale=[[0, NEUTRAL_COLOUR], [1, NEUTRAL_COLOUR]] if mistakes_only else CORRECT_SCALE,
            zmin=0,
            zmax=float(np.nanmax(correct)) or 1.0,
            text=np.where(diagonal, "" if mistakes_only else text, ""),
            texttemplate="%{text}",
            hoverinfo="skip",
            showscale=False,
            xgap=1,
            ygap=1,
            name="correct",
        )
    )
    figure.add_trace(
        go.Heatmap(
            z=_with_gaps(mistakes),
            x=DIGITS,
            y=DIGITS,
            colorscale=MISTAKE_SCALE,
            zmin=0,
            zmax=mistake_range,
            text=np.where(diagonal, "", text),
            texttemplate="%{text}",
            hoverinfo="skip",
            xgap=1,
            ygap=1,
            name="mistakes",
            colorbar={
                "title": {"text": "share of row" if normalise else "images", "side": "right"},
                "nticks": _VALUE_TICKS,
                # Counts tick at whole numbers only, however few mistakes there are.
                "tickformat": _tick_format(np.array([0.0, mistake_range]), percent=True) if normalise else "d",
                "dtick": None if normalise or mistake_range > _VALUE_TICKS else 1,
                "thickness": 12,
                "len": 0.8,
            },
        )
    )
    true_digits, predicted_digits = np.meshgrid(DIGITS, DIGITS, indexing="ij")
    totals = np.broadcast_to(row_totals, confusion.shape)
    cell = max(12, int((size - 110) / len(DIGITS)))
    figure.add_trace(
        go.Scatter(
            x=predicted_digits.ravel(),
            y=true_digits.ravel(),
            customdata=[
                [int(count), share, int(total)]
                for count, share, total in zip(confusion.ravel(), share_text.ravel(), totals.ravel(), strict=True)
            ],
            mode="markers",
            marker={"size": cell, "symbol": "square", "opacity": 0},
            hovertemplate="true %{y}, predicted %{x}<br>%{customdata[0]:,} images: %{customdata[1]} "
            "of the %{customdata[2]:,} true %{y}s<extra></extra>",
            showlegend=False,
        )
    )
    figure.update_xaxes(
        title_text="predicted digit", dtick=1, side="top", range=[-0.5, 9.5], showgrid=False, constrain="domain"
    )
    figure.update_yaxes(
        title_text="true digit",
        dtick=1,
        range=[9.5, -0.5],
        showgrid=False,
        scaleanchor="x",
        scaleratio=1,
        constrain="domain",
    )
    figure.update_layout(
        width=size,
        height=size,
        margin=_MARGINS,
        clickmode="event+select",
        dragmode=False,
        plot_bgcolor="white",
    )
    return figure


# A change between two runs: red where run B is worse, green where it is better, white for none.
_BETTER_OR_WORSE = [[0.0, "#dc2626"], [0.5, "#ffffff"], [1.0, "#16a34a"]]


def confusion_change(change: np.ndarray, size: int = 420) -> go.Figure:
    """Run B's confusion matrix less run A's: each cell's change in images, coloured by whether it is
    better (more right answers on the diagonal, fewer mistakes off it) or worse."""
    change = np.asarray(change)
    diagonal = np.eye(len(DIGITS), dtype=bool)
    better = np.where(diagonal, change, -change).astype(float)
    bound = float(np.abs(better).max()) or 1.0
    verdict = np.where(better > 0, "better", np.where(better < 0, "worse", "no change"))
    figure = go.Figure(
        go.Heatmap(
            z=better,
            x=DIGITS,
            y=DIGITS,
            colorscale=_BETTER_OR_WORSE,
            zmin=-bound,
            zmax=bound,
            text=np.where(change == 0, "", np.char.add(np.where(change > 0, "+", ""), change.astype(str))),
            texttemplate="%{text}",
            customdata=np.stack([change, verdict], axis=-1),
            hovertemplate="true %{y}, predicted %{x}<br>%{customdata[0]} images: %{customdata[1]}<extra></extra>",
            showscale=False,
            xgap=1,
            ygap=1,
        )
    )
    figure.update_xaxes(
        title_text="predicted digit", dtick=1, side="top", range=[-0.5, 9.5], showgrid=False, constrain="domain"
    )
    figure.update_yaxes(
        title_text="true digit", dtick=1, range=[9.5, -0.5], showgrid=False, scaleanchor="x", constrain="domain"
    )
    figure.update_layout(width=size, height=size, margin=_MARGINS, plot_bgcolor="white", dragmode=False)
    return figure


def probability_bars(probabilities: np.ndarray, *, true_label: int | None = None) -> go.Figure:
    """The ten class probabilities, the predicted digit highlighted (and the true one outlined)."""
    predicted = int(np.argmax(probabilities))
    colours = [HIGHLIGHT_COLOUR if digit == predicted else MUTED_COLOUR for digit in DIGITS]
    outlines = [3 if digit == true_label else 0 for digit in DIGITS]
    figure = go.Figure(
        go.Bar(
            x=DIGITS,
            y=probabilities,
            marker={"color": colours, "line": {"width": outlines, "color": "#0f172a"}},
            text=[f"{value:.0%}" if value >= 0.01 else "" for value in probabilities],
            textposition="outside",
            hovertemplate="digit %{x}: %{y:.2%}<extra></extra>",
        )
    )
    figure.update_xaxes(title_text="digit", dtick=1)
    figure.update_yaxes(title_text="probability", range=[0, 1.1], tickformat=".0%")
    figure.update_layout(height=300, margin=_MARGINS)
    return figure


# Attribution over the input: red for the digit, blue against it, see-through near zero so that the
# digit shows beneath; Grad-CAM's regions in orange.
_FOR_AND_AGAINST = [[0.0, "rgba(37,99,235,0.95)"], [0.5, "rgba(255,255,255,0)"], [1.0, "rgba(220,38,38,0.95)"]]
_REGIONS = [[0.0, "rgba(249,115,22,0)"], [1.0, "rgba(249,115,22,0.85)"]]
_INPUT_GREYS = [[0.0, "#ffffff"], [1.0, "#64748b"]]


def attribution_maps(image: np.ndarray, attribution: records.Attribution) -> go.Figure:
    """Where the model looked, side by side over the 28x28 input: integrated gradients, the gradient
    and (for a convnet) Grad-CAM; hovering a pixel gives its value."""
    panels = [
        ("Integrated gradients", attribution.integrated, True, f"share of the {attribution.digit}"),
        ("Gradient", attribution.gradient, True, "d probability / d pixel"),
    ]
    if attribution.grad_cam is not None:
        panels.append((f"Grad-CAM ({attribution.grad_cam_layer})", attribution.grad_cam, False, "weight"))
    return _maps_over(image, panels)


def integrated_maps(image: np.ndarray, attributions: Sequence[records.Attribution], titles: Sequence[str]) -> go.Figure:
    """The integrated gradients of several digits for one image, side by side, on one colour scale."""
    bound = max(_colour_bound(each.integrated) for each in attributions)
    panels = [
        (title, each.integrated, True, f"share of the {each.digit}")
        for title, each in zip(titles, attributions, strict=True)
    ]
    return _maps_over(image, panels, bound=bound)


def _maps_over(
    image: np.ndarray, panels: list[tuple[str, np.ndarray, bool, str]], bound: float | None = None
) -> go.Figure:
    """Panels of (title, (28, 28) values, signed, what a value means), each drawn over the faint input:
    signed values red for and blue against, see-through near zero; others orange, from clear at 0."""
    figure = make_subplots(rows=1, cols=len(panels), subplot_titles=[title for title, *_ in panels])
    shown = as_model_input(image)
    for column, (title, values, signed, meaning) in enumerate(panels, start=1):
        figure.add_trace(
            go.Heatmap(z=shown, colorscale=_INPUT_GREYS, zmin=0, zmax=1, showscale=False, hoverinfo="skip"),
            row=1,
            col=column,
        )
        top = bound or _colour_bound(values)
        figure.add_trace(
            go.Heatmap(
                z=values,
                colorscale=_FOR_AND_AGAINST if signed else _REGIONS,
                zmin=-top if signed else 0,
                zmax=top,
                showscale=False,
                customdata=shown,
                hovertemplate=f"row %{{y}}, column %{{x}}<br>{meaning}: %{{z:.3g}}<br>ink: %{{customdata:.2f}}"
                f"<extra>{title}</extra>",
            ),
            row=1,
            col=column,
        )
        figure.update_yaxes(scaleanchor=f"x{'' if column == 1 else column}", row=1, col=column)
    frame = {"showticklabels": False, "ticks": "", "showgrid": False, "zeroline": False}
    frame |= {"showline": True, "mirror": True, "linecolor": NEUTRAL_COLOUR}
    side = shown.shape[0]
    figure.update_xaxes(**frame, range=[-0.5, side - 0.5], constrain="domain")
    figure.update_yaxes(**frame, range=[side - 0.5, -0.5], constrain="domain")
    figure.update_layout(height=280, margin={"l": 8, "r": 8, "t": 30, "b": 8})
    return figure


def _colour_bound(values: np.ndarray) -> float:
    """The value given the full colour: the 90th percentile of the non-zero magnitudes, so that a few
    extreme pixels do not leave the rest pale (larger ones get the full colour; the hover has them all)."""
    magnitudes = np.abs(values[values != 0])
    return float(np.percentile(magnitudes, 90)) if magnitudes.size else 1.0


# One colour per digit on the map of the test set (Tableau's ten), and the outline of its mistakes.
DIGIT_COLOURS = [
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#17becf",
]
MISTAKE_OUTLINE = "#0f172a"


def test_set_map(
    projection: records.Projection,
    labels: np.ndarray,
    predictions: np.ndarray,
    confidence: np.ndarray,
    *,
    mistakes_only: bool = False,
    selected: int | None = None,
) -> go.Figure:
    """The test set's map: one WebGL point per image at its coordinates, coloured by its true digit,
    the mistakes drawn over the rest as larger diamonds outlined in black (``mistakes_only``: those
    alone). ``labels``, ``predictions``: int (n,); ``confidence``: float (n,), of the predicted digit.

    Every point's ``customdata`` is [test index, true digit, predicted digit, confidence], which the
    hover shows and a click returns; the legend's digits show or hide that digit's points and
    mistakes together. ``selected``: a test index to ring.
    """
    coordinates = projection.coordinates
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    details = np.column_stack([np.arange(len(labels)), labels, predictions, np.round(confidence, 3)]).astype(np.float32)
    wrong = labels != predictions
    hover = "#%{customdata[0]}: a %{customdata[1]} read as %{customdata[2]} (%{customdata[3]:.0%})<extra></extra>"
    figure = go.Figure()
    for digit in DIGITS:
        groups = [(False, (labels == digit) & ~wrong), (True, (labels == digit) & wrong)]
        for mistaken, chosen in groups[1:] if mistakes_only else groups:
            marker = {"color": DIGIT_COLOURS[digit], "size": 4, "opacity": 0.75}
            if mistaken:
                marker = {**marker, "size": 9, "opacity": 1, "symbol": "diamond"}
                marker["line"] = {"color": MISTAKE_OUTLINE, "width": 1}
            figure.add_trace(
                go.Scattergl(
                    x=coordinates[chosen, 0],
                    y=coordinates[chosen, 1],
                    mode="markers",
                    name=str(digit),
                    legendgroup=str(digit),
                    showlegend=mistaken == mistakes_only,
                    marker=marker,
                    customdata=details[chosen],
                    hovertemplate=hover,
                )
            )
    # A legend entry for the mistakes' marker, which no data of its own carries.
    figure.add_trace(
        go.Scattergl(
            x=[None],
            y=[None],
            mode="markers",
            name=f"mistake ({int(wrong.sum()):,})",
            marker={"color": "white", "size": 9, "symbol": "diamond", "line": {"color": MISTAKE_OUTLINE, "width": 1}},
            hoverinfo="skip",
        )
    )
    if selected is not None and 0 <= selected < len(labels):
        figure.add_trace(
            go.Scattergl(
                x=coordinates[[selected], 0],
                y=coordinates[[selected], 1],
                mode="markers",
                marker={"color": "rgba(0,0,0,0)", "size": 20, "line": {"color": MISTAKE_OUTLINE, "width": 2}},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    axes = {"zeroline": False, "showgrid": False}
    if projection.explained_variance is None:
        # t-SNE's axes have no meaning of their own: only who is near whom does.
        axes |= {"showticklabels": False, "title_text": ""}
        figure.update_xaxes(**axes)
        figure.update_yaxes(**axes)
    else:
        first, second = projection.explained_variance[:2]
        figure.update_xaxes(**axes, title_text=f"first principal component ({first:.1%} of the variance)")
        figure.update_yaxes(**axes, title_text=f"second principal component ({second:.1%})")
    figure.update_yaxes(scaleanchor="x", scaleratio=1)
    figure.update_layout(
        height=640,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        plot_bgcolor="white",
        legend={"title": {"text": "true digit"}, "itemsizing": "constant"},
        hovermode="closest",
    )
    return figure


_ACTIVITY = [[0.0, "#ffffff"], [1.0, "#1e3a8a"]]
# Feature maps are laid out 8 to a row (16 when there are more than 32), dense units 32 to a row.
MAPS_PER_ROW = 8
UNITS_PER_ROW = 32


def layer_activation(activation: records.LayerActivation) -> go.Figure:
    """One layer's output for one image: a convolution's feature maps as a grid of small images, a dense
    layer's units as a strip (rows of 32), the ten outputs as one labelled row. Hovering gives each value."""
    values = activation.values
    if activation.kind == "feature maps":
        height, width, count = values.shape
        per_row = MAPS_PER_ROW if count <= 4 * MAPS_PER_ROW else 2 * MAPS_PER_ROW
        rows = math.ceil(count / per_row)
        # A mosaic with one empty (NaN, shown grey) pixel between the maps.
        mosaic = np.full((rows * (height + 1) - 1, per_row * (width + 1) - 1), np.nan, dtype=np.float32)
        which = np.full(mosaic.shape, -1, dtype=np.int32)
        for index in range(count):
            top, left = (index // per_row) * (height + 1), (index % per_row) * (width + 1)
            mosaic[top : top + height, left : left + width] = values[:, :, index]
            which[top : top + height, left : left + width] = index + 1
        hover = "map %{customdata}: %{z:.3g}<extra></extra>"
        figure = go.Figure(
            go.Heatmap(z=mosaic, customdata=which, colorscale=_ACTIVITY, zmin=0, hovertemplate=hover, hoverongaps=False)
        )
        aspect = mosaic.shape[0] / mosaic.shape[1]
    else:
        count = len(values)
        per_row = min(UNITS_PER_ROW, count)
        rows = math.ceil(count / per_row)
        grid = np.full(rows * per_row, np.nan, dtype=np.float32)
        grid[:count] = values
        units = np.arange(rows * per_row).reshape(rows, per_row)
        name = "digit" if count == len(DIGITS) else "unit"
        figure = go.Figure(
            go.Heatmap(
                z=grid.reshape(rows, per_row),
                customdata=units,
                colorscale=_ACTIVITY,
                zmin=0,
                hovertemplate=f"{name} %{{customdata}}: %{{z:.3g}}<extra></extra>",
                hoverongaps=False,
                xgap=1,
                ygap=1,
            )
        )
        aspect = rows / per_row
    digits = activation.kind == "units" and len(values) == len(DIGITS)
    figure.update_traces(colorbar={"thickness": 10, "len": 0.9})
    figure.update_xaxes(showticklabels=digits, showgrid=False, zeroline=False, ticks="", constrain="domain")
    if digits:
        figure.update_xaxes(tickmode="array", tickvals=DIGITS)
    figure.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed", scaleanchor="x")
    figure.update_layout(
        height=int(np.clip(aspect * 640, 70, 520)) + 20,
        margin={"l": 0, "r": 0, "t": 10, "b": 10},
        plot_bgcolor=NEUTRAL_COLOUR,
    )
    return figure


def reliability_diagram(before: calibration.Reliability, after: calibration.Reliability) -> go.Figure:
    """Accuracy against confidence per confidence bin, before and after calibration, with the
    diagonal where they are equal. Empty bins are left out; each marker's area follows its bin's count,
    and the hover gives the bin's range and count."""
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": MUTED_COLOUR}, name="perfectly calibrated"
        )
    )
    for result, name, colour in (
        (before, "before calibration", VALIDATION_COLOUR),
        (after, "after calibration", TRAIN_COLOUR),
    ):
        filled = result.counts > 0
        counts = result.counts[filled]
        figure.add_trace(
            go.Scatter(
                x=result.confidence[filled],
                y=result.accuracy[filled],
                mode="lines+markers",
                name=f"{name} (error {result.error:.2%})",
                line={"color": colour},
                marker={"size": 6 + 14 * np.sqrt(counts / max(int(result.counts.max()), 1))},
                customdata=np.stack([result.edges[:-1][filled], result.edges[1:][filled], counts], axis=1),
                hovertemplate=(
                    "confidence %{customdata[0]:.0%} to %{customdata[1]:.0%}: %{customdata[2]:,} answers<br>"
                    "mean confidence %{x:.1%}, right %{y:.1%}<extra></extra>"
                ),
            )
        )
    figure.update_xaxes(title_text="confidence of the answer", range=[0, 1.02], tickformat=".0%")
    figure.update_yaxes(title_text="share of answers that were right", range=[0, 1.02], tickformat=".0%")
    figure.update_layout(height=420, margin={**_MARGINS, "b": 60}, legend=_LEGEND_BELOW)
    return figure


def class_balance(counts: pd.DataFrame) -> go.Figure:
    """Images per digit, one bar group per split; counts has columns digit, split, images."""
    figure = go.Figure()
    for split, colour in (("train", TRAIN_COLOUR), ("test", VALIDATION_COLOUR)):
        rows = counts[counts["split"] == split]
        figure.add_trace(
            go.Bar(
                x=rows["digit"],
                y=rows["images"],
                name=split,
                marker_color=colour,
                hovertemplate="digit %{x}: %{y} images<extra>%{fullData.name}</extra>",
            )
        )
    figure.update_xaxes(title_text="digit", type="category")
    figure.update_yaxes(title_text="images")
    figure.update_layout(height=320, margin=_MARGINS, barmode="group", legend=_LEGEND_BELOW)
    return figure


def weight_histogram(weights: dict[str, np.ndarray], *, bins: int = 60) -> go.Figure:
    """The distribution of each weight array of one layer (kernel, bias...), side by side.

    Binned here to keep the figure small: a dense kernel holds up to 400,000 values, too many to send
    to the browser one by one.
    """
    figure = make_subplots(
        rows=1,
        cols=len(weights),
        subplot_titles=[f"{name}: {np.size(values):,} values" for name, values in weights.items()],
    )
    for column, values in enumerate(weights.values(), start=1):
        counts, edges = np.histogram(np.ravel(values), bins=bins)
        figure.add_trace(
            go.Bar(
                x=(edges[:-1] + edges[1:]) / 2,
                y=counts,
                width=np.diff(edges),
                marker_color=TRAIN_COLOUR,
                hovertemplate="%{x:.3f}: %{y} weights<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=column,
        )
        figure.update_xaxes(title_text="weight value", row=1, col=column)
    figure.update_yaxes(title_text="count", row=1, col=1)
    figure.update_layout(height=340, margin=_MARGINS, bargap=0)
    return figure


def _tick_format(values: np.ndarray, *, percent: bool) -> str:
    """A d3 tick format with just enough decimals for the ticks Plotly picks for ``values``.

    Plotly's tick step is at least the axis range over ``nticks`` (rounded up to 1, 2 or 5 times a
    power of ten), so the decimals of that bound are enough: ticks read 0.5, 1.0, 1.5 or 96%, 98%,
    never 1.979 or 97.123%.
    """
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    if percent:
        span *= 100
    if span <= 0:
        return ".1%" if percent else ".3~g"
    decimals = max(0, -math.floor(math.log10(span / _VALUE_TICKS)))
    return f".{decimals}%" if percent else f".{decimals}f"


def _with_gaps(values: np.ndarray) -> list[list[float | None]]:
    """A float matrix as nested lists with None for NaN: cells Plotly leaves empty."""
    return [[None if math.isnan(value) else float(value) for value in row] for row in values]


def mosaic(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """Tile uint8 images (rows, columns, h, w) into one uint8 image, with white lines ``gap`` wide between."""
    rows, columns, height, width = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (0, gap), (0, gap)), constant_values=255)
    tiled = padded.transpose(0, 2, 1, 3).reshape(rows * (height + gap), columns * (width + gap))
    return tiled[:-gap, :-gap]


def square(image: np.ndarray) -> np.ndarray:
    """``image`` padded to a square (black for grey images, white for colour), so a row of steps lines up."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    padding = [(top, side - height - top), (left, side - width - left)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, padding, constant_values=0 if image.ndim == 2 else 255)


def pixelated(image: np.ndarray, scale: int = 4) -> np.ndarray:
    """``image`` with each pixel repeated ``scale`` times each way, so browsers show it crisp, not blurred."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
