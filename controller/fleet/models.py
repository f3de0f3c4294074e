"""Tables of the fleet: zones, units, their events, credentials, settings, commands and telemetry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from controller.core.columns import ms_column


class Zone(SQLModel, table=True):
    """A hamlet / residential group (thôn, tổ dân phố): a broadcast target and an MQTT group."""

    id: str = Field(primary_key=True, max_length=63)
    name: str = Field(max_length=200)
    org_unit_id: str | None = Field(default=None, max_length=63)  # the ward that owns it (0005)
    created_at: int = ms_column(nullable=False)


class NodeZone(SQLModel, table=True):
    node_id: str = Field(foreign_key="node.id", primary_key=True, ondelete="CASCADE")
    zone_id: str = Field(foreign_key="zone.id", primary_key=True, ondelete="CASCADE")


#: Node.status of a unit taken out of service (DELETE /api/nodes/{id}): no zones, no broker
#: account, not addressable; its row stays for its history (deliveries, events).
RETIRED = "retired"


class Node(SQLModel, table=True):
    """A loudspeaker unit (cụm loa)."""

    id: str = Field(primary_key=True, max_length=63)
    name: str = Field(default="", max_length=200)
    lat: float | None = None
    lon: float | None = None
    status: str = Field(default="unknown", max_length=16)  # online | offline | shutdown | unknown | retired
    session: str = Field(default="", max_length=64)
    fw: str = Field(default="", max_length=64)  # firmware version, from its last birth
    #: what the unit is ("esp32-a1s", "linux-aarch64"), from its last birth
    hw: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    last_seen: int | None = Field(default=None, sa_column=Column(BigInteger))
    telemetry: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    alarm: str = Field(default="", max_length=200)
    created_at: int = ms_column(nullable=False)


class NodeEvent(SQLModel, table=True):
    """Presence changes and alarms of a node."""

    __table_args__ = (Index("ix_nodeevent_node_at", "node_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(max_length=63)
    kind: str = Field(max_length=32)  # online | offline | shutdown | duplicate_id | ...
    detail: str = Field(default="", max_length=500)
    at: int = ms_column(nullable=False)


# --------------------------------------------------------------------------- fleet control (0004)


class NodeCredential(SQLModel, table=True):
    """A node's broker account: user name = node id, Mosquitto ``$7$`` hash (never the password)."""

    node_id: str = Field(foreign_key="node.id", primary_key=True, max_length=63, ondelete="CASCADE")
    password_hash: str = Field(max_length=200)
    issued_by: str = Field(default="", max_length=100)
    issued_at: int = ms_column(nullable=False)


class NodeSetting(SQLModel, table=True):
    """Desired settings set by commands (republished in the node's retained config)."""

    node_id: str = Field(foreign_key="node.id", primary_key=True, max_length=63, ondelete="CASCADE")
    volume: int = Field(default=70, ge=0, le=100)
    updated_at: int = ms_column(nullable=False)


class NodeCommand(SQLModel, table=True):
    """One remote-control request (correlation id) and what each node answered."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=32)
    args: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    target: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    results: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(default="", max_length=100)
    created_at: int = ms_column(nullable=False, index=True)
    finished_at: int | None = Field(default=None, sa_column=Column(BigInteger))


class TelemetrySample(SQLModel, table=True):
    """Bounded telemetry history: a sample per node every few minutes or on a change of state."""

    __table_args__ = (Index("ix_telemetrysample_node_at", "node_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(max_length=63)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ZoneWindow(SQLModel, table=True):
    """A zone's timed power window (0014): its units are switched on at ``on_at`` and off at
    ``off_at`` (ward time, "HH:MM") on ``days`` (0 = Monday … 6 = Sunday) by the controller
    (controller/fleet/windows.py). ``done_at``: the last switch applied (ms of its minute), so a
    switch is sent once, by one controller."""

    id: int | None = Field(default=None, primary_key=True)
    zone_id: str = Field(foreign_key="zone.id", index=True, ondelete="CASCADE", max_length=63)
    on_at: str = Field(max_length=5)
    off_at: str = Field(max_length=5)
    days: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    enabled: bool = True
    done_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_by: str = Field(default="", max_length=100)
    created_at: int = ms_column(nullable=False)
