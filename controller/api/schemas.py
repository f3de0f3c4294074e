"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.ids import DbId, Flag
from devices.protocol import valid_id
from devices.security import RESERVED_PREFIX, reserved_id
from scheduler import TIMEZONE

Priority = Literal["normal", "priority", "emergency"]


def iso(ms: int | None) -> str | None:
    """Epoch ms → ISO 8601 in Asia/Ho_Chi_Minh (what the ward reads)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(TIMEZONE).isoformat(
        timespec="milliseconds")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneCreate(Strict):
    id: str = Field(description="short id, e.g. 'tdp3' (lowercase letters, digits, - and _)")
    name: str = Field(min_length=1, max_length=200)
    org_unit_id: str | None = Field(None, description="the ward (org unit) that owns it")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not valid_id(v) or v == "all":
            raise ValueError("use 1-63 lowercase letters, digits, '-' or '_' (and not 'all')")
        return v


class NodeCreate(Strict):
    id: str
    name: str = Field("", max_length=200)
    zones: list[str] = Field(default_factory=list)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not valid_id(v):
            raise ValueError("use 1-63 lowercase letters, digits, '-' or '_'")
        if reserved_id(v):  # the controller's broker account and client id (issue 11)
            raise ValueError(f"ids starting with {RESERVED_PREFIX!r} are reserved for the system's own "
                             "broker accounts; choose another id")
        return v


class NodePublic(BaseModel):
    id: str
    name: str
    zones: list[str]
    status: str
    alarm: str
    last_seen: str | None
    telemetry: dict[str, Any]
    lat: float | None = None
    lon: float | None = None


class BulletinCreate(Strict):
    title: str = Field("", max_length=200)
    text: str = Field(description="the bulletin as written; it is turned into speech")
    voice: str | None = None
    priority: Priority = "normal"


class BulletinPublic(BaseModel):
    id: int
    title: str
    text: str
    voice: str
    priority: str
    created_at: str | None
    created_by: str
    audio: dict[str, Any] | None


class Target(Strict):
    all: Flag = Field(False, description="the whole ward")
    zones: list[str] = Field(default_factory=list, max_length=500)
    nodes: list[str] = Field(default_factory=list, max_length=5000)


class BroadcastCreate(Strict):
    bulletin_id: DbId = Field(description="a JSON integer (\"6\" or 6.0 is refused: 422)")
    target: Target
    priority: Priority | None = Field(None, description="default: the bulletin's class")
    air_at: datetime | None = Field(None, description="ISO time with offset; omit to air now")
    valid_for_s: int | None = Field(None, ge=5, le=7 * 24 * 3600,
                                    description="seconds the broadcast stays deliverable (default 1 h)")
    repeat: int = Field(1, ge=1, le=10)


class DeliveryEventPublic(BaseModel):
    state: str
    reason: str
    at: str | None


class DeliveryPublic(BaseModel):
    node_id: str
    state: str
    reason: str
    updated_at: str | None
    history: list[DeliveryEventPublic]


class BroadcastPublic(BaseModel):
    id: str
    bulletin_id: int
    priority: str
    status: str
    reason: str
    targets: dict[str, Any]
    air_at: str | None = Field(description="when the audio is published (ahead of play_at: pre-delivery)")
    play_at: str | None = Field(None, description="when the units start; None = as soon as ready")
    expires_at: str | None
    sent_at: str | None
    finished_at: str | None
    tally: dict[str, int]
    deliveries: list[DeliveryPublic] | None = None


class MqttCredentials(BaseModel):
    username: str = Field(description="the unit's broker user name (= its id)")
    password: str = Field(description="shown once; only its hash is stored")
    note: str = ("store this password in the unit now: it is not shown again. The broker accepts it "
                 "after `loaphuong mqtt-config` and a reload of Mosquitto (SIGHUP).")


class NodeCreated(NodePublic):
    mqtt: MqttCredentials = Field(description="the unit's own broker credentials, issued now")
