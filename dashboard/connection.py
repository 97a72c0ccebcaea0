"""The web server's one connection to the model engine, made on a thread of its own.

The thread lives as long as the server: Ray's connection, and the local Ray instance it may start,
belong to the thread that made them (see :mod:`mnist_model.engine`). The connection is made by the
first call of :func:`connector`: as the server starts when it is started with ``python -m dashboard``,
else at the first page view. Nothing here uses Streamlit, so the launcher can start it before
Streamlit's runtime exists.
"""

from __future__ import annotations

import logging
import threading

from mnist_model.engine import Engine, EngineError

log = logging.getLogger(__name__)


class Connector:
    """Connects to the engine on a thread of its own, which then lives as long as the server."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="engine-connector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.engine = Engine.connect()
            log.info("connected to the model engine at %s", self.engine.address)
        except EngineError as error:
            self.error = str(error)
        except Exception:  # The page must show a message, whatever went wrong.
            log.exception("the model engine could not start")
            self.error = "The model engine could not start; the server log says why."
        # Ray's connection was made on this thread: keep it alive with the process (see mnist_model.engine).
        threading.Event().wait()


_connection: Connector | None = None
_connection_lock = threading.Lock()


def connector() -> Connector:
    """The server's connection to the engine, made on the first call."""
    global _connection
    with _connection_lock:
        if _connection is None:
            _connection = Connector()
        return _connection


def forget_failure() -> None:
    """Forget a failed connection, so that the next call of :func:`connector` tries again."""
    global _connection
    with _connection_lock:
        if _connection is not None and _connection.error:
            _connection = None
