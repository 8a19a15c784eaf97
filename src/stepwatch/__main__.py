"""``python -m stepwatch``: the same as the ``stepwatch`` command."""

from stepwatch.cli import main

raise SystemExit(main())
