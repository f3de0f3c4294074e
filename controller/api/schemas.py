"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, field_validator, model_validator

from controller.core.ids import DbId, Flag
from controller.schedules.crud import ONE_OF
from devices.protocol import valid_id
from devices.security import RESERVED_PREFIX, reserved_id
from scheduler import TIMEZONE
from scheduler.triggers import Spec

Priority = Literal["normal", "priority", "emergency"]


def iso(ms: int | None) -> str | None:
    """Epoch ms → ISO 8601 in Asia/Ho_Chi_Minh (what the ward reads)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(TIMEZONE).isoformat(
        timespec="milliseconds")


# what valid_id() accepts, documented in the schema (the validators give the friendlier message)
ID_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneCreate(Strict):
    id: str = Field(description="short id, e.g. 'tdp3' (lowercase letters, digits, - and _)",
                    json_schema_extra={"pattern": ID_PATTERN})
    name: str = Field(min_length=1, max_length=200)
    org_unit_id: str | None = Field(None, description="the ward (org unit) that owns it")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not valid_id(v) or v == "all":
            raise ValueError("use 1-63 lowercase letters, digits, '-' or '_' (and not 'all')")
        return v


class NodeCreate(Strict):
    id: str = Field(json_schema_extra={"pattern": ID_PATTERN})
    name: str = Field("", max_length=200)
    zones: list[str] = Field(default_factory=list)
    lat: StrictFloat | None = Field(None, ge=-90, le=90)  # a JSON number: false is not 0
    lon: StrictFloat | None = Field(None, ge=-180, le=180)

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


class ZonePublic(BaseModel):
    id: str
    name: str
    nodes: int = Field(description="how many units are in it")
    org_unit_id: str | None


class ZoneCreated(BaseModel):
    id: str
    name: str


class OrgUnitPublic(BaseModel):
    id: str
    name: str
    parent_id: str | None


class RelayPublic(BaseModel):
    """A relay (tiếp sóng) as it is now; republish relays add their own figures."""
    model_config = ConfigDict(extra="allow")
    id: str
    url: str
    mode: str = Field(description="node_fetch | republish")
    state: str
    reason: str
    user: str = Field(description="who started it")
    priority: str
    nodes: list[str]
    start_at: str | None
    duration_s: float | None
    started_at: str | None
    ended_at: str | None
    owner: str | None = Field(None, description="the controller that runs it")
    owner_seen_at: str | None = None
    schedule_id: int | None = None
    units_playing: list[str] = Field(default_factory=list, description="node_fetch: units that say so")
    units_interrupted: list[str] = Field(default_factory=list)
    units_refused: dict[str, str] = Field(default_factory=dict, description=(
        "unit → why it is not relaying: its refusal of play_stream (e.g. power_off), or "
        "unsafe_redirect (node_fetch: the station led it to a non-public address on another origin; "
        "docs/protocol.md play_stream)"))


# --------------------------------------------------------------------------- schedules


class RelaySpec(Strict):
    """A stream relayed (tiếp sóng) by every slot of a schedule, for ``duration_s``."""

    url: str = Field(max_length=500, pattern=r"^https?://[^\s/]+[^\s]*$",
                     description="upstream stream: Icecast MP3/AAC or HLS (.m3u8), http:// or https://")
    mode: Literal["node_fetch", "republish"] = Field(
        "node_fetch", description="node_fetch: units fetch the URL; republish: the controller fetches it")
    duration_s: int = Field(ge=10, le=24 * 3600, description="how long each slot relays (seconds); the "
                                                             "relay ends at slot + duration_s")


class ScheduleCreate(Strict):
    name: str = Field("", max_length=200)
    bulletin_id: DbId | None = Field(None, description="the bulletin to air (a JSON integer); or give "
                                                       "`relay`")
    relay: RelaySpec | None = Field(None, description="a stream to relay instead of a bulletin")
    target: Target
    when: Spec
    priority: Priority | None = Field(None, description="default: the bulletin's class")
    repeat: int = Field(1, ge=1, le=10, description="airings per slot (1-10)")
    interval_s: int = Field(0, ge=0, le=86_400,
                            description="seconds from one repeat's start to the next; 0 = back to back")
    exceptions: list[date] = Field(default_factory=list, max_length=366,
                                   description="dates (ward time) on which the schedule does not air")
    valid_for_s: int | None = Field(None, ge=5, le=7 * 24 * 3600,
                                    description="after its play time, how long a unit may still play it")
    enabled: Flag = True

    @model_validator(mode="after")
    def _one_content(self) -> ScheduleCreate:
        if (self.bulletin_id is None) == (self.relay is None):
            raise ValueError(ONE_OF)
        return self


class ScheduleUpdate(Strict):
    name: str | None = Field(None, max_length=200)
    bulletin_id: DbId | None = None
    relay: RelaySpec | None = None
    target: Target | None = None
    when: Spec | None = None
    priority: Priority | None = None
    repeat: int | None = Field(None, ge=1, le=10)
    interval_s: int | None = Field(None, ge=0, le=86_400)
    exceptions: list[date] | None = Field(None, max_length=366)
    valid_for_s: int | None = Field(None, ge=5, le=7 * 24 * 3600)
    enabled: Flag | None = None


class SchedulePublic(BaseModel):
    id: int
    name: str
    bulletin_id: int | None
    bulletin_title: str | None
    relay: dict[str, Any] | None
    target: dict[str, Any]
    priority: str | None
    when: dict[str, Any]
    repeat: int
    interval_s: int
    exceptions: list[str]
    valid_for_s: int | None
    enabled: bool
    deleted: bool
    version: int
    created_by: str
    created_at: str | None
    updated_at: str | None
    last_slot_at: str | None
    next_slots: list[str]


class RunPublic(BaseModel):
    slot_at: str | None
    status: str
    late_ms: int | None
    reason: str
    broadcast_ids: list[str]
    fired_by: str
    version: int
    recorded_at: str | None


# --------------------------------------------------------------------------- errors


class ErrorPublic(BaseModel):
    """Every refusal: one English sentence saying what was wrong (and what to do)."""
    detail: str


class FieldError(BaseModel):
    """One field of a request that does not match the schema (FastAPI's own validation)."""
    model_config = ConfigDict(extra="allow")  # pydantic adds input / ctx / url
    loc: list[str | int]
    msg: str
    type: str


class InvalidPublic(BaseModel):
    """422: a sentence (the request is well-formed but cannot be done), or one entry per field
    that does not match the schema."""
    detail: str | list[FieldError]


ERROR_TEXT = {
    400: "the body cannot be read (not UTF-8 JSON, or broken form data)",
    401: "not logged in (or wrong user name or password)",
    403: "your role or ward may not do this, or a cross-site / CSRF-less browser request",
    404: "what the path or body names does not exist",
    409: "it cannot be done in its current state (e.g. not approved, already decided)",
    413: "the request body is larger than the limit",
    422: "the request is invalid; `detail` says why",
    429: "too many failed logins or password guesses; wait and retry",
    503: "a service it needs (broker, speech engine, database) is unavailable right now",
}


# what any logged-in route can answer: unreadable body, login, role / ward / cross-site, body too
# large, invalid, login backoff
COMMON_ERRORS = (400, 401, 403, 413, 422, 429)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router or route: the error statuses it can answer, documented once."""
    return {code: {"model": InvalidPublic if code == 422 else ErrorPublic, "description": ERROR_TEXT[code]}
            for code in codes}
