"""Training settings: one frozen value that says everything a training run depends on.

The settings are stored beside the model they produced, so a cached run can be listed, compared and
rebuilt from its manifest alone; their canonical JSON is part of the cache key.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

ARCHITECTURES = ("mlp", "cnn")
STRATEGIES = ("default", "mirrored")


@dataclass(frozen=True)
class TrainingSettings:
    """What to train and how. Invalid values raise ValueError naming the field and what is allowed."""

    # "mlp": the classic Flatten-Dense(128)-Dense(128)-Dense(10) network; "cnn": a small convnet.
    architecture: str = "mlp"
    # Passes over the training set.
    epochs: int = 10
    # Images per optimiser step (split across devices under the mirrored strategy).
    batch_size: int = 512
    # Adam's initial learning rate.
    learning_rate: float = 3e-3
    # Anneal the learning rate to zero along a cosine over the whole run.
    cosine_decay: bool = True
    # Training images held out (chosen at random with the seed) to validate each epoch.
    validation_size: int = 5000
    # Seeds weight initialisation, the hold-out choice, shuffling and augmentation.
    seed: int = 0
    # Random shifts, rotations, zoom and stroke-width changes of training images. It costs training
    # time but makes the model read real photographs and drawings far better (see the README).
    augment: bool = True
    # "default": one device; "mirrored": tf.distribute.MirroredStrategy over every visible GPU.
    strategy: str = "default"

    def __post_init__(self) -> None:
        _check_choice("architecture", self.architecture, ARCHITECTURES)
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_int("epochs", self.epochs, 1, 1000)
        _check_int("batch_size", self.batch_size, 1, 65536)
        _check_int("validation_size", self.validation_size, 1, 50000)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        for name in ("cosine_decay", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}.")
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
            raise ValueError(f"learning_rate must be a number between 0 and 1, not {rate!r}.")
        if not 0 < rate <= 1:
            raise ValueError(f"learning_rate must be greater than 0 and at most 1, not {rate}.")
        object.__setattr__(self, "learning_rate", float(rate))

    @classmethod
    def recommended(cls, architecture: str = "mlp", **changes) -> TrainingSettings:
        """The settings we recommend for an architecture, with any field overridden by ``changes``."""
        defaults = {"cnn": {"epochs": 8, "batch_size": 256, "learning_rate": 4e-3}}
        return cls(architecture=architecture, **{**defaults.get(architecture, {}), **changes})

    @classmethod
    def default(cls) -> TrainingSettings:
        """The model people get unless they choose another: the recommended convnet, or the dense
        network where ``$MNIST_DEFAULT_MODEL`` says "mlp". Raises ValueError for another value there.

        ``TrainingSettings()`` itself is the classic dense network. Until the default model is trained,
        the dashboard serves :meth:`served_first`.
        """
        from mnist_model import config

        return cls.recommended(config.default_architecture())

    @classmethod
    def quick(cls) -> TrainingSettings:
        """The dense network in two epochs without augmentation: about 3 s of training on two cores,
        for a first answer while the convnet trains. It reads 95.5% of the test digits, and fewer real
        photographs and drawings than the default (see the README)."""
        return cls(epochs=2, augment=False)

    @classmethod
    def served_first(cls) -> TrainingSettings:
        """What a dashboard serves while the default model is not trained: :meth:`quick` while the
        convnet trains, or the default itself when that is the dense network, which is quick enough."""
        default = cls.default()
        return cls.quick() if default.architecture == "cnn" else default

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainingSettings:
        """Rebuild settings from :meth:`to_dict` output; unknown keys are an error, missing ones default."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**values)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """A short human label, e.g. ``mlp, 10 epochs, batch 256, lr 0.002``."""
        extras = ", augmented" if self.augment else ""
        extras += ", mirrored" if self.strategy == "mirrored" else ""
        epochs = "1 epoch" if self.epochs == 1 else f"{self.epochs} epochs"
        return (
            f"{self.architecture}, {epochs}, batch {self.batch_size}, "
            f"lr {self.learning_rate:g}, seed {self.seed}{extras}"
        )


def _check_choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}; got {value}.")
