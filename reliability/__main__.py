"""Entry point: ``python -m reliability [--quick | --soak] [--report FILE] [PYTEST OPTIONS ...]``."""

from reliability.suite import main

raise SystemExit(main())
