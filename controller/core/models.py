"""The core's own table: the first answer of a state-changing POST sent with an ``Idempotency-Key``
(controller/core/idempotency.py, docs/faults.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from devices.protocol import now_ms


class IdempotencyKey(SQLModel, table=True):
    """One key of one account: the request it came with (``route`` and the body's ``fingerprint``)
    and the answer it got (``status``, ``body``), or, while the answer is not written yet, the
    row the request made (``ref``, e.g. the broadcast id: committed in the same transaction)."""

    username: str = Field(primary_key=True, max_length=100)
    key: str = Field(primary_key=True, max_length=255)
    route: str = Field(max_length=200)
    fingerprint: str = Field(max_length=64)
    status: int = 0  # 0: the answer is not stored (yet); ref says what the request made
    body: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    ref: str | None = Field(default=None, max_length=100)
    created_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False, index=True))
