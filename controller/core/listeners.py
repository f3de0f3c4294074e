"""Telling listeners: each one is called in turn, and one that raises is logged, not the caller's
problem (the next listeners are still told)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)


def notify_all(listeners: Iterable[Callable[..., None]], *args: object, what: str = "listener") -> None:
    for fn in listeners:
        try:
            fn(*args)
        except Exception:
            logger.exception("%s failed", what)
