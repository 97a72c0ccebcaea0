"""What the reliability suite (``tests/reliability/``) is built from: the hostile-input corpus, dashboard
servers and their readings, Chromium, a training process to kill, and the figures it gathers.

The suite itself is ordinary pytest; ``python -m reliability`` runs it in a mode and prints its
figures (see :mod:`reliability.suite`). Nothing here is imported by ``mnist_model`` or ``dashboard``.
"""
