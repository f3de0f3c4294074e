"""The loaphuong wire contract: topics, payload models, audio framing, version.

This module is the single source of truth shared by the controller, the serial
gateway and the firmware simulator. docs/protocol.md describes the same contract
for firmware authors; change both together and bump PROTOCOL_VERSION on any
incompatible change.

Everything here is plain MQTT 3.1.1: QoS 0/1, retain, last-will. No MQTT 5
feature is required.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import struct
import time
import zlib
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


# --------------------------------------------------------------------------- topics


class Topics:
    """Topic builder for one prefix (default ``lp``).

    Node-owned (node publishes):
      {p}/node/{id}/state        retained, QoS1: birth / last-will / shutdown
      {p}/node/{id}/heartbeat    QoS0
      {p}/node/{id}/telemetry    QoS0
      {p}/node/{id}/ack          QoS1: delivery progress of a broadcast
      {p}/node/{id}/repair       QoS1: request for missing chunks
      {p}/node/{id}/resp         QoS1: command responses
      {p}/node/{id}/time         QoS0: clock sync request
    Controller-owned (node subscribes):
      {p}/controller/state       retained, QoS1: controller birth / last-will
      {p}/node/{id}/config       retained, QoS1: the node's groups and settings
      {p}/node/{id}/clock        QoS0: clock sync reply
      {p}/node/{id}/cmd          QoS1: commands to one node
      {p}/group/{g}/cmd          QoS1: commands to a group
      {p}/node/{id}/bcast/{b}/manifest, {p}/group/{g}/bcast/{b}/manifest  retained, QoS1
      {p}/node/{id}/bcast/{b}/data,     {p}/group/{g}/bcast/{b}/data      QoS1, binary chunks
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or "+" in prefix or "#" in prefix or prefix.endswith("/"):
            raise ValueError(f"invalid topic prefix {prefix!r}")
        self.prefix = prefix

    # node-owned
    def node(self, node_id: str, leaf: str) -> str:
        return f"{self.prefix}/node/{node_id}/{leaf}"

    def state(self, node_id: str) -> str:
        return self.node(node_id, "state")

    def heartbeat(self, node_id: str) -> str:
        return self.node(node_id, "heartbeat")

    def telemetry(self, node_id: str) -> str:
        return self.node(node_id, "telemetry")

    def ack(self, node_id: str) -> str:
        return self.node(node_id, "ack")

    def repair(self, node_id: str) -> str:
        return self.node(node_id, "repair")

    def resp(self, node_id: str) -> str:
        return self.node(node_id, "resp")

    def time(self, node_id: str) -> str:
        return self.node(node_id, "time")

    # controller-owned
    def controller_state(self) -> str:
        return f"{self.prefix}/controller/state"

    def config(self, node_id: str) -> str:
        return self.node(node_id, "config")

    def clock(self, node_id: str) -> str:
        return self.node(node_id, "clock")

    def cmd(self, node_id: str) -> str:
        return self.node(node_id, "cmd")

    def group_cmd(self, group: str) -> str:
        return f"{self.prefix}/group/{group}/cmd"

    def manifest(self, scope: AudioScope, broadcast_id: str) -> str:
        return f"{scope.base(self.prefix)}/bcast/{broadcast_id}/manifest"

    def data(self, scope: AudioScope, broadcast_id: str) -> str:
        return f"{scope.base(self.prefix)}/bcast/{broadcast_id}/data"

    def live(self, scope: AudioScope, session: str) -> str:
        """Live audio frames (QoS0, binary, §Live): under the bcast wildcard nodes already hold."""
        return f"{scope.base(self.prefix)}/bcast/{session}/live"

    # subscriptions
    def node_subscriptions(self, node_id: str) -> list[str]:
        """What a node subscribes to before it knows its groups."""
        return [
            self.config(node_id),
            self.cmd(node_id),
            self.clock(node_id),
            f"{self.prefix}/node/{node_id}/bcast/+/+",
            self.controller_state(),
        ]

    def group_subscriptions(self, group: str) -> list[str]:
        return [self.group_cmd(group), f"{self.prefix}/group/{group}/bcast/+/+"]

    def controller_subscriptions(self) -> list[str]:
        p = self.prefix
        return [f"{p}/node/+/{leaf}" for leaf in NODE_LEAVES]

    def parse_node_topic(self, topic: str) -> tuple[str, str] | None:
        """``{p}/node/{id}/{leaf}`` -> (id, leaf) for node-owned leaves, else None."""
        parts = topic.split("/")
        pre = self.prefix.split("/")
        if len(parts) != len(pre) + 3 or parts[: len(pre)] != pre or parts[len(pre)] != "node":
            return None
        node_id, leaf = parts[len(pre) + 1], parts[len(pre) + 2]
        if leaf not in NODE_LEAVES or not valid_id(node_id):
            return None
        return node_id, leaf

    def parse_bcast_topic(self, topic: str) -> tuple[str, str] | None:
        """``.../bcast/{b}/{manifest|data}`` -> (broadcast_id, kind), else None."""
        parts = topic.split("/")
        if len(parts) < 3 or parts[-3] != "bcast" or parts[-1] not in ("manifest", "data"):
            return None
        return parts[-2], parts[-1]


NODE_LEAVES = ("state", "heartbeat", "telemetry", "ack", "repair", "resp", "time")


class AudioScope(BaseModel):
    """Where a broadcast's audio is published: a group topic (fan-out by the broker) or one node."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["group", "node"]
    id: str

    def base(self, prefix: str) -> str:
        return f"{prefix}/{self.kind}/{self.id}"


# --------------------------------------------------------------------------- payloads


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


class NodeConfig(Msg):
    """Retained on {p}/node/{id}/config. Desired state, not a command: safe to replay."""

    node_id: str
    name: str = ""
    groups: list[Id] = Field(default_factory=list, max_length=64)
    volume: int = Field(default=70, ge=0, le=100)


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
    """Controller → node on {p}/node/{id}/clock: t1 = controller clock at receipt, t2 at reply."""

    node_id: str
    t0: int
    t1: int
    t2: int


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


# --------------------------------------------------------------------------- audio framing

CHUNK_MAGIC = b"LPA"
#: magic(3) version(1) index(u16) total(u16) crc32(u32) length(u32) file-sha256 prefix(8).
#: The CRC covers the header (crc field zeroed) and the data, so a flipped index is caught too.
CHUNK_HEADER = struct.Struct(">3sBHHII8s")


def _chunk_crc(index: int, total: int, data: bytes, tag: bytes) -> int:
    """CRC-32 of the header with its crc field zeroed, followed by the data."""
    zeroed = CHUNK_HEADER.pack(CHUNK_MAGIC, PROTOCOL_VERSION, index, total, 0, len(data), tag)
    return zlib.crc32(data, zlib.crc32(zeroed))


def _frame(index: int, total: int, data: bytes, tag: bytes) -> bytes:
    crc = _chunk_crc(index, total, data, tag)
    return CHUNK_HEADER.pack(CHUNK_MAGIC, PROTOCOL_VERSION, index, total, crc, len(data), tag) + data


class ChunkError(ValueError):
    """A chunk that fails framing or checksum."""


class Chunk(BaseModel):
    model_config = ConfigDict(frozen=True)
    index: int
    total: int
    file_tag: bytes
    data: bytes


def chunk_audio(audio: bytes, *, duration_ms: int, chunk_size: int = DEFAULT_CHUNK_SIZE,
                codec: Literal["mp3", "opus"] = "mp3", sample_rate: int = 22050,
                bitrate_kbps: int = 32) -> tuple[AudioInfo, list[bytes]]:
    """Split encoded audio into framed chunk payloads and describe it for the manifest."""
    if not audio:
        raise ValueError("no audio")
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be 1..{MAX_CHUNK_SIZE}")
    digest = hashlib.sha256(audio).digest()
    total = (len(audio) + chunk_size - 1) // chunk_size
    frames = []
    for i in range(total):
        part = audio[i * chunk_size : (i + 1) * chunk_size]
        frames.append(_frame(i, total, part, digest[:8]))
    info = AudioInfo(
        sha256=digest.hex(), size=len(audio), chunk_size=chunk_size, chunks=total,
        codec=codec, sample_rate=sample_rate, bitrate_kbps=bitrate_kbps, duration_ms=duration_ms,
    )
    return info, frames


def parse_chunk(payload: bytes) -> Chunk:
    """Validate framing and CRC of one chunk message; raise ChunkError otherwise."""
    if len(payload) < CHUNK_HEADER.size:
        raise ChunkError(f"chunk of {len(payload)} bytes is shorter than its header")
    magic, version, index, total, crc, length, tag = CHUNK_HEADER.unpack_from(payload)
    if magic != CHUNK_MAGIC:
        raise ChunkError("bad magic")
    if version != PROTOCOL_VERSION:
        raise ChunkError(f"unsupported chunk version {version}")
    data = payload[CHUNK_HEADER.size :]
    if length != len(data) or length > MAX_CHUNK_SIZE:
        raise ChunkError(f"length field {length} != {len(data)} bytes present")
    if total == 0 or index >= total:
        raise ChunkError(f"index {index} out of range for {total} chunks")
    if _chunk_crc(index, total, data, tag) != crc:
        raise ChunkError(f"CRC mismatch in chunk {index}")
    return Chunk(index=index, total=total, file_tag=tag, data=data)


class Reassembler:
    """Collects the chunks of one audio file and verifies the whole before use."""

    def __init__(self, info: AudioInfo) -> None:
        self.info = info
        self._tag = bytes.fromhex(info.sha256)[:8]
        self._parts: dict[int, bytes] = {}

    def add(self, chunk: Chunk) -> bool:
        """Store a chunk; False if it belongs to another file or is out of shape. Duplicates are fine."""
        if chunk.file_tag != self._tag or chunk.total != self.info.chunks:
            return False
        expected = min(self.info.chunk_size, self.info.size - chunk.index * self.info.chunk_size)
        if len(chunk.data) != expected:
            return False
        self._parts[chunk.index] = chunk.data
        return True

    @property
    def have(self) -> int:
        return len(self._parts)

    def missing(self) -> list[int]:
        return [i for i in range(self.info.chunks) if i not in self._parts]

    def complete(self) -> bool:
        return len(self._parts) == self.info.chunks

    def assemble(self) -> bytes:
        """Return the verified file; raise ChunkError if incomplete or the sha256 differs."""
        if not self.complete():
            raise ChunkError(f"{len(self.missing())} chunks missing")
        audio = b"".join(self._parts[i] for i in range(self.info.chunks))
        if hashlib.sha256(audio).hexdigest() != self.info.sha256:
            self._parts.clear()
            raise ChunkError("sha256 mismatch of the assembled file")
        return audio


# --------------------------------------------------------------------------- live audio (§Live)

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
LIVE_MAGIC = b"LPL"
#: magic(3) version(1) flags(1) seq(u32) capture time(u64, controller ms); then PCM s16le.
LIVE_HEADER = struct.Struct(">3sBBIQ")
LIVE_FLAG_LAST = 0x01
#: Largest PCM payload of one frame a node must accept (bytes): 200 ms at 16 kHz.
MAX_LIVE_FRAME = 6400


class LiveFrame(BaseModel):
    model_config = ConfigDict(frozen=True)
    seq: int
    ts_ms: int
    last: bool
    pcm: bytes


def pack_live_frame(seq: int, ts_ms: int, pcm: bytes, *, last: bool = False) -> bytes:
    if len(pcm) > MAX_LIVE_FRAME or len(pcm) % 2:
        raise ValueError(f"a live frame carries an even number of bytes up to {MAX_LIVE_FRAME}")
    flags = LIVE_FLAG_LAST if last else 0
    return LIVE_HEADER.pack(LIVE_MAGIC, PROTOCOL_VERSION, flags, seq & 0xFFFFFFFF, ts_ms) + pcm


def parse_live_frame(payload: bytes) -> LiveFrame:
    """Validate one live frame; raise ChunkError otherwise."""
    if len(payload) < LIVE_HEADER.size:
        raise ChunkError(f"live frame of {len(payload)} bytes is shorter than its header")
    magic, version, flags, seq, ts = LIVE_HEADER.unpack_from(payload)
    if magic != LIVE_MAGIC:
        raise ChunkError("bad live frame magic")
    if version != PROTOCOL_VERSION:
        raise ChunkError(f"unsupported live frame version {version}")
    pcm = payload[LIVE_HEADER.size :]
    if len(pcm) > MAX_LIVE_FRAME or len(pcm) % 2:
        raise ChunkError(f"live frame PCM of {len(pcm)} bytes (even, at most {MAX_LIVE_FRAME})")
    return LiveFrame(seq=seq, ts_ms=ts, last=bool(flags & LIVE_FLAG_LAST), pcm=pcm)


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
