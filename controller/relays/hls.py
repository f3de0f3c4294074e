"""HLS in the controller's ``republish`` relay (controller/relays/pull.py).

:func:`feed` follows a playlist (parsed by devices/hls.py): a master playlist's lowest-bandwidth
variant, then the media playlist's new segments in sequence order — the init segment
(``EXT-X-MAP``) once before the first media segment — handed to ``write`` (the relay pipes
them into ffmpeg, which reads concatenated MPEG-TS or ADTS AAC from a pipe). The playlist is
reloaded every half target duration (at least 0.5 s). It returns when a playlist with
``EXT-X-ENDLIST`` has been fed to its end, and raises :class:`UpstreamError` (or an httpx
error) when the playlist or a segment fails or a live playlist stops advancing for more than
``STALE_TARGETS`` target durations.

A :class:`Cursor` outlives one connection: after an interruption a live stream resumes near its
live edge (RFC 8216 §6.3.3) but never before the next segment not yet fed, so nothing is
replayed; a VOD playlist (``EXT-X-ENDLIST``) carries on where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from devices import hls

logger = logging.getLogger(__name__)

STALE_TARGETS = 3.0  # a live playlist without a new segment for this many target durations is stale
MIN_RELOAD_S = 0.5
PLAYLIST_MAX = 1 << 20
SEGMENT_MAX = 32 << 20


class UpstreamError(Exception):
    """The upstream answered, but not with what a relay can play."""


@dataclass
class Cursor:
    """Where a relay is in its HLS stream (kept across reconnections)."""

    next_seq: int | None = None  # the first segment not fed yet


async def feed(client: httpx.AsyncClient, url: str, body: bytes, write: Callable[[bytes], Awaitable[None]],
               cursor: Cursor, detail: dict[str, Any]) -> None:
    """Feed the stream of the playlist ``body`` (fetched from ``url``) to ``write`` until it ends."""
    url, pl = await _media_playlist(client, url, body)
    start = hls.start_sequence(pl)
    if cursor.next_seq is None or pl.last_sequence < cursor.next_seq - 1:
        cursor.next_seq = start  # first connection, or the sequence went back (the stream restarted)
    elif not pl.ended:
        cursor.next_seq = max(cursor.next_seq, start)  # live: rejoin near the edge, replay nothing
    loop = asyncio.get_running_loop()
    advanced_at, seen = loop.time(), pl.last_sequence
    init_fed = ""
    while True:
        for seg in pl.segments:
            if seg.sequence < cursor.next_seq:
                continue
            if pl.init_uri and pl.init_uri != init_fed:
                await write(await _get(client, pl.init_uri, "init segment", SEGMENT_MAX))
                init_fed = pl.init_uri
            await write(await _get(client, seg.uri, "segment", SEGMENT_MAX))
            cursor.next_seq = seg.sequence + 1
            detail["segments"] = detail.get("segments", 0) + 1
        if pl.ended:
            return
        await asyncio.sleep(max(MIN_RELOAD_S, pl.target_duration / 2))
        pl = _parse(await _get(client, url, "playlist", PLAYLIST_MAX), url)
        if pl.is_master:
            raise UpstreamError("HLS playlist: the variant playlist became a master playlist")
        now = loop.time()
        if pl.last_sequence < cursor.next_seq - 1:
            logger.info("HLS %s: media sequence went back (%d < %d): the stream restarted", url,
                        pl.last_sequence, cursor.next_seq - 1)
            cursor.next_seq = hls.start_sequence(pl)
            advanced_at = now
        elif pl.last_sequence > seen:
            advanced_at = now
        elif now - advanced_at > STALE_TARGETS * pl.target_duration:
            raise UpstreamError(f"the HLS playlist stopped advancing (no new segment for "
                                f"{now - advanced_at:.0f} s, target duration {pl.target_duration:g} s)")
        seen = pl.last_sequence


async def probe(client: httpx.AsyncClient, url: str, body: bytes) -> str:
    """'' if the playlist parses and its first segment answers with bytes, else why not."""
    try:
        url, pl = await _media_playlist(client, url, body)
    except UpstreamError as exc:
        return str(exc)
    if not pl.segments:
        return "HLS playlist: no segments"
    seg = pl.segments[0].uri
    async with client.stream("GET", seg) as r:
        if r.status_code >= 400:
            return f"HTTP {r.status_code} for segment {seg}"
        async for chunk in r.aiter_bytes():
            if chunk:
                return ""
    return f"empty segment {seg}"


async def _media_playlist(client: httpx.AsyncClient, url: str, body: bytes) -> tuple[str, hls.Playlist]:
    pl = _parse(body, url)
    if pl.is_master:
        url = hls.choose_variant(pl).uri
        pl = _parse(await _get(client, url, "playlist", PLAYLIST_MAX), url)
        if pl.is_master:
            raise UpstreamError("HLS playlist: a master playlist points at another master playlist")
    return url, pl


def _parse(body: bytes, url: str) -> hls.Playlist:
    try:
        return hls.parse(body.decode("utf-8", "replace"), url)
    except ValueError as exc:
        raise UpstreamError(f"HLS playlist: {exc}") from None


async def _get(client: httpx.AsyncClient, url: str, what: str, limit: int) -> bytes:
    async with client.stream("GET", url) as r:
        if r.status_code >= 400:
            raise UpstreamError(f"HTTP {r.status_code} for {what} {url}")
        return await read_body(r.aiter_bytes(), limit, what)


async def read_body(chunks: AsyncIterator[bytes], limit: int, what: str, first: bytes = b"") -> bytes:
    """The rest of a streamed response (after ``first``), at most ``limit`` bytes."""
    out = bytearray(first)
    async for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise UpstreamError(f"{what} larger than {limit // 1024} KiB")
    return bytes(out)


def is_hls(r: httpx.Response, first: bytes) -> bool:
    """Whether a response is an HLS playlist (by its URL path, Content-Type or first bytes)."""
    return hls.looks_like_hls(r.url.path, r.headers.get("content-type"), first[:64])
