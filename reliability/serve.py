"""``streamlit run`` with the package's log lines on standard error, for the suite's servers.

Streamlit configures only its own loggers, so ``mnist_model``'s INFO lines (one per training run)
would otherwise never reach the server's log. This sends them to standard error and then hands the
command line to Streamlit unchanged: ``python -m reliability.serve run dashboard/app.py ...``.
"""

from __future__ import annotations

import logging
import sys

from streamlit.web import cli


def main() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("mnist_model")
    package_log.setLevel(logging.INFO)
    package_log.addHandler(handler)
    cli.main(args=sys.argv[1:], prog_name="streamlit")


if __name__ == "__main__":
    main()
