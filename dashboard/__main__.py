"""Start the dashboard server: ``python -m dashboard [streamlit run options]``.

Unlike a plain ``streamlit run dashboard/app.py``, which connects to the model engine when the first
page is viewed, this starts the engine with the server, and has it train the models people get when
the store has none: the model served first, then the default model. So the first visitor meets a
running engine and a training under way, not a start from nothing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from streamlit.web import cli

from dashboard import connection, log_to_stderr
from mnist_model.data import DataError
from mnist_model.engine import EngineError, QueueFull
from mnist_model.local_ray import START_SECONDS
from mnist_model.settings import TrainingSettings

log = logging.getLogger("dashboard")

APP = Path(__file__).with_name("app.py")


def prepare_models(connected: connection.Connector, timeout: float = START_SECONDS) -> None:
    """Once the engine is up, queue training for the models the pages serve (a cached one is left
    as it is). A problem is only logged: the pages explain it to each visitor."""
    deadline = time.monotonic() + timeout
    while connected.engine is None and connected.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if connected.engine is None:
        return  # The pages say why.
    try:
        wanted = dict.fromkeys([TrainingSettings.served_first(), TrainingSettings.default()])
    except ValueError:
        return  # A bad $MNIST_DEFAULT_MODEL: the pages log it and serve the dense network.
    for settings in wanted:
        try:
            status = connected.engine.submit(settings, owner=None)
        except (QueueFull, EngineError, DataError) as error:
            log.warning("could not prepare %s: %s", settings.describe(), error)
            return
        if status.active:
            log.info("preparing %s for the first visitors", settings.describe())


def main() -> None:
    log_to_stderr()
    connected = connection.connector()
    threading.Thread(target=prepare_models, args=(connected,), name="prepare-models", daemon=True).start()
    cli.main(args=["run", str(APP), *sys.argv[1:]], prog_name="streamlit")


if __name__ == "__main__":
    main()
