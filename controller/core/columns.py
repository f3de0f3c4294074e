"""Column helpers shared by every capability's tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column
from sqlmodel import Field

from devices.protocol import now_ms


def ms_column(**kw: Any) -> Any:
    return Field(default_factory=now_ms, sa_column=Column(BigInteger, **kw))
