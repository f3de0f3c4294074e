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


class RelayPreset(SQLModel, table=True):
    """A station the relay screen offers by name (the province station, VOV1, VOV2), kept by admins (0014).

    ``org_unit_id``: the ward of the admin who added it (None: the province's, offered to every ward)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    url: str = Field(max_length=500)
    mode: str = Field(default="node_fetch", max_length=16)  # node_fetch | republish
    org_unit_id: str | None = Field(default=None, max_length=63)
    created_by: str = Field(default="", max_length=100)
    created_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False))


class RelayOwner(SQLModel, table=True):
    """Which controller runs a relay: a lease on the database clock, the machinery of
    ``broadcast_owner`` (controller/airing/ownership.py; controller/relays/lease.py) (0016)."""

    __tablename__ = "relay_owner"
    relay_id: str = Field(primary_key=True, max_length=63, foreign_key="relay.id", ondelete="CASCADE")
    holder: str = Field(max_length=120)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))  # database clock, ms
    epoch: int = Field(default=0)  # + 1 at each change of holder
