"""``python -m controller.cli``: the same as the ``loaphuong`` command."""

from controller.cli.main import main

raise SystemExit(main())
