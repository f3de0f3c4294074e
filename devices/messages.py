"""The payloads of the loaphuong wire contract: ids, JSON message models, encode/decode.

Every JSON message a node or the controller sends is one of the models here; docs/protocol.md
describes them for firmware authors. Import them through :mod:`devices.protocol`.
"""

from __future__ import annotations

import enum
import json
import re
import time
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

PROTOCOL_VERSION = 1
DEFAULT_PREFIX = "lp"

#: Largest JSON payload accepted from a node (bytes). Bigger ones are refused unparsed.
MAX_JSON_PAYLOAD = 16 * 1024
#: Default audio chunk size (bytes of audio per chunk message).
DEFAULT_CHUNK_SIZE = 16 * 1024
#: Largest chunk a node must accept.
MAX_CHUNK_SIZE = 64 * 1024
#: Most chunk indexes in one repair request.
MAX_REPAIR = 256
#: Largest audio file a node must be able to store (bytes): ~20 min at 32 kb/s.
MAX_AUDIO_BYTES = 5 * 1024 * 1024

#: The attention tone a unit keeps (config ``attention``): at most this big and this long.
MAX_TONE_BYTES = 8 * 1024
MAX_TONE_MS = 3000

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def valid_id(value: str) -> bool:
    """Node, group and broadcast ids: lowercase ASCII, digits, '-', '_'; 1-63 chars."""
    return bool(_ID_RE.match(value))


def _check_id(value: str) -> str:
    if not valid_id(value):
        raise ValueError("ids are 1-63 chars of a-z, 0-9, '-' and '_', starting with a letter or digit")
    return value


Id = Annotated[str, AfterValidator(_check_id)]


def now_ms() -> int:
    return int(time.time() * 1000)


class Msg(BaseModel):
    """Base of every JSON payload: unknown keys are ignored (forward compatible), types strict."""

    model_config = ConfigDict(extra="ignore", strict=False, frozen=True)
    v: int = PROTOCOL_VERSION
    ts: int = Field(default_factory=now_ms, description="sender's clock, ms since epoch (UTC)")


class NodeStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"  # last-will: the broker lost the node
    SHUTDOWN = "shutdown"  # clean shutdown announced by the node


class NodeState(Msg):
    """Retained on {p}/node/{id}/state. Birth = online, last-will = offline."""

    node_id: str
    status: NodeStatus
    session: str = Field(description="random per boot/connection; detects two units with one id")
    fw: str = ""
    hw: str = ""
    proto: int = PROTOCOL_VERSION
    reason: str = ""
    children: list[Id] = Field(default_factory=list, max_length=247,
                               description="a serial gateway: the child units it speaks for (§7)")


class Heartbeat(Msg):
    node_id: str
    session: str
    seq: int = Field(ge=0)
    uptime_s: int = Field(default=0, ge=0)
    playing: str = Field(default="", description="broadcast id being played, '' when idle")


class Telemetry(Msg):
    node_id: str
    power: bool = True
    volume: int = Field(default=70, ge=0, le=100)
    playing: str = ""
    rssi_dbm: int | None = None
    temp_c: float | None = None
    storage_free_kb: int | None = None
    ip: str = ""
    uptime_s: int = 0
    clock_offset_ms: int | None = None
    faults: list[str] = Field(default_factory=list)
    source: str = Field(default="", max_length=16,
                        description="what plays: idle | bulletin | relay | live ('' = not reported)")
    fw: str = Field(default="", max_length=64, description="firmware version")
    relay: str = Field(default="", max_length=16,
                       description="relay stream: '' (none) | connecting | playing | interrupted | "
                                   "refused (a redirect or segment to a non-public address)")


class ControllerState(Msg):
    status: NodeStatus
    session: str


class AttentionTone(BaseModel):
    """The attention tone a unit keeps in flash and sounds at once on an emergency (§1 config)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the decoded file")
    codec: Literal["mp3"] = "mp3"
    duration_ms: int = Field(gt=0, le=MAX_TONE_MS)
    data: str = Field(max_length=(MAX_TONE_BYTES + 2) // 3 * 4, description="the file, base64")


class NodeConfig(Msg):
    """Retained on {p}/node/{id}/config. Desired state, not a command: safe to replay."""

    node_id: str
    name: str = ""
    groups: list[Id] = Field(default_factory=list, max_length=64)
    volume: int = Field(default=70, ge=0, le=100)
    attention: AttentionTone | None = Field(default=None, description="the local attention tone")


class Priority(enum.StrEnum):
    NORMAL = "normal"  # thường
    PRIORITY = "priority"  # ưu tiên
    EMERGENCY = "emergency"  # khẩn cấp


class AudioInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0, le=MAX_AUDIO_BYTES)
    chunk_size: int = Field(gt=0, le=MAX_CHUNK_SIZE)
    chunks: int = Field(gt=0, le=65535)
    codec: Literal["mp3", "opus"] = "mp3"
    sample_rate: int = 22050
    bitrate_kbps: int = 32
    duration_ms: int = Field(gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> AudioInfo:
        if self.chunks != -(-self.size // self.chunk_size):
            raise ValueError("chunks does not match size / chunk_size")
        return self


class Manifest(Msg):
    """Retained on .../bcast/{b}/manifest while the broadcast is valid.

    A node that sees a manifest for a broadcast it has not finished collects the
    chunks (live, or by asking for a repair of what it lacks) and then plays it.
    """

    bc: Id
    title: str = ""
    priority: Priority = Priority.NORMAL
    audio: AudioInfo
    play_at: int | None = Field(default=None, description="ms epoch; None = as soon as verified")
    expires_at: int = Field(description="ms epoch; after this the node must not play it")
    repeat: int = Field(default=1, ge=1, le=10)
    hold: bool = Field(default=False, description="download and verify, then wait for a `play` command")


class TimeRequest(Msg):
    """Node → controller on {p}/node/{id}/time: ``t0`` = node clock when sent."""

    node_id: str
    t0: int


class TimeReply(Msg):
    """Controller → node on {p}/node/{id}/clock: t1 = controller clock at receipt, t2 at reply;
    ``poll_ms``: ask again no sooner than this (the controller's budget for a large fleet)."""

    node_id: str
    t0: int
    t1: int
    t2: int
    poll_ms: int | None = None


class AckState(enum.StrEnum):
    """What a node reports about one broadcast (see docs/protocol.md state machine)."""

    RECEIVING = "receiving"  # manifest seen, collecting chunks
    VERIFIED = "verified"  # whole file present and its sha256 matches
    PLAYING = "playing"
    PLAYED = "played"
    FAILED = "failed"  # reason says why (checksum, storage_full, expired, cancelled, ...)


class Ack(Msg):
    node_id: str
    bc: str
    state: AckState
    reason: str = ""
    have: int | None = Field(default=None, ge=0, description="chunks held, while receiving")
    attention: str = Field(default="", max_length=16,
                           description="emergency: sounded | mismatch | missing (the local tone)")
    started_at: int | None = Field(default=None, ge=0, description=(
        "playing / played: when it began sounding, on the controller's clock (ms; optional)"))


class RepairRequest(Msg):
    node_id: str
    bc: str
    missing: list[Annotated[int, Field(ge=0, le=65534)]] = Field(min_length=1, max_length=MAX_REPAIR)


class Command(Msg):
    """Request on {p}/node/{id}/cmd or {p}/group/{g}/cmd. Never retained."""

    id: str = Field(min_length=1, max_length=64, description="correlation id")
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    expires_at: int | None = None


class CommandResponse(Msg):
    """Reply on {p}/node/{id}/resp, zigbee2mqtt style."""

    id: str
    node_id: str
    status: Literal["ok", "error"]
    data: dict[str, Any] = Field(default_factory=dict)
    error: str = ""


COMMANDS = ("ping", "power", "volume", "stop", "cancel", "reboot", "play", "play_stream", "sync_time")

M = TypeVar("M", bound=BaseModel)


class PayloadError(ValueError):
    """A payload that does not follow the contract. The message says why."""


def encode(msg: BaseModel) -> bytes:
    return msg.model_dump_json(exclude_none=False).encode()


def decode(model: type[M], payload: bytes, *, limit: int = MAX_JSON_PAYLOAD) -> M:
    """Parse a JSON payload into ``model`` or raise PayloadError (never anything else)."""
    if len(payload) > limit:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds limit {limit}")
    try:
        raw = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # also a 5,000-digit integer, deep nesting
        raise PayloadError(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(raw, dict):
        raise PayloadError("payload must be a JSON object")
    version = raw.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise PayloadError(f"unsupported protocol version {version!r} (expected {PROTOCOL_VERSION})")
    try:
        # strict: "70" is not an int and "true" is not a bool; enums still come as strings
        return model.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "payload"
        raise PayloadError(f"{loc}: {first['msg']}") from None



# --------------------------------------------------------------------------- live sessions (§Live)

#: Live sessions carry raw PCM: signed 16-bit little-endian, mono, at this rate.
LIVE_SAMPLE_RATE = 16000
#: Audio per frame the controller publishes (ms); 40 ms = 1280 bytes of PCM.
LIVE_FRAME_MS = 40
#: A node that hears no frame for this long ends the live session on its own (no stuck amplifier).
LIVE_IDLE_TIMEOUT_MS = 2000
#: Jitter buffer a node fills before it starts playing (ms of audio).
LIVE_JITTER_MS = 80
#: Commands that start and end a live session on a node (on the usual cmd topics, QoS1).
LIVE_COMMANDS = ("live_start", "live_stop")


class LiveStartArgs(BaseModel):
    """``live_start`` arguments: play the frames of ``session`` from now on."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    session: Id
    priority: Priority = Priority.NORMAL
    codec: Literal["pcm_s16le"] = "pcm_s16le"
    sample_rate: int = Field(LIVE_SAMPLE_RATE, ge=8000, le=48000)
    frame_ms: int = Field(LIVE_FRAME_MS, ge=10, le=200)
    jitter_ms: int = Field(LIVE_JITTER_MS, ge=0, le=2000)
    idle_timeout_ms: int = Field(LIVE_IDLE_TIMEOUT_MS, ge=200, le=30000)
