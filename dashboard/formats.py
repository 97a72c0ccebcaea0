"""How the dashboard words numbers, dates, durations and settings, and the short explanations it shows.

Presentation only, like :mod:`dashboard.charts`: plain functions from values to text, so every page
writes a share, a time or a model's name the same way. Nothing here imports Streamlit or TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from mnist_model import mydigits, records
from mnist_model import settings as training_settings
from mnist_model.artifacts import RunRecord

# One line per training setting, for learners: what changing it does.
LEARNING_RATE_HELP = (
    "How big a step the optimiser (Adam) takes on each update: too high and the loss jumps about or "
    "blows up, too low and the model learns slowly."
)
BATCH_SIZE_HELP = (
    "How many images each weight update averages over: bigger batches mean fewer, smoother updates per "
    "epoch (faster per epoch), smaller ones more, noisier updates."
)
AUGMENTATION_HELP = (
    "Randomly rotates, zooms, shears, shifts and thickens or thins each training image every time it is "
    "seen, so the model learns the digit rather than exact pixels: slower to train, far better on photos "
    "and drawings."
)
EPOCHS_HELP = (
    "How many full passes over the training images: more epochs mean more updates, which helps until "
    "validation accuracy stops improving."
)
COSINE_DECAY_HELP = (
    "Lowers the learning rate smoothly from its starting value to zero along a cosine curve over the run: "
    "big steps early on, fine adjustments at the end."
)
SETTING_HELP = {
    "learning_rate": LEARNING_RATE_HELP,
    "batch_size": BATCH_SIZE_HELP,
    "augment": AUGMENTATION_HELP,
    "epochs": EPOCHS_HELP,
    "cosine_decay": COSINE_DECAY_HELP,
}

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DEFAULTS = training_settings.TrainingSettings()


def percent(value: float, small_decimals: bool = True) -> str:
    """A share from 0 to 1 as a percentage, worded the same way wherever shares sit side by side.

    small_decimals: True gives one decimal on every value ("98.9%", "100.0%", "1.1%"), and a value
    that is not exactly 0 or 1 never reads as such: "<0.1%" and ">99.9%" instead of "0.0%" and
    "100.0%". False gives whole percentages, with "<1%" and ">99%" at the ends. Not a number gives "–".
    """
    if math.isnan(value):
        return "–"
    decimals = 1 if small_decimals else 0
    text = f"{value:.{decimals}%}"
    smallest = 10.0**-decimals
    if value > 0 and float(text[:-1]) == 0:
        return f"<{smallest:g}%"
    if value < 1 and float(text[:-1]) == 100:
        return f">{100 - smallest:g}%"
    return text


def seconds(value: float) -> str:
    """A duration for people: ``12 s``, ``1 min 45 s``, ``2 h 5 min``; under half a second ``<1 s``."""
    if 0 < value < 0.5:
        return "<1 s"
    total = max(round(value), 0)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def when(iso: str, *, now: datetime | None = None) -> str:
    """An ISO 8601 time as a readable UTC date: ``2026-11-29T21:01:00+00:00`` -> ``29 Nov 2026, 21:01 UTC``.

    now: when given, a time on the same UTC day reads ``today, 21:01 UTC`` and one on the day before
    ``yesterday, 21:01 UTC``. A time without a zone is taken as UTC; text that is not an ISO time is
    returned unchanged (a page shows it as it is rather than failing).
    """
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    clock = f"{moment:%H:%M} UTC"
    if now is not None:
        today = (now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)).date()
        if moment.date() == today:
            return f"today, {clock}"
        if moment.date() == today - timedelta(days=1):
            return f"yesterday, {clock}"
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}, {clock}"


def short_settings(settings: training_settings.TrainingSettings) -> str:
    """A compact label for a narrow sidebar, e.g. ``mlp · 10 ep · b512 · lr 3e-3 · aug``.

    Architecture, epochs, batch size and learning rate always; ``aug`` when augmented; then only the
    settings that differ from the defaults (``const lr`` without cosine decay, ``seed 3``,
    ``val 10000``, ``mirrored``), so runs that differ in any setting get different labels (learning
    rates are compared to three significant figures). The full wording, for a tooltip, is
    ``settings.describe()``.
    """
    parts = [
        settings.architecture,
        f"{settings.epochs} ep",
        f"b{settings.batch_size}",
        f"lr {_short_number(settings.learning_rate)}",
    ]
    if settings.augment:
        parts.append("aug")
    if not settings.cosine_decay:
        parts.append("const lr")
    if settings.seed != _DEFAULTS.seed:
        parts.append(f"seed {settings.seed}")
    if settings.validation_size != _DEFAULTS.validation_size:
        parts.append(f"val {settings.validation_size}")
    if settings.strategy != _DEFAULTS.strategy:
        parts.append(settings.strategy)
    return " · ".join(parts)


def time_left(
    elapsed: float, fraction: float, epochs_done: int, *, since: tuple[float, float] | None = None
) -> float | None:
    """Seconds of training left, or None while there is too little to go on (show "estimating...").

    elapsed: seconds since training started (it includes moving the data and building the model);
    fraction: of the run done, 0 to 1; epochs_done: epochs finished.
    since: (elapsed, fraction) of an earlier report, best the first one seen in the training phase.
    The estimate is then the pace of the work finished since that report, which leaves out the
    start-up and the first chunk's one-off graph compilation; it needs the run to have moved on
    since. Without it, the estimate is elapsed time scaled up, which still counts the start-up, so
    it waits for a finished epoch and a quarter of the run, when the start-up weighs less.
    """
    if fraction >= 1:
        return 0.0
    if since is not None:
        since_elapsed, since_fraction = since
        done = fraction - since_fraction
        if since_fraction <= 0 or done <= 0 or elapsed <= since_elapsed:
            return None
        return (elapsed - since_elapsed) / done * (1 - fraction)
    if epochs_done < 1 or fraction < 0.25:
        return None
    return elapsed / fraction * (1 - fraction)


def curve_note(history: Sequence[records.EpochRecord], augmented: bool) -> str | None:
    """Why validation accuracy is above training accuracy, when it is in the latest epoch; else None.

    history: the run's epochs, oldest first.
    augmented: whether the training images were augmented.
    """
    if not history:
        return None
    latest = history[-1]
    if latest.val_accuracy <= latest.accuracy:
        return None
    harder = (
        "on augmented images (randomly rotated, zoomed, sheared, shifted and re-stroked, so harder to read "
        "than the originals)"
        if augmented
        else "on the training images"
    )
    return (
        "Validation accuracy above training accuracy is expected here, not a fault. Training accuracy is "
        f"measured {harder}, with dropout switching off part of the network if it has any (the convnet "
        "does), and it is averaged over the whole epoch while the weights are still changing. Validation "
        "accuracy is measured on clean held-out images, by the weights as they are at the end of the epoch."
    )


def _short_number(value: float) -> str:
    """``0.003`` -> ``3e-3``, ``0.0015`` -> ``1.5e-3``; 0.01 and above as plain decimals (``0.1``)."""
    if value >= 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def attribution_note(attribution: records.Attribution) -> str:
    """What the three maps of :func:`dashboard.charts.attribution_maps` show, in words, with their figures."""
    digit = attribution.digit
    note = (
        f"**Integrated gradients:** red pixels raise the probability of {digit}, blue ones lower it; together "
        f"they make up its rise from {percent(attribution.baseline_probability)} for a black image to "
        f"{percent(attribution.probability)} for this one (they add up to within "
        f"{abs(attribution.completeness_gap):.3f}). **Gradient:** what brightening each pixel a little, alone, "
        "would do to that probability: it marks where the answer is fragile, not where it comes from."
    )
    if attribution.grad_cam is not None:
        note += (
            f" **Grad-CAM:** the regions where the last convolution ({attribution.grad_cam_layer}) found the "
            f"features that speak for {digit}, as coarse as that layer's grid."
        )
    return note


def projection_caption(projection: records.Projection) -> str:
    """What the map of :func:`dashboard.charts.test_set_map` shows, in words, with how it was computed."""
    source = (
        f"Each point is a test image, placed by the {projection.features} values that **{projection.layer}**, "
        "the last layer before the output, computes for it"
    )
    if projection.explained_variance is None:
        how = (
            "; t-SNE puts images that this layer sees alike near each other (how far apart two clusters lie, "
            "and the axes, mean little)"
        )
    else:
        share = sum(projection.explained_variance)
        how = f"; PCA's two axes are its directions of largest variance ({share:.1%} of it)"
    return (
        f"{source}{how}. Computed once for this model, in the engine, in {seconds(projection.seconds)}, and kept "
        "with it. Hover over a point for its answer; click one to see the image, the answer and where the model "
        "looked."
    )


def activation_caption(activation: records.LayerActivation, last: bool) -> str:
    """A layer of :func:`dashboard.charts.layer_activation` in words: its name, what it holds, its range."""
    values = activation.values
    if activation.kind == "feature maps":
        height, width, count = values.shape
        shape = f"{count} feature maps of {height}x{width}"
    elif last:
        shape = "the ten outputs, the probability of each digit"
    else:
        shape = f"{len(values)} units"
    active = f"; {float((values > 0).mean()):.0%} of them above zero" if not last else ""
    return f"**{activation.name}** ({activation.type}): {shape}, from {values.min():.3g} to {values.max():.3g}{active}."


def my_digits_rows(
    scored: Sequence[tuple[RunRecord, mydigits.Score]],
    default: training_settings.TrainingSettings,
    in_use: training_settings.TrainingSettings,
) -> list[dict]:
    """The table of every cached run scored on my digits, best first (a run that read none last)."""
    return [
        {
            "model": short_settings(record.settings),
            "my digits": percent(score.accuracy),
            "right": f"{score.right:,} of {score.count:,}",
            "test accuracy": percent(record.test_accuracy),
            "default": record.settings == default,
            "in use": record.settings == in_use,
        }
        for record, score in sorted(
            scored, key=lambda pair: -1.0 if math.isnan(pair[1].accuracy) else pair[1].accuracy, reverse=True
        )
    ]


def my_digit_caption(result: mydigits.Result) -> str:
    """A gallery caption: the right digit and what the model read, e.g. ``7 → 1 (93%)``, or ``7 ✓ (99%)``."""
    if result.refusal is not None:
        return f"{result.entry.label}: not readable"
    answer = "✓" if result.correct else f"→ {result.predicted}"
    return f"{result.entry.label} {answer} ({result.confidence:.0%})"
