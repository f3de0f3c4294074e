"""``python -m controller.cli``: the same as the ``loaphuong`` command."""

from controller.cli.loaphuong import main

raise SystemExit(main())
