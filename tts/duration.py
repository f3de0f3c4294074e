"""Exact playing time of encoded audio, read from the bitstream (no decoding).

MP3: count the MPEG audio frames, skip the Xing/Info frame and subtract the encoder
delay and padding recorded in its LAME tag (what a gapless decoder plays).
Ogg Opus: the last page's granule position minus the pre-skip, at 48 kHz (RFC 7845).
"""

from __future__ import annotations

import struct

from tts.errors import EngineError

__all__ = ["duration_ms", "mp3_samples", "opus_samples"]

_BITRATES = {  # kbps by (MPEG-1?, index) for layer III
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _frame(data: bytes, pos: int) -> tuple[int, int, int, int, bool] | None:
    """(frame length, samples, sample rate, side-info length, mono) of the frame at ``pos``."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    rate = _RATES[version][rate_index]
    bitrate = _BITRATES[mpeg1][bitrate_index] * 1000
    samples = 1152 if mpeg1 else 576
    length = samples // 8 * bitrate // rate + padding
    mono = (b3 >> 6) == 3
    side = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    return length, samples, rate, side, mono


def mp3_samples(data: bytes) -> tuple[int, int]:
    """(samples a gapless decoder plays, sample rate) of an MP3 stream."""
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        pos = 10 + size
    while pos < len(data) and _frame(data, pos) is None:  # resync to the first frame
        pos += 1
    first = _frame(data, pos)
    if first is None:
        raise EngineError("No MP3 audio frames found.")
    length, samples, rate, side, _ = first
    delay = padding = 0
    tag = pos + 4 + side
    frames = 0
    if data[tag: tag + 4] in (b"Xing", b"Info"):
        lame = data.find(b"LAME", tag, pos + length)
        if lame == -1:
            lame = data.find(b"Lavc", tag, pos + length)
        if lame != -1 and lame + 24 <= len(data):
            b0, b1, b2 = data[lame + 21: lame + 24]
            delay, padding = (b0 << 4) | (b1 >> 4), ((b1 & 0x0F) << 8) | b2
        pos += length  # the info frame holds no audio
    while (frame := _frame(data, pos)) is not None:
        frames += 1
        pos += frame[0]
    return max(0, frames * samples - delay - padding), rate


def opus_samples(data: bytes) -> int:
    """Samples at 48 kHz of an Ogg Opus stream."""
    if data[:4] != b"OggS":
        raise EngineError("Not an Ogg stream.")
    head = data.find(b"OpusHead")
    if head == -1 or head + 12 > len(data):
        raise EngineError("Ogg stream without an Opus header.")
    (pre_skip,) = struct.unpack_from("<H", data, head + 10)
    last = data.rfind(b"OggS")
    (granule,) = struct.unpack_from("<q", data, last + 6)
    return max(0, granule - pre_skip)


def duration_ms(data: bytes, codec: str) -> int:
    """Playing time of ``data`` in whole milliseconds (rounded)."""
    if codec == "mp3":
        samples, rate = mp3_samples(data)
        return round(samples * 1000 / rate)
    if codec == "opus":
        return round(opus_samples(data) / 48)
    raise EngineError(f"Cannot measure the duration of {codec} audio.")
