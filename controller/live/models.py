"""The live-session log table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from devices.protocol import now_ms


class LiveLog(SQLModel, table=True):
    """The broadcast log of a live session from a phone (phát trực tiếp), for the province's reports:
    who spoke, when, to which units, how long, which units played it, why it ended, and the
    archived audio (``archive``: its SHA-256 in the audio store — a path under the audio
    directory before migration 0013 — None when not archived)."""

    id: str = Field(primary_key=True, max_length=63)  # the live session id
    user: str = Field(default="", max_length=100, index=True)
    priority: str = Field(default="normal", max_length=16)
    target: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    nodes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="waiting", max_length=16)  # waiting | live | ended
    reason: str = Field(default="", max_length=200)
    opened_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False, index=True))
    started_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    ended_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    frames: int = 0
    bytes_in: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    units_heard: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    units_refused: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    archive: str | None = Field(default=None, max_length=300)
    archive_duration_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    archive_note: str = Field(default="", max_length=300)  # capped, failed, off, deleted after N days


class LiveOwner(SQLModel, table=True):
    """Which controller runs a live session (the phone's connection is to it): a lease on the
    database clock, the machinery of ``broadcast_owner``; a session whose owner is gone is ended by
    whoever takes it (controller/live/custody.py) (0016)."""

    __tablename__ = "live_owner"
    session_id: str = Field(primary_key=True, max_length=63)
    holder: str = Field(max_length=120)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))  # database clock, ms
    epoch: int = Field(default=0)  # + 1 at each change of holder
