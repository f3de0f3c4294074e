"""The two options every command that opens the ward's database takes (``--data-dir``,
``--database-url``) and the settings they give: written once for ``serve``, ``demo``, ``user``,
``org``, ``backup``, ``restore``, ``mqtt-config``, ``normalize`` and ``say``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: ``loaphuong normalize`` starts without the controller's settings
    from controller.settings import Settings

DATABASE_URL_HELP = ("e.g. postgresql://user@host/db (default: DATABASE_URL, else SQLite in the data "
                     "directory)")


def add_database_args(ap: argparse.ArgumentParser, data_dir_help: str) -> None:
    """Add ``--data-dir`` and ``--database-url`` to ``ap``."""
    ap.add_argument("--data-dir", default=None, help=data_dir_help)
    ap.add_argument("--database-url", default=None, help=DATABASE_URL_HELP)


def database_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings ``--data-dir`` / ``--database-url`` override (none when not given)."""
    update: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        update["data_dir"] = Path(args.data_dir)
    if getattr(args, "database_url", None):
        update["database_url"] = args.database_url
    return update


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings from the environment, with the two options applied."""
    from controller.settings import Settings

    return Settings().model_copy(update=database_overrides(args))
