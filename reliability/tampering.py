"""Text planted where the command line reads it: a run manifest with terminal escapes in it.

The command-line tests and the reliability suite plant it, and check that what reaches the terminal
has its control characters escaped.
"""

from __future__ import annotations

import json
from pathlib import Path

# Terminal escapes a planted text might hold: set the window title, then clear the screen.
TERMINAL_ESCAPE = "\x1b]0;owned\x07\x1b[2J"


def plant_escaping_manifest(store: Path) -> str:
    """Two runs in ``store``, mlp-0123456789abcdef and mlp-fedcba9876543210, whose second manifest
    has terminal escapes where its date belongs. Returns those escapes."""
    from mnist_model import artifacts
    from mnist_model.settings import TrainingSettings

    manifest = {
        "settings": TrainingSettings(epochs=1).to_dict(),
        "history": [],
        "test_loss": 0.3,
        "test_accuracy": 0.92,
        "created": "2026-12-01T21:00:00+00:00",
        "train_seconds": 2.0,
    }
    artifacts.save_run_bytes(store, "mlp-0123456789abcdef", b"a model", manifest)
    planted = artifacts.save_run_bytes(store, "mlp-fedcba9876543210", b"a model", manifest)
    planted_manifest = json.loads((planted / artifacts.MANIFEST_FILE).read_text())
    planted_manifest["created"] = TERMINAL_ESCAPE + "2026"
    (planted / artifacts.MANIFEST_FILE).write_text(json.dumps(planted_manifest))
    return TERMINAL_ESCAPE
