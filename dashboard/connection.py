"""The web server's one connection to the model engine, made on a thread of its own.

The thread lives as long as the server: Ray's connection, and the local Ray instance it may start,
belong to the thread that made them (see :mod:`mnist_model.engine`). The connection is made by the
first call of :func:`connector`: as the server starts when it is started with ``python -m dashboard``,
else at the first page view. When the local Ray instance stops (a crash, a process killed, memory
run out), the same thread disconnects and starts a new one, and the pages show the engine starting
meanwhile. Nothing here uses Streamlit, so the launcher can start it before Streamlit's runtime exists.
"""

from __future__ import annotations

import logging
import threading
import time

from mnist_model.engine import Engine, EngineError

log = logging.getLogger(__name__)

# A local Ray instance that stops sooner than this after its start is restarted only after a pause,
# which doubles with each such stop up to the longest: a head that cannot stay up does not spin.
STEADY_SECONDS = 60.0
LONGEST_PAUSE_SECONDS = 30.0


class Connector:
    """Connects to the engine on a thread of its own, which then lives as long as the server."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.error: str | None = None
        # How many times the local Ray instance stopped and was started again.
        self.restarts = 0
        self._thread = threading.Thread(target=self._run, name="engine-connector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pause = 1.0
        while True:
            started = time.monotonic()
            engine = self._connect()
            if engine is None or engine.local is None:
                break  # Nothing to restart: a failure (forget_failure() makes a new Connector), or a cluster elsewhere.
            engine.local.stopped.wait()
            self.engine = None
            self.restarts += 1
            log.warning("the local Ray instance stopped; starting a new one")
            try:
                engine.close()
            except Exception:  # A half-dead connection must not keep the server from a new one.
                log.exception("disconnecting from the stopped Ray instance failed")
            if time.monotonic() - started < STEADY_SECONDS:
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
            else:
                pause = 1.0
        # Ray's connection was made on this thread: keep it alive with the process (see mnist_model.engine).
        threading.Event().wait()

    def _connect(self) -> Engine | None:
        try:
            self.engine = Engine.connect()
            log.info("connected to the model engine at %s", self.engine.address)
            return self.engine
        except EngineError as error:
            self.error = str(error)
        except Exception:  # The page must show a message, whatever went wrong.
            log.exception("the model engine could not start")
            self.error = "The model engine could not start; the server log says why."
        return None


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
