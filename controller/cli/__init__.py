"""The ``loaphuong`` command line (controller/cli/loaphuong.py); its commands import what they need lazily."""

from controller.cli.loaphuong import main

__all__ = ["main"]
