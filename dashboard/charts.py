"""Plotly figures for the dashboard, built from results that ``mnist_model`` computed.

Presentation only: each function turns arrays or records into a figure, and nothing here trains,
evaluates or changes an image's content.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

import mnist_model

DIGITS = list(range(10))
TRAIN_COLOUR = "#2563eb"
VALIDATION_COLOUR = "#f97316"
HIGHLIGHT_COLOUR = "#16a34a"
MUTED_COLOUR = "#94a3b8"
_MARGINS = {"l": 10, "r": 10, "t": 40, "b": 10}


def _epochs(history: Sequence[mnist_model.EpochRecord | dict]) -> pd.DataFrame:
    rows = [record if isinstance(record, dict) else vars(record) for record in history]
    return pd.DataFrame(rows, columns=["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"])


def training_curves(
    history: Sequence[mnist_model.EpochRecord | dict], *, show_loss: bool = False, epochs: int | None = None
) -> go.Figure:
    """Training against validation accuracy per epoch (and loss on a second axis when asked).

    epochs: fixes the x axis to the whole run, so curves grow across it while training is under way.
    """
    table = _epochs(history)
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    hover = "epoch %{x}<br>%{y:.4f}<br>%{customdata:.1f} s this epoch<extra>%{fullData.name}</extra>"
    series = [
        ("accuracy", "training accuracy", TRAIN_COLOUR),
        ("val_accuracy", "validation accuracy", VALIDATION_COLOUR),
    ]
    if show_loss:
        series += [("loss", "training loss", TRAIN_COLOUR), ("val_loss", "validation loss", VALIDATION_COLOUR)]
    for column, name, colour in series:
        is_loss = "loss" in column
        figure.add_trace(
            go.Scatter(
                x=table["epoch"],
                y=table[column],
                customdata=table["seconds"],
                name=name,
                mode="lines+markers",
                line={"color": colour, "dash": "dot" if is_loss else "solid"},
                hovertemplate=hover,
            ),
            secondary_y=is_loss,
        )
    figure.update_xaxes(title_text="epoch", range=[0.5, (epochs or max(len(table), 1)) + 0.5], dtick=1)
    figure.update_yaxes(title_text="accuracy", tickformat=".1%", secondary_y=False)
    figure.update_yaxes(title_text="loss", secondary_y=True, showgrid=False, visible=show_loss)
    figure.update_layout(
        height=360, margin=_MARGINS, hovermode="x unified", legend={"orientation": "h", "y": 1.12, "x": 0}
    )
    return figure


def run_comparison(runs: Sequence[mnist_model.RunRecord], metric: str) -> go.Figure:
    """One line per cached run: ``metric`` (a history column such as ``val_accuracy``) per epoch."""
    figure = go.Figure()
    for run in runs:
        table = _epochs(run.history)
        figure.add_trace(
            go.Scatter(
                x=table["epoch"],
                y=table[metric],
                name=run.settings.describe(),
                mode="lines+markers",
                hovertemplate="epoch %{x}: %{y:.4f}<extra>%{fullData.name}</extra>",
            )
        )
    is_accuracy = "accuracy" in metric
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_yaxes(title_text=metric.replace("_", " "), tickformat=".1%" if is_accuracy else None)
    figure.update_layout(height=360, margin=_MARGINS, showlegend=True, legend={"orientation": "h", "y": -0.2, "x": 0})
    return figure


def confusion_heatmap(confusion: np.ndarray, *, normalise: bool) -> go.Figure:
    """The confusion matrix (rows true digits, columns predicted), as counts or as shares of each row.

    A transparent marker sits on every cell so that a click selects the cell (Streamlit reports
    selections of points, not of heatmap cells).
    """
    row_totals = confusion.sum(axis=1, keepdims=True)
    shares = confusion / np.maximum(row_totals, 1)
    shown = shares if normalise else confusion
    figure = go.Figure(
        go.Heatmap(
            z=shown,
            x=DIGITS,
            y=DIGITS,
            colorscale="Blues",
            zmin=0,
            zmax=1 if normalise else None,
            text=np.vectorize(lambda value: f"{value:.0%}" if normalise else f"{value:d}")(shown),
            texttemplate="%{text}",
            hoverinfo="skip",
            colorbar={"title": "share of row" if normalise else "images", "tickformat": ".0%" if normalise else None},
        )
    )
    true_digits, predicted_digits = np.meshgrid(DIGITS, DIGITS, indexing="ij")
    figure.add_trace(
        go.Scatter(
            x=predicted_digits.ravel(),
            y=true_digits.ravel(),
            customdata=np.stack([confusion.ravel(), shares.ravel()], axis=1),
            mode="markers",
            marker={"size": 28, "symbol": "square", "opacity": 0},
            hovertemplate="true %{y}, predicted %{x}<br>%{customdata[0]} images (%{customdata[1]:.1%} of row)"
            "<extra></extra>",
            showlegend=False,
        )
    )
    figure.update_xaxes(title_text="predicted digit", dtick=1, side="top", range=[-0.5, 9.5], showgrid=False)
    figure.update_yaxes(title_text="true digit", dtick=1, range=[9.5, -0.5], showgrid=False)
    figure.update_layout(height=480, margin=_MARGINS, clickmode="event+select", dragmode=False)
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
    figure.update_layout(height=320, margin=_MARGINS, barmode="group", legend={"orientation": "h", "y": 1.12})
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


def mosaic(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """Tile uint8 images (rows, columns, h, w) into one uint8 image, with white lines ``gap`` wide between."""
    rows, columns, height, width = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (0, gap), (0, gap)), constant_values=255)
    tiled = padded.transpose(0, 2, 1, 3).reshape(rows * (height + gap), columns * (width + gap))
    return tiled[:-gap, :-gap]


def pixelated(image: np.ndarray, scale: int = 4) -> np.ndarray:
    """``image`` with each pixel repeated ``scale`` times each way, so browsers show it crisp, not blurred."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
