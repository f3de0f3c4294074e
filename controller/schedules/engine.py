"""The schedule runner's own database engine: short timeouts, so a scheduler call fails, not hangs."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from controller.core.db import make_engine


def scheduler_engine(url: str, timeout_s: float) -> Engine:
    """An engine of its own for ``url``: every call gives up after about ``timeout_s``."""
    if url.startswith("sqlite"):
        return make_engine(url, busy_timeout_ms=int(timeout_s * 1000))
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    ms = int(timeout_s * 1000)
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8, pool_timeout=timeout_s,
                         connect_args={"connect_timeout": max(1, round(timeout_s)),
                                       "options": f"-c statement_timeout={ms} -c lock_timeout={ms}"})
