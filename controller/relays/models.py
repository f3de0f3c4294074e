"""The relay table (radio stations relayed to units)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from devices.protocol import now_ms


class Relay(SQLModel, table=True):
    """A relay session (tiếp sóng): an upstream stream aired in some zones, now or at a set time.

    Kept so that a pending or running relay survives a controller restart (the controller whose
    MQTT client id is ``owner`` picks it up again) and appears in the history. Times are ms.
    """

    id: str = Field(primary_key=True, max_length=63)
    url: str = Field(max_length=500)
    mode: str = Field(max_length=16)  # node_fetch | republish
    priority: str = Field(default="normal", max_length=16)
    nodes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scopes: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    target: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    start_at: int | None = Field(default=None, sa_column=Column(BigInteger))  # None: at once
    duration_s: float | None = None  # None: until stopped
    state: str = Field(default="scheduled", max_length=16, index=True)  # RelaySession.state
    reason: str = Field(default="", max_length=500)
    started_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    ended_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    owner: str = Field(default="", max_length=100)  # the controller (MQTT client id) that runs it
    owner_seen_at: int | None = Field(default=None, sa_column=Column(BigInteger))  # its owner's last beat
    created_by: str = Field(default="", max_length=100)
    created_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False, index=True))
    schedule_id: int | None = None  # fired by this schedule's slot ``slot_at``
    slot_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
