"""Run the launcher: ``python -m entrypoint``."""

from .cli import main

raise SystemExit(main())
