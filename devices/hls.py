"""HLS playlists (RFC 8216): the one parser, shared by the controller's relay and the simulated units.

Pure, no I/O: :func:`parse` turns a playlist's text and the URL it came from into a
:class:`Playlist` (URIs made absolute with ``urljoin``), or raises ``ValueError`` with a
message fit for an operator ("not an HLS playlist", "encrypted HLS (METHOD=AES-128) is not
supported", ...). :func:`choose_variant` picks the variant of a master playlist to follow and
:func:`start_sequence` the first segment to fetch.

Only what a radio relay needs is read: variants (``EXT-X-STREAM-INF``), ``EXT-X-TARGETDURATION``,
``EXT-X-MEDIA-SEQUENCE``, segments (``EXTINF`` + URI), ``EXT-X-MAP`` (the init segment of fMP4),
``EXT-X-ENDLIST`` and ``EXT-X-KEY``. Byte-range segments are refused; other tags are ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

MIME_TYPES = frozenset({"application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl",
                        "audio/x-mpegurl"})
DEFAULT_TARGET_S = 10.0  # a media playlist without EXT-X-TARGETDURATION and without segments
LIVE_EDGE_TARGETS = 3  # RFC 8216 §6.3.3: do not start closer than 3 target durations to the end

_ATTR = re.compile(r'\s*([A-Z0-9-]+)=("[^"]*"|[^,]*)\s*(?:,|$)', re.IGNORECASE)


@dataclass(frozen=True)
class Variant:
    uri: str  # absolute
    bandwidth: int  # bits/s; 0 when the playlist does not say
    codecs: str = ""


@dataclass(frozen=True)
class Segment:
    uri: str  # absolute
    duration: float  # seconds (EXTINF)
    sequence: int  # media sequence number: EXT-X-MEDIA-SEQUENCE + index in the playlist


@dataclass
class Playlist:
    url: str
    is_master: bool = False
    variants: list[Variant] = field(default_factory=list)
    target_duration: float = DEFAULT_TARGET_S
    media_sequence: int = 0
    segments: list[Segment] = field(default_factory=list)
    init_uri: str | None = None  # EXT-X-MAP: fetched once before the media segments
    ended: bool = False  # EXT-X-ENDLIST: no more segments will be added (VOD, or the stream ended)

    @property
    def last_sequence(self) -> int:
        """Sequence number of the last segment (``media_sequence - 1`` when there is none)."""
        return self.media_sequence + len(self.segments) - 1


def looks_like_hls(url_path: str, content_type: str | None = None, head: bytes = b"") -> bool:
    """Whether a URL path, a Content-Type or the first bytes of a body say "HLS playlist"."""
    if url_path.lower().endswith((".m3u8", ".m3u8/")):
        return True
    if content_type and content_type.split(";")[0].strip().lower() in MIME_TYPES:
        return True
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"#EXTM3U")


def attributes(text: str) -> dict[str, str]:
    """An attribute list (``BANDWIDTH=64000,CODECS="mp4a.40.2,avc1.4d401e"``), quotes removed."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _ATTR.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"bad HLS attribute list: {text[:80]!r}")
        value = m.group(2).strip()
        out[m.group(1).upper()] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
        pos = m.end()
    return out


def parse(text: str, url: str) -> Playlist:
    """Parse a master or media playlist fetched from ``url``. ``ValueError`` if it is not one."""
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    lines = [line for line in lines if line]
    if not lines or not lines[0].startswith("#EXTM3U"):
        raise ValueError("not an HLS playlist (no #EXTM3U)")
    pl = Playlist(url=url)
    target: float | None = None
    durations: list[tuple[str, float]] = []
    duration: float | None = None
    pending_variant: dict[str, str] | None = None
    for line in lines[1:]:
        if not line.startswith("#"):
            uri = _join(url, line)
            if pending_variant is not None:
                pl.variants.append(Variant(uri, _int(pending_variant.get("BANDWIDTH", "0"), "BANDWIDTH"),
                                           pending_variant.get("CODECS", "")))
                pending_variant = None
            elif pl.is_master:
                pass  # a URI after a non-variant tag of a master playlist: not ours to follow
            else:
                if duration is None:
                    raise ValueError(f"HLS segment without #EXTINF: {line[:80]!r}")
                durations.append((uri, duration))
                duration = None
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-STREAM-INF":
            pl.is_master = True
            pending_variant = attributes(value)
        elif tag == "#EXTINF":
            duration = _float(value.split(",", 1)[0], "EXTINF duration")
        elif tag == "#EXT-X-TARGETDURATION":
            target = _float(value, "EXT-X-TARGETDURATION")
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            pl.media_sequence = _int(value, "EXT-X-MEDIA-SEQUENCE")
        elif tag == "#EXT-X-ENDLIST":
            pl.ended = True
        elif tag == "#EXT-X-MAP":
            attrs = attributes(value)
            if "URI" not in attrs:
                raise ValueError("HLS EXT-X-MAP without URI")
            if "BYTERANGE" in attrs:
                raise ValueError("HLS byte-range init segments are not supported")
            pl.init_uri = _join(url, attrs["URI"])
        elif tag == "#EXT-X-KEY":
            method = attributes(value).get("METHOD", "?")
            if method.upper() != "NONE":
                raise ValueError(f"encrypted HLS (METHOD={method}) is not supported")
        elif tag == "#EXT-X-BYTERANGE":
            raise ValueError("HLS byte-range segments are not supported")
    if pl.is_master:
        if not pl.variants:
            raise ValueError("HLS master playlist without variants")
        return pl
    pl.segments = [Segment(u, d, pl.media_sequence + i) for i, (u, d) in enumerate(durations)]
    if target is None:  # required by RFC 8216, but be lenient: the longest segment, rounded up
        target = float(math.ceil(max(d for _, d in durations))) if durations else DEFAULT_TARGET_S
    pl.target_duration = max(target, 0.1)
    return pl


def choose_variant(pl: Playlist) -> Variant:
    """The variant to relay: the lowest BANDWIDTH (cheapest on a 4G link, and a PA speaker gains
    nothing from a higher bitrate); among equals the first listed. Variants that do not say
    their bandwidth (0) come after those that do."""
    if not pl.variants:
        raise ValueError("HLS master playlist without variants")
    return min(pl.variants, key=lambda v: (v.bandwidth <= 0, v.bandwidth))


def start_sequence(pl: Playlist) -> int:
    """Sequence number of the segment to start with.

    A playlist with EXT-X-ENDLIST starts at its first segment. A live one starts at the last
    segment that begins at least 3 target durations before the end of the playlist (RFC 8216
    §6.3.3), or at its first segment when the playlist is shorter than that.
    """
    if not pl.segments or pl.ended:
        return pl.media_sequence
    need = LIVE_EDGE_TARGETS * pl.target_duration
    total = 0.0
    for seg in reversed(pl.segments):
        total += seg.duration
        if total >= need - 1e-6:
            return seg.sequence
    return pl.media_sequence


def _join(base: str, ref: str) -> str:
    try:
        return urljoin(base, ref)
    except ValueError as exc:
        raise ValueError(f"bad URI in HLS playlist: {ref[:80]!r}") from exc


def _float(text: str, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"bad {what} in HLS playlist: {text[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"bad {what} in HLS playlist: {text[:40]!r}")
    return value


def _int(text: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 20:
        raise ValueError(f"bad {what} in HLS playlist: {text[:40]!r}")
    return int(text)
