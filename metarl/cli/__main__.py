"""``python -m metarl.cli``: the ``metarl`` command."""

from metarl.cli import main

raise SystemExit(main())
