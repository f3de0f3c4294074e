"""Response bodies of the HTTP API: what a client gets back (the ``*Public`` models), the error bodies
and the statuses each route documents, and :func:`iso` for the times in them.

What a client sends (every request body) is in :mod:`controller.api.schemas`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from scheduler import TIMEZONE


def iso(ms: int | None) -> str | None:
    """Epoch ms → ISO 8601 in Asia/Ho_Chi_Minh (what the ward reads)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(TIMEZONE).isoformat(
        timespec="milliseconds")


# ------------------------------------------------------------------- accounts


class UserPublic(BaseModel):
    id: int
    username: str
    role: str
    org_unit_id: str | None
    active: bool
    must_change_password: bool = Field(False, description="a one-time password is in use (the web app asks "
                                                          "for a new one)")


class LoginPublic(BaseModel):
    user: UserPublic
    csrf_token: str = Field(description="send it back in the X-CSRF-Token header of every POST/PATCH/DELETE")


class UserCreated(UserPublic):
    password: str = Field(description="one-time password, shown only now")


class OrgUnitPublic(BaseModel):
    id: str
    name: str
    parent_id: str | None


class AuditPublic(BaseModel):
    at: str | None
    username: str
    action: str
    target: str
    detail: str


# ------------------------------------------------------- bulletins and speech


class BulletinPublic(BaseModel):
    id: int
    title: str
    text: str
    voice: str
    priority: str
    created_at: str | None
    created_by: str
    audio: dict[str, Any] | None


class BulletinSpeechPublic(BulletinPublic):
    warnings: list[str] = Field(default_factory=list,
                                description="e.g. 'fell back from gtts to espeak-ng: <reason>'")
    spoken_text: str | None = Field(None, description="the normalised text that was read aloud")
    requested_engine: str | None = None
    dictionary_hits: list[str] = Field(default_factory=list)
    approval: str = Field("approved", description="draft | submitted | approved | rejected")
    org_unit_id: str | None = None
    submitted_at: str | None = None
    decided_by: str = ""
    decided_at: str | None = None
    decision_note: str = ""
    approved_sha256: str | None = Field(None, description="the audio the approver approved; only it airs")
    approved_spoken_text: str | None = Field(None, description="the spoken text shown to the approver")
    pending_reason: str = Field("", description="why it needs approval (again), e.g. a dictionary change")


class PreviewPublic(BaseModel):
    text: str = Field(description="the spoken (normalised) form that was synthesised")
    duration_ms: int
    warnings: list[str]
    engine: str
    requested_engine: str
    voice: str
    codec: str
    sha256: str
    size: int
    dictionary_hits: list[str]
    audio_url: str
    audio_base64: str | None = None


class NormalizePublic(BaseModel):
    text: str
    dialect: str
    warnings: list[str]
    dictionary_hits: list[str]


class EntryPublic(BaseModel):
    id: int
    org_unit_id: str | None = Field(None, description="whose entry (None: the top, every ward)")
    term: str
    spoken: str
    note: str
    created_by: str
    created_at: str | None
    overridden: bool = Field(False, description="a lower org unit reads this term its own way")
    rerendered: list[int] = Field(default_factory=list,
                                  description="bulletins read again because of this change (approved "
                                              "ones among them need approval again)")


# ------------------------------------------------------ broadcasts and relays


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


class BroadcastSummaryPublic(BaseModel):
    """What happened, for staff (controller/airing/summary.py; docs/airing.md, *What staff see*)."""
    state: str = Field(description="scheduled | sending | ready | airing | waiting | aired | partly_aired | "
                                   "not_aired | cancelled | failed")
    counts: dict[str, int] = Field(description="units per delivery state (every state, zeros included)")
    groups: dict[str, int] = Field(description="units played / playing / ready / receiving / waiting_offline "
                                               "/ ended_by_operator / not_played (read with presence)")
    waiting_until: str | None = Field(description="until when offline units are waited for (the expiry)")
    waiting_nodes: list[str] = Field(description="the units waited for (offline now)")
    text_vi: str
    text_en: str


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
    summary: BroadcastSummaryPublic | None = None
    deliveries: list[DeliveryPublic] | None = None


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
    owner_seen_at: str | None = Field(None, description=(
        "its owner's last renewal of the relay's lease (every relay.beat_s while it runs); a relay "
        "whose owner stopped renewing is taken over by another controller"))
    taken_over: int | None = Field(None, description="times another controller took it over (its owner gone)")
    takeover_s: float | None = Field(None, description=(
        "the last takeover: seconds from the dead owner's last renewal to the new owner's taking it"))
    schedule_id: int | None = None
    units_playing: list[str] = Field(default_factory=list, description="node_fetch: units that say so")
    units_interrupted: list[str] = Field(default_factory=list)
    units_refused: dict[str, str] = Field(default_factory=dict, description=(
        "unit → why it is not relaying: its refusal of play_stream (e.g. power_off), or "
        "unsafe_redirect (node_fetch: the station led it to a non-public address on another origin; "
        "docs/protocol.md play_stream)"))


# ------------------------------------------------------------------ schedules


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
    reason_code: str | None = None  # controller/api/run_reasons.py: the page's sentence
    reason_args: dict[str, str] = {}
    broadcast_ids: list[str]
    fired_by: str
    version: int
    recorded_at: str | None


# --------------------------------------------------------------------- health


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


# --------------------------------------------------------------------- errors


class ErrorPublic(BaseModel):
    """Every refusal: one English sentence saying what was wrong (and what to do)."""
    detail: str
    code: str | None = Field(None, description="stable, for the pages' own sentence "
                                               "(controller/api/error_codes.py)")


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
    code: str | None = Field(None, description="`invalid` when `detail` is a list of fields")


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


# --------------------------------------------------------------------------- live


class LiveToken(BaseModel):
    csrf_token: str | None = Field(description="send it as 'csrf' in the start message of /api/live/ws; "
                                               "null without a session cookie (HTTP Basic needs none)")


# ------------------------------------- relay presets, zone windows, audio library (issue 14)


class PresetPublic(BaseModel):
    id: int
    name: str
    url: str
    mode: str
    org_unit_id: str | None


class AudioItemPublic(BaseModel):
    id: int
    title: str
    duration_ms: int
    source_format: str
    created_by: str
    created_at: str | None
