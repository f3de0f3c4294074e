"""The ``loaphuong`` command line (controller/cli/main.py); its commands import what they need lazily."""

from controller.cli.main import main

__all__ = ["main"]
