"""Framing of the serial line (docs/protocol.md §7.2): HDLC-style flags, byte stuffing, CRC-16.

This module only turns frames into bytes and a byte stream back into frames; it knows
nothing about ports, threads or what the frames mean (that is :mod:`devices.serial.wire`),
in the spirit of pyserial's ``serial.threaded.FramedPacket``. On the wire::

    0x7E | stuffed( LEN | ADDR | SEQ | TYPE | PAYLOAD[LEN] | CRC16_hi | CRC16_lo ) | 0x7E

* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor; check value
  0x29B1 for ``b"123456789"``) over LEN..PAYLOAD, sent big-endian.
* Stuffing: inside a frame 0x7E and 0x7D are sent as 0x7D followed by the byte xor 0x20,
  so a 0x7E on the line is always a frame boundary. Resynchronisation after noise is
  therefore immediate: whatever lies between two flags is either one valid frame or is
  dropped whole, and a frame can never hide inside another frame's payload.
* A frame is accepted only if its escapes are well formed, LEN matches the number of
  bytes between the flags and the CRC matches. Everything else is counted and dropped.

Why stuffing rather than "scan for a start byte, trust a length, check the CRC": with a
length field alone, a start byte in the noise followed by a large length makes the
decoder swallow the next real frame until the phantom fails its CRC, and on an idle line
it would wait forever unless an inter-frame timer flushes it. Flags make the decoder
stateless between frames and free of timers; the cost (at most 2x on bytes 0x7D/0x7E,
frames of a dozen bytes) is irrelevant at these rates.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

FLAG = 0x7E
ESC = 0x7D
ESC_XOR = 0x20
#: Largest payload a frame may carry (bytes). Bigger frames are refused by both sides.
MAX_PAYLOAD = 64
#: LEN, ADDR, SEQ, TYPE before the payload; CRC after it.
HEADER_SIZE = 4
CRC_SIZE = 2
_FLAG_B = bytes([FLAG])
_ESC_B = bytes([ESC])


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (binascii.crc_hqx is exactly this with init 0xFFFF)."""
    return binascii.crc_hqx(data, crc)


@dataclass(frozen=True)
class Frame:
    """One frame: ``addr`` of the child board, ``seq`` (0-255), ``type`` and a payload."""

    addr: int
    seq: int
    type: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        for name in ("addr", "seq", "type"):
            value = getattr(self, name)
            if not 0 <= value <= 255:
                raise ValueError(f"{name} must be 0..255, got {value}")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")


def _stuff(body: bytes) -> bytes:
    if FLAG not in body and ESC not in body:
        return body
    out = bytearray()
    for b in body:
        if b in (FLAG, ESC):
            out += bytes((ESC, b ^ ESC_XOR))
        else:
            out.append(b)
    return bytes(out)


def _unstuff(raw: bytes) -> bytes | None:
    """Undo stuffing; None when an escape is malformed (dangling, or not 0x5E/0x5D after it)."""
    if ESC not in raw:
        return raw
    parts = raw.split(_ESC_B)
    out = bytearray(parts[0])
    for part in parts[1:]:
        if not part or part[0] ^ ESC_XOR not in (FLAG, ESC):
            return None
        out.append(part[0] ^ ESC_XOR)
        out += part[1:]
    return bytes(out)


def encode_frame(frame: Frame) -> bytes:
    """The bytes of ``frame`` on the line, flags included."""
    body = bytes((len(frame.payload), frame.addr, frame.seq, frame.type)) + frame.payload
    crc = crc16(body)
    return _FLAG_B + _stuff(body + bytes((crc >> 8, crc & 0xFF))) + _FLAG_B


@dataclass
class DecoderStats:
    frames: int = 0
    crc_errors: int = 0
    format_errors: int = 0  # bad escape, LEN mismatch, too short
    overflows: int = 0  # more bytes between flags than any valid frame has
    dropped_bytes: int = 0  # bytes of everything that was not a valid frame

    @property
    def errors(self) -> int:
        return self.crc_errors + self.format_errors + self.overflows


@dataclass
class FrameDecoder:
    """Incremental decoder: ``feed`` any slice of the byte stream, get the complete valid frames.

    Never raises on input; memory is bounded by the largest possible frame.
    """

    max_payload: int = MAX_PAYLOAD
    stats: DecoderStats = field(default_factory=DecoderStats)
    _buf: bytearray = field(default_factory=bytearray)
    _overflow: bool = False

    @property
    def _max_raw(self) -> int:
        return 2 * (HEADER_SIZE + self.max_payload + CRC_SIZE)

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        pieces = bytes(data).split(_FLAG_B)
        self._append(pieces[0])
        for piece in pieces[1:]:  # every piece after the first follows a flag: close the frame
            frame = self._close()
            if frame is not None:
                frames.append(frame)
            self._append(piece)
        return frames

    def reset(self) -> None:
        """Forget a partial frame (e.g. after the port was reopened)."""
        self.stats.dropped_bytes += len(self._buf)
        self._buf.clear()
        self._overflow = False

    def _append(self, piece: bytes) -> None:
        if self._overflow:
            self.stats.dropped_bytes += len(piece)
            return
        self._buf += piece
        if len(self._buf) > self._max_raw:
            self.stats.overflows += 1
            self.stats.dropped_bytes += len(self._buf)
            self._buf.clear()
            self._overflow = True  # hunt for the next flag

    def _close(self) -> Frame | None:
        raw = bytes(self._buf)
        self._buf.clear()
        if self._overflow:
            self._overflow = False
            return None
        if not raw:
            return None  # two flags in a row: between frames
        frame = self._parse(raw)
        if frame is None:
            self.stats.dropped_bytes += len(raw) + 1
        else:
            self.stats.frames += 1
        return frame

    def _parse(self, raw: bytes) -> Frame | None:
        body = _unstuff(raw)
        if body is None or len(body) < HEADER_SIZE + CRC_SIZE:
            self.stats.format_errors += 1
            return None
        length = body[0]
        if length > self.max_payload or len(body) != HEADER_SIZE + length + CRC_SIZE:
            self.stats.format_errors += 1
            return None
        if crc16(body[:-CRC_SIZE]) != (body[-2] << 8 | body[-1]):
            self.stats.crc_errors += 1
            return None
        return Frame(addr=body[1], seq=body[2], type=body[3], payload=body[HEADER_SIZE:-CRC_SIZE])
