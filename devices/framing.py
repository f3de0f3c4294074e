"""Binary framing of the loaphuong wire contract: audio chunks (§3) and live frames (§Live).

A chunk carries a header with its index, the file's tag and a CRC-32; :class:`Reassembler`
collects the chunks of one file and verifies its SHA-256. Import through :mod:`devices.protocol`.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Literal

from pydantic import BaseModel, ConfigDict

from devices.messages import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, PROTOCOL_VERSION, AudioInfo

CHUNK_MAGIC = b"LPA"
#: magic(3) version(1) index(u16) total(u16) crc32(u32) length(u32) file-sha256 prefix(8).
#: The CRC covers the header (crc field zeroed) and the data, so a flipped index is caught too.
CHUNK_HEADER = struct.Struct(">3sBHHII8s")


def _chunk_crc(index: int, total: int, data: bytes, tag: bytes) -> int:
    """CRC-32 of the header with its crc field zeroed, followed by the data."""
    zeroed = CHUNK_HEADER.pack(CHUNK_MAGIC, PROTOCOL_VERSION, index, total, 0, len(data), tag)
    return zlib.crc32(data, zlib.crc32(zeroed))


def frame_chunk(index: int, total: int, data: bytes, tag: bytes) -> bytes:
    """One chunk message: the header (with its CRC-32) followed by the data."""
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
        frames.append(frame_chunk(i, total, part, digest[:8]))
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



# --------------------------------------------------------------------------- live frames (§Live)

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

