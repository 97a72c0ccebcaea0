"""The Streamlit dashboard: ``app.py`` routes to the pages in ``views/``, which call :mod:`mnist_model`.

The page scripts are not in a folder named ``pages/``: Streamlit would also discover such a folder as
an old-style multipage app and run a deep-linked page on its own, without ``app.py``.
"""
