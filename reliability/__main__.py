"""Entry point: ``python -m reliability [--quick | --soak] [--section NAME ...]``."""

from reliability.suite import main

raise SystemExit(main())
