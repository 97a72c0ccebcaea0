"""The Streamlit dashboard: ``app.py`` routes to the pages in ``views/``, which call :mod:`mnist_model`.

Start it with ``python -m dashboard`` (see ``__main__.py``); ``streamlit run dashboard/app.py`` works
too. The page scripts are not in a folder named ``pages/``: Streamlit would also discover such a
folder as an old-style multipage app and run a deep-linked page on its own, without ``app.py``.
"""

import logging


def log_to_stderr() -> None:
    """Send the packages' INFO lines (the engine's connection, each training run, warnings) to
    standard error: Streamlit configures only its own loggers. Does nothing the second time."""
    for name in ("mnist_model", "dashboard"):
        package_log = logging.getLogger(name)
        if not package_log.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            package_log.addHandler(handler)
            package_log.setLevel(logging.INFO)
