"""``python -m mnist_model``: see :mod:`mnist_model.cli`."""

import sys

from mnist_model.cli import main

sys.exit(main())
