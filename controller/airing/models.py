"""Tables of airing: broadcasts, per-unit deliveries and their events; the delivery states."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from controller.core.columns import ms_column


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    OFFLINE = "offline"
    SENT = "sent"
    RECEIVING = "receiving"
    VERIFIED = "verified"
    PLAYING = "playing"
    PLAYED = "played"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    @property
    def rank(self) -> int:
        return _RANK[self]


FINAL_STATES = frozenset(
    {DeliveryState.PLAYED, DeliveryState.FAILED, DeliveryState.EXPIRED, DeliveryState.CANCELLED}
)
_RANK = {
    DeliveryState.QUEUED: 0, DeliveryState.OFFLINE: 1, DeliveryState.SENT: 2,
    DeliveryState.RECEIVING: 3, DeliveryState.VERIFIED: 4, DeliveryState.PLAYING: 5,
    DeliveryState.PLAYED: 9, DeliveryState.FAILED: 9, DeliveryState.EXPIRED: 9,
    DeliveryState.CANCELLED: 9,
}


class BroadcastStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its air time
    SENDING = "sending"  # audio being published
    ACTIVE = "active"  # published; waiting for nodes
    DONE = "done"  # every node reached a final state
    EXPIRED = "expired"  # validity ran out with nodes unfinished
    CANCELLED = "cancelled"
    FAILED = "failed"  # could not be sent at all (reason in `reason`)


class Broadcast(SQLModel, table=True):
    """One airing of a bulletin to a set of nodes (lượt phát)."""

    # every controller asks every 2 s for the ones still 'scheduled' past their air time
    # (controller/airing/overdue.py): an index, not a scan of every broadcast ever made
    __table_args__ = (Index("ix_broadcast_status_air_at", "status", "air_at"),)
    id: str = Field(primary_key=True, max_length=63)
    bulletin_id: int = Field(foreign_key="bulletin.id")
    audio_sha256: str = Field(foreign_key="audioasset.sha256")
    priority: str = Field(default="normal", max_length=16)
    status: str = Field(default=BroadcastStatus.SCHEDULED.value, max_length=16)  # BroadcastStatus
    reason: str = Field(default="", max_length=500)
    targets: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    scopes: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    repeat: int = Field(default=1, ge=1, le=10)
    air_at: int = ms_column(nullable=False)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    sent_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    finished_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_by: str = Field(default="", max_length=100)
    created_at: int = ms_column(nullable=False)
    play_at: int | None = Field(default=None, sa_column=Column(BigInteger))  # ms; None: on arrival


class Delivery(SQLModel, table=True):
    """Where one broadcast stands on one node."""

    __table_args__ = (UniqueConstraint("broadcast_id", "node_id"),)
    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: str = Field(foreign_key="broadcast.id", index=True, ondelete="CASCADE")
    node_id: str = Field(foreign_key="node.id", max_length=63)
    state: str = Field(default=DeliveryState.QUEUED.value, max_length=16)  # DeliveryState
    reason: str = Field(default="", max_length=200)
    updated_at: int = ms_column(nullable=False)


class DeliveryEvent(SQLModel, table=True):
    """Every transition of a delivery, with its time: the per-node history."""

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True, ondelete="CASCADE")
    state: str = Field(max_length=16)  # DeliveryState
    reason: str = Field(default="", max_length=200)
    at: int = ms_column(nullable=False)


class BroadcastOwner(SQLModel, table=True):
    """Which controller delivers a broadcast on its way: a lease on the database clock
    (controller/airing/ownership.py). The owner renews it; another takes it once it expired."""

    __tablename__ = "broadcast_owner"
    broadcast_id: str = Field(primary_key=True, max_length=63, foreign_key="broadcast.id", ondelete="CASCADE")
    holder: str = Field(max_length=120)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))  # database clock, ms
    epoch: int = Field(default=0)  # + 1 at each change of holder


class ZoneClaim(SQLModel, table=True):
    """A zone on air, cluster-wide: the item sounding in it (a broadcast, or one unit's catch-up of
    it), its priority and the controller that owns it (controller/airing/zone_claims.py)."""

    __tablename__ = "zone_claim"
    zone: str = Field(primary_key=True, max_length=100)
    item_id: str = Field(max_length=140)
    broadcast_id: str = Field(max_length=63)
    priority: str = Field(max_length=16)
    holder: str = Field(max_length=120)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))  # database clock, ms


class AiringRequest(SQLModel, table=True):
    """Staff's command to a broadcast another controller delivers (cancel, end waiting): written by
    the controller that got the request, carried out by the owner (controller/airing/requests.py)."""

    __tablename__ = "airing_request"
    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: str = Field(max_length=63, index=True)
    action: str = Field(max_length=16)  # cancel | end_waiting
    reason: str = Field(default="", max_length=200)
    origin: str = Field(default="", max_length=120)
    created_at: int = ms_column(nullable=False)
    done_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    outcome: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
