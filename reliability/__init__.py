"""The reliability and security suite: hostile input, load, faults, each checked and measured.

``python -m reliability`` runs every section against the real package, the real command line and the
dashboard served by ``streamlit run`` and driven in headless Chromium, then prints what it tried and
the figures it measured. ``--quick`` is the share CI runs (``tests/test_reliability.py``);
``--soak`` adds the long soak. Nothing here is imported by ``mnist_model`` or ``dashboard``.
"""
