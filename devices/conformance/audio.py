"""Test audio the kit sends: a valid silent MP3 (a real unit decodes it) and chunk faults."""

from __future__ import annotations

from devices.framing import CHUNK_HEADER, frame_chunk

#: One MPEG-1 Layer III frame, 32 kb/s, 44.1 kHz, mono, no CRC: header + zero side info and
#: zero main data, which every decoder plays as 26 ms of silence (144 * 32000 / 44100 = 104 bytes).
_FRAME = b"\xff\xfb\x10\xc4" + bytes(100)
_FRAME_MS = 1152 / 44.1


def silent_mp3(duration_ms: int, *, salt: int = 0) -> tuple[bytes, int]:
    """``duration_ms`` of silence (rounded to whole frames) and its exact duration in ms.

    ``salt`` adds that many extra frames so that two broadcasts of one run have different files.
    """
    frames = max(1, round(duration_ms / _FRAME_MS)) + salt
    return _FRAME * frames, max(1, round(frames * _FRAME_MS))


def crc_broken(frame: bytes) -> bytes:
    """The chunk with one data byte flipped and its header (CRC) left as it was."""
    body = bytearray(frame)
    body[CHUNK_HEADER.size] ^= 0xFF
    return bytes(body)


def sha_broken(frame: bytes) -> bytes:
    """The chunk with one data byte flipped and a *correct* CRC: only the file's SHA-256 can catch it."""
    _magic, _ver, index, total, _crc, _length, tag = CHUNK_HEADER.unpack_from(frame)
    data = bytearray(frame[CHUNK_HEADER.size:])
    data[0] ^= 0xFF
    return frame_chunk(index, total, bytes(data), tag)
