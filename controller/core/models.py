"""The core's own tables: the first answer of a state-changing POST sent with an ``Idempotency-Key``
(controller/core/idempotency.py, docs/faults.md), the change log of the change feed (core/feed.py), and
the content-addressed audio store (``audioblob``, ``audiochunk``: controller/core/audiostore.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Integer, LargeBinary
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


class ChangeLog(SQLModel, table=True):
    """One change of cached data (a unit provisioned, a volume set, ...) written in the same
    transaction as the change itself: what peers that missed its notification catch up on
    (controller/core/feed.py). Kept for ``database.feed_keep_s``, then pruned."""

    seq: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                           primary_key=True, autoincrement=True))
    kind: str = Field(max_length=32)
    key: str = Field(max_length=200)
    origin: str = Field(max_length=120)  # the controller instance that wrote it
    at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False, index=True))


class AudioBlob(SQLModel, table=True):
    """One piece of audio in the content-addressed audio store (controller/core/audiostore.py),
    written once and keyed by the SHA-256 of its bytes; the bytes are in ``audiochunk`` rows.
    ``label`` names the one blob of a well-known sound (the units' attention tone), else None."""

    sha256: str = Field(primary_key=True, max_length=64)
    codec: str = Field(max_length=16)
    duration_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    chunks: int
    label: str | None = Field(default=None, max_length=64, unique=True, index=True)
    created_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False))


class AudioChunk(SQLModel, table=True):
    """The bytes of an :class:`AudioBlob`, in pieces of at most ``audiostore.CHUNK_BYTES``, in order."""

    sha256: str = Field(primary_key=True, max_length=64, foreign_key="audioblob.sha256", ondelete="CASCADE")
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
