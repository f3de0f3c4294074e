"""Request bodies of the HTTP API: everything a client sends, validated before a route runs.

What it gets back (the ``*Public`` models, the error bodies) is in :mod:`controller.api.responses`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator, model_validator

from controller.accounts.roles import ROLES
from controller.core.ids import DbId, Flag
from controller.fleet.commands import ARGS, DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S
from controller.schedules.crud import ONE_OF
from devices.protocol import valid_id
from devices.security import RESERVED_PREFIX, reserved_id
from scheduler.triggers import Spec, parse_time_of_day

Priority = Literal["normal", "priority", "emergency"]
#: A calendar day as JSON gives it, "2026-12-24" (strict: a number is not read as a Unix time)
def _iso_day(value: object) -> object:
    """A date given as text "YYYY-MM-DD" (or already a date); a number or a boolean is refused."""
    if isinstance(value, str) or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    raise ValueError("expected a date written YYYY-MM-DD")


IsoDate = Annotated[date, pydantic.BeforeValidator(_iso_day)]


def _query_day(value: object) -> object:
    """A query's day: exactly "YYYY-MM-DD" ("0" would be read as a Unix time)."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("expected a date written YYYY-MM-DD")
    return _iso_day(value)


#: a day in a query string (``?from=2026-12-01``), strictly written YYYY-MM-DD
QueryDay = Annotated[date, pydantic.BeforeValidator(_query_day)]


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


class BulletinCreate(Strict):
    title: str = Field("", max_length=200)
    text: str = Field(description="the bulletin as written; it is turned into speech")
    voice: str | None = None
    priority: Priority = "normal"


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


# ------------------------------------------------------------------- accounts


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")
    role: str = Field(description=f"one of: {', '.join(ROLES)}", json_schema_extra={"enum": list(ROLES)})
    org_unit_id: str | None = None


class UserUpdate(Strict):
    active: bool | None = None
    role: str | None = None
    org_unit_id: str | None = Field(None, description="move the account (within your subtree); "
                                                      "null: the whole tree")


class OrgUnitCreate(Strict):
    id: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    parent_id: str | None = None


class PasswordChange(Strict):
    current: str = Field(min_length=1, max_length=200)
    new: str = Field(min_length=10, max_length=200,
                     description="at least 10 characters, not a common password, not containing "
                                 "the user name")


# --------------------------------------------------------- units and commands


class NodeUpdate(Strict):
    name: str | None = Field(None, max_length=200)
    zones: list[str] | None = Field(None, max_length=500, description="replaces the unit's zones")
    lat: StrictFloat | None = Field(None, ge=-90, le=90)  # a JSON number: false is not 0
    lon: StrictFloat | None = Field(None, ge=-180, le=180)


class CommandRequest(Strict):
    name: str = Field(description=f"one of: {', '.join(ARGS)}", json_schema_extra={"enum": list(ARGS)})
    args: dict[str, Any] = Field(default_factory=dict,
                                 description='power {"on": bool}, volume {"level": 0..100}, '
                                             'play_stream {"url": "https://..."}, cancel {"bc": id}')
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S,
                             description="how long to wait for the units' replies")


# --------------------------------------------- bulletins, approval and speech


class BulletinSpeechCreate(BulletinCreate):
    speed: float | None = Field(None, ge=0.5, le=2.0, description="speaking speed (default: the ward's)")


class BulletinEdit(Strict):
    title: str | None = Field(None, min_length=1, max_length=200)
    text: str | None = Field(None, min_length=1, description="the new text; it is read again")
    voice: str | None = Field(None, max_length=64)
    speed: float | None = Field(None, ge=0.5, le=2.0)
    priority: Priority | None = None


class Decision(Strict):
    note: str = Field("", max_length=500, description="why (shown to the editor)")
    audio_sha256: str | None = Field(
        None, pattern="^[0-9a-f]{64}$",
        description="the audio the approver listened to (its sha256): refused (409) if the bulletin's "
                    "audio has changed since")


class PreviewRequest(Strict):
    text: str = Field(description="the bulletin as written")
    voice: str | None = Field(None, description="voice of the engine (default: the ward's)")
    engine: str | None = Field(None, description="engine to try first (default: the ward's)")
    speed: float | None = Field(None, ge=0.5, le=2.0, description="1.0 = normal")
    priority: Priority = Field("normal", description="emergency adds the attention tone")
    inline: bool = Field(False, description="also return the audio as base64")


class NormalizeRequest(Strict):
    text: str
    voice: str | None = None
    engine: str | None = None


class EntryCreate(Strict):
    org_unit_id: str | None = Field(None, max_length=63,
                                    description="whose dictionary (default: your own org unit's)")
    term: str = Field(min_length=1, max_length=100, description="as written, e.g. 'Kẻ Sặt' or 'Đ/c Hùng'")
    spoken: str = Field(min_length=1, max_length=300, description="how it is read aloud")
    note: str = Field("", max_length=200)

    @field_validator("term", "spoken")
    @classmethod
    def _text(cls, v: str) -> str:
        return entry_text(v)


def entry_text(v: str) -> str:
    """A dictionary term or spoken form: NFC, single spaces, some letter or digit."""
    v = " ".join(unicodedata.normalize("NFC", v).split())
    if not any(unicodedata.category(ch)[0] in ("L", "N") for ch in v):
        raise ValueError("must contain at least one letter or digit")
    return v


# --------------------------------------------------------------------------- schedules


class RelaySpec(Strict):
    """A stream relayed (tiếp sóng) by every slot of a schedule, for ``duration_s``."""

    url: str = Field(max_length=500, pattern=r"^https?://[^\s/]+[^\s]*$",
                     description="upstream stream: Icecast MP3/AAC or HLS (.m3u8), http:// or https://")
    mode: Literal["node_fetch", "republish"] = Field(
        "node_fetch", description="node_fetch: units fetch the URL; republish: the controller fetches it")
    duration_s: int = Field(ge=10, le=24 * 3600, description="how long each slot relays (seconds); the "
                                                             "relay ends at slot + duration_s")


class EntryUpdate(Strict):
    spoken: str | None = Field(None, min_length=1, max_length=300, description="how it is read aloud")
    note: str | None = Field(None, max_length=200)

    @field_validator("spoken")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        return None if v is None else entry_text(v)

    @model_validator(mode="after")
    def _something(self) -> EntryUpdate:
        if self.spoken is None and self.note is None:
            raise ValueError("give the new spoken form (spoken) or note")
        return self


class ScheduleCreate(Strict):
    name: str = Field("", max_length=200)
    bulletin_id: DbId | None = Field(None, description="the bulletin to air (a JSON integer); or give "
                                                       "`relay`")
    relay: RelaySpec | None = Field(None, description="a stream to relay instead of a bulletin")
    target: Target
    when: Spec
    priority: Priority | None = Field(None, description="default: the bulletin's class")
    repeat: StrictInt = Field(1, ge=1, le=10, description="airings per slot (1-10)")
    interval_s: StrictInt = Field(0, ge=0, le=86_400,
                            description="seconds from one repeat's start to the next; 0 = back to back")
    exceptions: list[IsoDate] = Field(default_factory=list, max_length=366,
                                   description="dates (ward time) on which the schedule does not air")
    valid_for_s: StrictInt | None = Field(None, ge=5, le=7 * 24 * 3600,
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
    repeat: StrictInt | None = Field(None, ge=1, le=10)
    interval_s: StrictInt | None = Field(None, ge=0, le=86_400)
    exceptions: list[IsoDate] | None = Field(None, max_length=366)
    valid_for_s: StrictInt | None = Field(None, ge=5, le=7 * 24 * 3600)
    enabled: Flag | None = None


# ------------------------------------------------------------ live and relays


class LiveTarget(Strict):
    all: Flag = False  # a JSON boolean ("yes" is refused: 422)
    zones: list[str] = Field(default_factory=list)
    nodes: list[str] = Field(default_factory=list)


class LiveStart(Strict):
    """The first message of ``/api/live/ws`` (controller/api/live.py)."""
    type: Literal["start"]
    target: LiveTarget
    priority: Priority = "normal"
    csrf: str | None = Field(None, max_length=200, description="the session's CSRF token (cookie logins)")


class RelayRequest(Strict):
    url: str = Field(max_length=500, pattern=r"^https?://[^\s/]+[^\s]*$",
                     description="upstream stream: Icecast MP3/AAC or HLS (.m3u8), http:// or https://")
    target: LiveTarget
    priority: Priority = "normal"
    mode: Literal["node_fetch", "republish"] = Field(
        "node_fetch", description="node_fetch: units fetch the URL; republish: the controller fetches "
                                  "it and sends the audio as live frames")
    start_at: datetime | None = Field(None, description="ISO 8601 with an offset; omitted: now. With "
                                                        "start_at the relay ends at start_at + duration_s")
    duration_s: float | None = Field(None, gt=0, le=24 * 3600, description="omitted: until stopped")


# ------------------------------------- relay presets, zone windows, alerts (issue 14)


class PresetCreate(Strict):
    """A station offered by name on the relay screen (the province station, VOV1, VOV2)."""
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(max_length=500, pattern=r"^https?://[^\s/]+[^\s]*$", description="http:// or https://")
    mode: Literal["node_fetch", "republish"] = "node_fetch"


class PresetUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, max_length=500, pattern=r"^https?://[^\s/]+[^\s]*$")
    mode: Literal["node_fetch", "republish"] | None = None


def _hhmm(v: str | None) -> str | None:
    return None if v is None else parse_time_of_day(v).strftime("%H:%M")  # "6h30" → "06:30"


class WindowCreate(Strict):
    """A zone's timed power window: on at ``on_at``, off at ``off_at`` (ward time) on ``days``."""
    on_at: str = Field(max_length=20, description="'06:00' or as staff write it ('6h', '6h30')")
    off_at: str = Field(max_length=20)
    days: list[int] = Field(default_factory=lambda: list(range(7)), min_length=1, max_length=7,
                            description="0 = Monday … 6 = Sunday")
    enabled: Flag = True

    _t = field_validator("on_at", "off_at")(_hhmm)

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if any(d not in range(7) for d in v):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return sorted(set(v))

    @model_validator(mode="after")
    def _differ(self) -> WindowCreate:
        if self.on_at == self.off_at:
            raise ValueError("on_at and off_at must differ")
        return self


class WindowUpdate(Strict):
    enabled: Flag


class AlertAckRequest(Strict):
    keys: list[str] = Field(min_length=1, max_length=200, description="the alerts' keys (GET /alerts/items)")


class LibraryUse(Strict):
    """A bulletin made from an audio library item."""
    title: str = Field("", max_length=200, description="default: the item's title")
    text: str = Field("", max_length=5000, description="what the audio says (optional)")
    priority: Priority = "normal"
