"""Bulletin files to 16-bit mono PCM, a block at a time (miniaudio: MP3, WAV, FLAC, Vorbis; Ogg Opus:
firmware_sim/unit/opus.py, libopus).

Streaming keeps the agent small on a 512 MB board: a ten-minute bulletin is never held decoded,
only its file and one block. Starting mid-way (a late join, a sound card back after a fault)
decodes and drops the audio before the offset, which costs milliseconds per minute of audio (Opus
seeks to the page before the offset instead).
"""

from __future__ import annotations

from collections.abc import Iterator

from firmware_sim.unit import opus
from firmware_sim.unit.libopus import OpusError
from firmware_sim.unit.ogg import OggError


class DecodeError(Exception):
    """The file does not decode (or its codec is not one the agent plays)."""


#: Codecs miniaudio decodes here.
MINIAUDIO = ("mp3", "wav", "flac", "ogg")
#: Every codec the agent plays (the contract's ``mp3`` and ``opus``, and files of the tests and the doctor).
CODECS = (*MINIAUDIO, "opus")


def pcm_blocks(audio: bytes, codec: str, rate: int, *, offset_ms: int = 0,
               block_s: float = 0.02) -> Iterator[bytes]:
    """The file's samples at ``rate`` Hz, mono s16le, from ``offset_ms``, ``block_s`` per block."""
    import miniaudio

    if codec == "opus":
        try:
            yield from opus.pcm_blocks(audio, rate, offset_ms=offset_ms, block_s=block_s)
        except (OpusError, OggError) as exc:
            raise DecodeError(str(exc)) from exc
        return
    if codec not in MINIAUDIO:
        raise DecodeError(f"codec {codec!r} is not played by this unit")
    frames = max(1, int(rate * block_s))
    skip = int(rate * offset_ms / 1000)
    try:
        stream = miniaudio.stream_memory(audio, output_format=miniaudio.SampleFormat.SIGNED16,
                                         nchannels=1, sample_rate=rate, frames_to_read=frames)
        for block in stream:
            if skip >= len(block):
                skip -= len(block)
                continue
            if skip:
                block, skip = block[skip:], 0
            yield block.tobytes()
    except miniaudio.MiniaudioError as exc:
        raise DecodeError(str(exc)) from exc


def duration_ms(audio: bytes, codec: str, rate: int = 16000) -> int:
    """How long the file plays (decoded, so it is what will come out of the speaker; Opus: from its
    granule positions, which say exactly that)."""
    if codec == "opus":
        try:
            return opus.duration_ms(audio)
        except (OpusError, OggError) as exc:
            raise DecodeError(str(exc)) from exc
    return sum(len(b) // 2 for b in pcm_blocks(audio, codec, rate, block_s=1.0)) * 1000 // rate
