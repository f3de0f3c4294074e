"""Database tables (SQLModel). Times are UTC epoch milliseconds, as on the wire.

Families follow the FastAPI template: ``XBase`` (shared fields), ``X`` (table),
``XCreate`` / ``XPublic`` for the API live in controller/api/schemas.py.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlmodel import Field, SQLModel

from devices.protocol import now_ms


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


def _ms_column(**kw: Any) -> Any:
    return Field(default_factory=now_ms, sa_column=Column(BigInteger, **kw))


class Zone(SQLModel, table=True):
    """A hamlet / residential group (thôn, tổ dân phố): a broadcast target and an MQTT group."""

    id: str = Field(primary_key=True, max_length=63)
    name: str = Field(max_length=200)
    org_unit_id: str | None = Field(default=None, max_length=63)  # the ward that owns it (0005)
    created_at: int = _ms_column(nullable=False)


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
    fw: str = Field(default="", max_length=64)
    last_seen: int | None = Field(default=None, sa_column=Column(BigInteger))
    telemetry: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    alarm: str = Field(default="", max_length=200)
    created_at: int = _ms_column(nullable=False)


class NodeEvent(SQLModel, table=True):
    """Presence changes and alarms of a node."""

    __table_args__ = (Index("ix_nodeevent_node_at", "node_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(max_length=63)
    kind: str = Field(max_length=32)  # online | offline | shutdown | duplicate_id | ...
    detail: str = Field(default="", max_length=500)
    at: int = _ms_column(nullable=False)


class AudioAsset(SQLModel, table=True):
    """Rendered audio in node format, stored content-addressed under data_dir/audio."""

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    duration_ms: int
    codec: str = Field(max_length=16)
    sample_rate: int
    bitrate_kbps: int
    engine: str = Field(max_length=64)
    voice: str = Field(max_length=64)
    path: str = Field(max_length=500)
    created_at: int = _ms_column(nullable=False)


class Bulletin(SQLModel, table=True):
    """A text bulletin (bản tin) and the audio rendered from it."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    text: str
    voice: str = Field(max_length=64)
    priority: str = Field(default="normal", max_length=16)
    audio_sha256: str | None = Field(default=None, foreign_key="audioasset.sha256")
    created_by: str = Field(default="", max_length=100)
    created_at: int = _ms_column(nullable=False)
    # what staff must know about the speech (fallback to another engine, unreadable text); 0002
    warnings: list[str] = Field(default_factory=list,
                                sa_column=Column(JSON, nullable=False, server_default=sql_text("'[]'")))
    # approval (0005): draft → submitted → approved | rejected
    approval: str = Field(default="approved", max_length=16)
    org_unit_id: str | None = Field(default=None, max_length=63)
    submitted_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    decided_by: str = Field(default="", max_length=100)
    decided_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    decision_note: str = Field(default="", max_length=500)
    # what the approver approved (0009): the audio's sha256 and the spoken text shown to them;
    # only this audio airs (controller/binding.py). ``pending_reason``: why it needs approval again
    approved_sha256: str | None = Field(default=None, max_length=64)
    approved_spoken_text: str | None = None
    pending_reason: str = Field(default="", max_length=500)


class Broadcast(SQLModel, table=True):
    """One airing of a bulletin to a set of nodes (lượt phát)."""

    id: str = Field(primary_key=True, max_length=63)
    bulletin_id: int = Field(foreign_key="bulletin.id")
    audio_sha256: str = Field(foreign_key="audioasset.sha256")
    priority: str = Field(default="normal", max_length=16)
    status: str = Field(default=BroadcastStatus.SCHEDULED.value, max_length=16)  # BroadcastStatus
    reason: str = Field(default="", max_length=500)
    targets: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    scopes: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    repeat: int = Field(default=1, ge=1, le=10)
    air_at: int = _ms_column(nullable=False)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    sent_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    finished_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_by: str = Field(default="", max_length=100)
    created_at: int = _ms_column(nullable=False)
    play_at: int | None = Field(default=None, sa_column=Column(BigInteger))  # ms; None: on arrival


class Delivery(SQLModel, table=True):
    """Where one broadcast stands on one node."""

    __table_args__ = (UniqueConstraint("broadcast_id", "node_id"),)
    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: str = Field(foreign_key="broadcast.id", index=True, ondelete="CASCADE")
    node_id: str = Field(foreign_key="node.id", max_length=63)
    state: str = Field(default=DeliveryState.QUEUED.value, max_length=16)  # DeliveryState
    reason: str = Field(default="", max_length=200)
    updated_at: int = _ms_column(nullable=False)


class DeliveryEvent(SQLModel, table=True):
    """Every transition of a delivery, with its time: the per-node history."""

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True, ondelete="CASCADE")
    state: str = Field(max_length=16)  # DeliveryState
    reason: str = Field(default="", max_length=200)
    at: int = _ms_column(nullable=False)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=100)
    password_hash: str = Field(max_length=200)
    role: str = Field(default="admin", max_length=16)  # admin | editor | approver | operator
    active: bool = True
    created_at: int = _ms_column(nullable=False)
    org_unit_id: str | None = Field(default=None, max_length=63)  # None: the whole tree (0005)


# --------------------------------------------------------------------------- accounts (0005)


class OrgUnit(SQLModel, table=True):
    """A node of the administrative tree (province → district → ward ...)."""

    id: str = Field(primary_key=True, max_length=63)
    name: str = Field(max_length=200)
    parent_id: str | None = Field(default=None, foreign_key="orgunit.id", max_length=63)


class UserSession(SQLModel, table=True):
    """A browser session: only the SHA-256 of the cookie value is stored."""

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    csrf: str = Field(max_length=64)
    created_at: int = _ms_column(nullable=False)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class AuditEntry(SQLModel, table=True):
    """One state-changing action: who, what, on which object, with what result."""

    id: int | None = Field(default=None, primary_key=True)
    at: int = _ms_column(nullable=False, index=True)
    username: str = Field(default="", max_length=100)
    action: str = Field(max_length=64)
    target: str = Field(default="", max_length=200)
    detail: str = Field(default="", max_length=1000)


# --------------------------------------------------------------------------- fleet control (0004)


class NodeCredential(SQLModel, table=True):
    """A node's broker account: user name = node id, Mosquitto ``$7$`` hash (never the password)."""

    node_id: str = Field(foreign_key="node.id", primary_key=True, max_length=63, ondelete="CASCADE")
    password_hash: str = Field(max_length=200)
    issued_by: str = Field(default="", max_length=100)
    issued_at: int = _ms_column(nullable=False)


class NodeSetting(SQLModel, table=True):
    """Desired settings set by commands (republished in the node's retained config)."""

    node_id: str = Field(foreign_key="node.id", primary_key=True, max_length=63, ondelete="CASCADE")
    volume: int = Field(default=70, ge=0, le=100)
    updated_at: int = _ms_column(nullable=False)


class NodeCommand(SQLModel, table=True):
    """One remote-control request (correlation id) and what each node answered."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=32)
    args: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    target: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    results: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(default="", max_length=100)
    created_at: int = _ms_column(nullable=False, index=True)
    finished_at: int | None = Field(default=None, sa_column=Column(BigInteger))


class TelemetrySample(SQLModel, table=True):
    """Bounded telemetry history: a sample per node every few minutes or on a change of state."""

    __table_args__ = (Index("ix_telemetrysample_node_at", "node_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    node_id: str = Field(max_length=63)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --------------------------------------------------------------------------- speech (0002)


class PronunciationEntry(SQLModel, table=True):
    """A pronunciation dictionary entry of an org unit: a written term and how it is read aloud.

    Applied (whole word, case-insensitive) before normalisation to the bulletins of that org unit
    and of every unit below it; a lower unit's entry for the same term wins (controller/dictionary.py).
    ``org_unit_id`` None: the top of the tree (every ward). ``term_key`` is the case-folded
    term, unique per org unit (0009).
    """

    __table_args__ = (UniqueConstraint("org_unit_id", "term_key", name="uq_pronunciation_org_term"),)
    id: int | None = Field(default=None, primary_key=True)
    org_unit_id: str | None = Field(default=None, max_length=63, index=True)
    term: str = Field(max_length=100)
    term_key: str = Field(max_length=100)
    spoken: str = Field(max_length=300)
    note: str = Field(default="", max_length=200)
    created_by: str = Field(default="", max_length=100)
    created_at: int = _ms_column(nullable=False)


class BulletinSpeech(SQLModel, table=True):
    """How a bulletin was read: the spoken (normalised) text and the engine actually used."""

    bulletin_id: int = Field(foreign_key="bulletin.id", primary_key=True, ondelete="CASCADE")
    spoken_text: str
    requested_engine: str = Field(max_length=64)
    engine: str = Field(max_length=64)
    voice: str = Field(max_length=64)
    dictionary_hits: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    speed: float | None = None  # the speed it was rendered at (0009; None: the ward's default)


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


class LiveLog(SQLModel, table=True):
    """The broadcast log of a live session from a phone (phát trực tiếp), for the province's reports:
    who spoke, when, to which units, how long, which units played it, why it ended, and the
    archived audio (``archive``: path under the audio directory, None when not archived)."""

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
