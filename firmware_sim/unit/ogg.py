"""An Ogg demuxer (RFC 3533) for the unit agent's Opus files: the pages of one logical stream,
checked (capture pattern, version, CRC, sequence numbers, a first and a last page), and the packets
they carry, reassembled across pages.

The whole file is in memory already (it came in chunks and was checked against its SHA-256), so
:func:`index` walks it once, cheaply (no decoding: a header and a CRC per page, the CRC at C speed
through :mod:`zlib`), and keeps only where each page is; :func:`packets` then yields the packets
from any page on, one at a time. Anything that is not a well-formed single Ogg stream is an
:class:`OggError`: this demuxer never resynchronises on damaged data, it refuses it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

CAPTURE = b"OggS"
HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, crc, segments
CONTINUED, BOS, EOS = 0x01, 0x02, 0x04
NO_GRANULE = -1  # no packet ends on the page
_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


class OggError(ValueError):
    """The bytes are not one well-formed Ogg stream (damaged, truncated, or not Ogg at all)."""


def crc(page: bytes) -> int:
    """The Ogg CRC-32 (polynomial 0x04C11DB7, not reflected, initial 0, no final xor) of ``page``.

    zlib's CRC-32 is the same polynomial reflected: fed bit-reversed bytes, from a register of 0
    and without its final xor, its result bit-reversed is Ogg's."""
    raw = zlib.crc32(page.translate(_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


@dataclass(frozen=True)
class Page:
    start: int  # where the page begins in the file
    flags: int
    granule: int  # the granule position after the last packet completed on it; NO_GRANULE if none
    lacing: bytes  # the segment table
    body: int  # where its body begins
    end: int  # where the next page begins

    @property
    def continued(self) -> bool:
        """Its first segment continues a packet begun on the page before."""
        return bool(self.flags & CONTINUED)


def _page(data: bytes, pos: int, serial: int | None, seq: int) -> tuple[Page, int]:
    if len(data) - pos < HEADER.size:
        raise OggError(f"the file ends inside a page header at byte {pos} (truncated)")
    capture, version, flags, granule, serial_no, seq_no, checksum, nsegs = HEADER.unpack_from(data, pos)
    if capture != CAPTURE:
        raise OggError(f"no Ogg page at byte {pos} (damaged, or not an Ogg file)")
    if version != 0:
        raise OggError(f"Ogg page at byte {pos} has version {version} (only 0 exists)")
    lacing = data[pos + HEADER.size: pos + HEADER.size + nsegs]
    body = pos + HEADER.size + nsegs
    end = body + sum(lacing)
    if len(lacing) < nsegs or end > len(data):
        raise OggError(f"the file ends inside the page at byte {pos} (truncated)")
    raw = bytearray(data[pos:end])
    raw[22:26] = b"\0\0\0\0"
    if crc(bytes(raw)) != checksum:
        raise OggError(f"the page at byte {pos} fails its CRC check (damaged)")
    if serial is not None and serial_no != serial:
        raise OggError(f"the page at byte {pos} belongs to another stream (only one stream is played)")
    if seq_no != seq:
        raise OggError(f"page {seq} is missing (found page {seq_no} at byte {pos})")
    return Page(pos, flags, granule, lacing, body, end), serial_no


def index(data: bytes) -> list[Page]:
    """Every page of the file, checked; the first opens the stream and the last one closes it."""
    out: list[Page] = []
    pos, serial = 0, None
    while pos < len(data):
        page, serial = _page(data, pos, serial, len(out))
        if bool(page.flags & BOS) != (not out):
            what = "does not open the stream" if not out else "opens a second stream (only one is played)"
            raise OggError(f"the page at byte {pos} {what}")
        if out and out[-1].flags & EOS:
            raise OggError(f"the stream goes on after its last page (byte {pos}): chained streams are "
                           "not played")
        out.append(page)
        pos = page.end
    if not out:
        raise OggError("the file is empty")
    if not out[-1].flags & EOS:
        raise OggError("the file ends before the stream's last page (truncated)")
    return out


def packets(data: bytes, pages: Sequence[Page], first: int = 0) -> Iterator[tuple[bytes, int]]:
    """Each packet completed on ``pages[first:]`` and the index of the page it completes on.

    The rest of a packet begun before ``pages[first]`` is skipped: it is not whole."""
    pending: bytearray | None = None
    skipping = first < len(pages) and pages[first].continued
    for i in range(first, len(pages)):
        page = pages[i]
        if pending is not None and not page.continued:
            raise OggError(f"the page at byte {page.start} drops a packet begun on the page before it")
        if pending is None and page.continued and not skipping:
            raise OggError(f"the page at byte {page.start} continues a packet that never began")
        skipping = skipping and page.continued
        pos = page.body
        for size in page.lacing:
            pos += size
            if skipping:
                skipping = size == 255
                continue
            if pending is None:
                pending = bytearray()
            pending += data[pos - size:pos]
            if size < 255:
                yield bytes(pending), i
                pending = None
    if pending is not None:
        raise OggError("the stream's last page leaves a packet unfinished (truncated)")
