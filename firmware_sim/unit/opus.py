"""Ogg Opus files (RFC 7845, what the controller's ``opus`` codec sends: tts/audio.py) to 16-bit mono
PCM, a block at a time, like the other codecs (firmware_sim/unit/decode.py).

The file's pages are indexed first (firmware_sim/unit/ogg.py: cheap, no decoding), which checks the
whole file before a sample comes out and gives where the audio ends: the last page's granule
position, which trims the encoder's padding off the last packet. The ID header's pre-skip is
dropped from the start. Decoding is libopus's (firmware_sim/unit/libopus.py), directly at the
output rate when libopus decodes at it (8/12/16/24/48 kHz), else at 48 kHz and resampled linearly
(:func:`audioop.ratecv`). Starting mid-way seeks: decoding begins at the last page that starts at
least 80 ms before the offset (RFC 7845 §4.6: the decoder's pre-roll) and what comes before the
offset is dropped, so a late join near the end of a long bulletin costs one page, not the file.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from firmware_sim.unit import libopus, ogg
from firmware_sim.unit.libopus import OpusError

with warnings.catch_warnings():  # deprecated (Python 3.13 removes it; the stack is 3.11)
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATE = 48000  # granule positions and the pre-skip count 48 kHz samples whatever the stream's rate
PREROLL = 3840  # 80 ms decoded and dropped before a mid-way start
HEAD = struct.Struct("<8sBBHIhB")  # magic, version, channels, pre-skip, input rate, gain (Q7.8 dB), family


@dataclass(frozen=True)
class Head:
    channels: int
    pre_skip: int
    gain_q8: int


def parse_head(packet: bytes) -> Head:
    """The ID header (RFC 7845 §5.1); a mono or stereo stream (channel mapping family 0)."""
    if len(packet) < HEAD.size or not packet.startswith(b"OpusHead"):
        raise OpusError("not an Ogg Opus file: its first packet is not an OpusHead header")
    _magic, version, channels, pre_skip, _rate, gain, family = HEAD.unpack_from(packet)
    if version >> 4:
        raise OpusError(f"Ogg Opus version {version >> 4}.{version & 15} is not one this unit reads")
    if family != 0 or not 1 <= channels <= 2:
        raise OpusError(f"a {channels}-channel Opus stream (mapping family {family}) is not played here: "
                        "bulletins are mono or stereo")
    return Head(channels, pre_skip, gain)


class OpusFile:
    """An Ogg Opus file's layout: its header, its pages, and where its audio is, in 48 kHz samples
    counted from the first decoded sample (the pre-skip is inside that count)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pages = pages = ogg.index(data)
        headers = ogg.packets(data, pages)
        head, on = next(headers, (b"", -1))
        self.head = parse_head(head)
        tags, on_tags = next(headers, (b"", -1))
        if on != 0 or on_tags < 1 or not tags.startswith(b"OpusTags"):
            raise OpusError("the Ogg Opus headers are malformed (OpusHead alone on the first page, "
                            "then OpusTags)")
        audio, on_audio = next(headers, (b"", -1))
        if on_audio == on_tags:
            raise OpusError("audio shares the OpusTags header's page (malformed Ogg Opus)")
        self.first = on_tags + 1  # the first audio page
        if not audio or pages[self.first].continued:
            raise OpusError("the Ogg Opus file has no audio")
        self.base = self._base()
        self.end = pages[-1].granule - self.base  # the decoded samples to keep end here
        if pages[-1].granule == ogg.NO_GRANULE:
            raise OpusError("the last Ogg page has no granule position (malformed Ogg Opus)")

    def _base(self) -> int:
        """The granule position the audio starts at (0 for a stream that starts at time zero)."""
        at = next((i for i in range(self.first, len(self.pages))
                   if self.pages[i].granule != ogg.NO_GRANULE), len(self.pages) - 1)
        count = 0
        for packet, i in ogg.packets(self.data, self.pages, self.first):
            if i > at:
                break
            count += libopus.samples(packet)
        base = self.pages[at].granule - count
        if base < 0 and at != len(self.pages) - 1:  # on the last page, a smaller one trims the end
            raise OpusError("an Ogg page's granule position is before its own audio (malformed Ogg Opus)")
        return max(0, base)

    @property
    def samples(self) -> int:
        """How many 48 kHz samples the file plays."""
        return max(0, self.end - self.head.pre_skip)

    def seek(self, want: int) -> tuple[int, int]:
        """(the page to decode from, the decoded-sample count its first packet starts at) for a
        start at decoded sample ``want``, the pre-roll before it."""
        best = (self.first, 0)
        for i in range(self.first + 1, len(self.pages)):
            before = self.pages[i - 1].granule
            if before == ogg.NO_GRANULE or self.pages[i].continued:
                continue
            if before - self.base > want - PREROLL:
                break
            best = (i, before - self.base)
        return best


def pcm_blocks(data: bytes, rate: int, *, offset_ms: int = 0, block_s: float = 0.02) -> Iterator[bytes]:
    """The file's samples at ``rate`` Hz, mono s16le, from ``offset_ms``, ``block_s`` per block."""
    f = OpusFile(data)
    at = rate if rate in libopus.RATES else RATE
    k = RATE // at  # 48 kHz samples per decoded sample
    want = f.head.pre_skip + max(0, offset_ms) * (RATE // 1000)
    first, d = f.seek(want)
    size = max(1, int(rate * block_s)) * 2
    out = bytearray()
    state = None
    with libopus.Decoder(at, gain_q8=f.head.gain_q8) as dec:
        for packet, _page in ogg.packets(data, f.pages, first):
            pcm = dec.decode(packet)
            n = len(pcm) // 2 * k
            lo, hi = max(want, d), min(f.end, d + n)
            if hi > lo:
                piece = pcm[(lo - d) // k * 2:(hi - d) // k * 2]
                if at != rate:
                    piece, state = audioop.ratecv(piece, 2, 1, at, rate, state)
                out += piece
            d += n
            while len(out) >= size:
                yield bytes(out[:size])
                del out[:size]
            if d >= f.end:
                break
    if out:
        yield bytes(out)


def duration_ms(data: bytes) -> int:
    """How long the file plays, from its granule positions (nothing is decoded)."""
    return OpusFile(data).samples * 1000 // RATE
