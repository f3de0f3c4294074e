"""Relay mode ``republish``: the controller fetches the upstream stream for units that cannot.

The upstream is read with httpx, piped into ffmpeg (``-re``: paced at real time) which decodes
it to PCM s16le 16 kHz mono, and the PCM is fed to a live session (controller/live/hub.py) — the
same frames, topics and unit behaviour as a live broadcast from a phone. The relay session, not
the live session, holds the zones in the arbiter.

Two kinds of upstream:

* an HTTP MP3/AAC stream (Icecast): its bytes go to ffmpeg as they come;
* an HLS playlist (the URL path ends with ``.m3u8``, the Content-Type is an HLS one, or the body
  starts with ``#EXTM3U``; controller/relays/hls.py): a master playlist's lowest-bandwidth variant
  is followed, a live playlist is joined near its live edge (3 target durations from the end)
  and reloaded every half target duration, its new segments (MPEG-TS or ADTS AAC; the
  ``EXT-X-MAP`` init segment once) are fed to ffmpeg in sequence order. A playlist with
  ``EXT-X-ENDLIST`` is played to its end and the relay then ends (``finished: the stream
  ended``). Encrypted playlists (``EXT-X-KEY``) are refused.

When the upstream drops (connection refused or reset, HTTP error on the stream, the playlist or
a segment, nothing for ``READ_TIMEOUT_S``, a live playlist with no new segment for 3 target
durations) the relay's state is ``interrupted`` (GET /api/relays/{id}, with ``last_error``) and
the fetch is retried with backoff (0.5 s doubling to 30 s); the units stop by themselves when
frames stop and rejoin at the next ``live_start`` announcement once audio flows again. An HLS
stream resumes near its live edge without replaying segments already sent.

Every connection goes through the relay's address policy (controller/core/netguard.py,
controller/core/netguard_http.py): a station whose address is not public and not allow-listed
(``relay.allowed_stations``) is never connected to — not as the URL, a redirect hop, an HLS
variant or segment. Such a relay ends (``refused: the station could not be reached``); any
failure to reach the station reads the same to the user (the precise reason is logged). A
``node_fetch`` relay's URL is checked when it goes on air, before any unit is told to fetch it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx

from controller.airing.aircontrol import AirControl
from controller.core import netguard_http
from controller.core.netguard import UNREACHABLE, Blocked, Guard
from controller.fleet.presence import Presence
from controller.live.hub import LiveHub
from controller.live.session import LiveSession
from controller.relays import hls as relay_hls
from controller.relays.hls import UpstreamError
from controller.relays.hub import RelayHub
from controller.relays.session import RelaySession
from devices import protocol as p
from devices.link import UnitBus

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
PCM_READ = 1280  # 40 ms of 16 kHz s16le
USER_AGENT = "loaphuong-relay/1"


REFUSED = f"refused: {UNREACHABLE}"


def _client(guard: Guard, user_agent: str = USER_AGENT) -> httpx.AsyncClient:
    return netguard_http.client(guard, timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                                user_agent=user_agent)


def _unreachable(url: str, exc: BaseException) -> str:
    """The user's text for a station that could not be reached: one text whatever the cause."""
    logger.warning("relay: %s could not be reached: %s: %s", url, type(exc).__name__, exc)
    return UNREACHABLE


async def probe(url: str, guard: Guard) -> str:
    """'' if the stream answers with audio bytes (HLS: the playlist parses and its first segment
    answers), else why not (shown to the user)."""
    try:
        async with _client(guard, f"{USER_AGENT} (probe)") as client:
            async with client.stream("GET", url) as r:
                if r.status_code >= 400:
                    return f"HTTP {r.status_code}"
                chunks = r.aiter_bytes()
                first = await _first_chunk(chunks)
                if not relay_hls.is_hls(r, first):
                    return "" if first else "the stream sent no data"
                body = await relay_hls.read_body(chunks, relay_hls.PLAYLIST_MAX, "playlist", first)
            return await relay_hls.probe(client, str(r.url), body)
    except UpstreamError as exc:
        return str(exc)
    except (Blocked, httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
        return _unreachable(url, exc)


class PullRelayHub(RelayHub):
    """Relay sessions, with the ``republish`` mode pulling the stream in the controller."""

    def __init__(self, link: UnitBus, air: AirControl, presence: Presence, *,
                 guard: Guard | None = None, **kw: Any) -> None:
        super().__init__(link, air, presence, **kw)
        self.guard = guard or Guard()  # what may be fetched (by us, or by the units: node_fetch)
        self._cleared: set[str] = set()  # node_fetch relays whose URL passed the guard when on air
        # its own hub: a relay is not ended by a quiet or interrupted stream (only by its owner)
        self.live = LiveHub(link, air, presence, no_audio_s=math.inf, silence_s=math.inf)
        self._pulls: dict[str, tuple[asyncio.Task[None], LiveSession]] = {}
        self._cursors: dict[str, relay_hls.Cursor] = {}

    def units(self, s: RelaySession, state: str = "playing") -> list[str]:
        pulled = self._pulls.get(s.id)
        return self.live.units(pulled[1]) if pulled and state == "playing" else super().units(s, state)

    def _on_play(self, s: RelaySession) -> None:
        if s.mode != "republish":
            self._cleared.discard(s.id)
            asyncio.get_running_loop().create_task(self._check_then_play(s), name=f"check-{s.id}")
            return

        def notify(msg: dict[str, Any]) -> None:
            if msg.get("type") == "units":
                s.detail["units_live"] = msg.get("live", [])

        live = self.live.open_direct(user=s.user, priority=s.priority, nodes=s.nodes, scopes=s.scopes,
                                     notify=notify)
        s.detail.update(live_session=live.id, bytes_in=0, retries=0, last_error="")
        self._cursors[s.id] = relay_hls.Cursor()
        task = asyncio.get_running_loop().create_task(self._pull(s, live), name=f"pull-{s.id}")
        self._pulls[s.id] = (task, live)

    async def _check_then_play(self, s: RelaySession) -> None:
        """node_fetch: the units fetch the URL, so it is checked here (now: DNS may have changed
        since the relay was made) before any unit is told; refused, the relay ends."""
        problem = await self.guard.aproblem(s.url)
        if s.state not in ("playing", "interrupted"):
            return  # stopped meanwhile
        if problem:
            self.end(s, f"refused: {problem}")
            return
        self._cleared.add(s.id)
        super()._on_play(s)

    def _command(self, s: RelaySession, name: str, args: dict[str, Any],
                 scopes: list[p.AudioScope] | None = None) -> None:
        """Nothing tells a unit to fetch a URL that has not passed the guard (resends, reconnects)."""
        if name == "play_stream" and s.id not in self._cleared:
            logger.warning("relay %s: play_stream held back (its URL is not cleared)", s.id)
            return
        super()._command(s, name, args, scopes)

    def _on_stop(self, s: RelaySession) -> None:
        self._cleared.discard(s.id)
        self._cursors.pop(s.id, None)
        pulled = self._pulls.pop(s.id, None)
        if pulled is None:
            super()._on_stop(s)
            return
        task, live = pulled
        task.cancel()
        self.live.end(live, s.reason or "stopped")

    async def _pull(self, s: RelaySession, live: LiveSession) -> None:
        from tts.audio import ffmpeg_path
        backoff = BACKOFF_START_S
        while s.state in ("playing", "interrupted"):
            try:
                if await self._one_connection(s, live, ffmpeg_path()):
                    self.end(s, "finished: the stream ended")
                    return
                s.detail["last_error"] = "the stream ended"
            except Blocked as exc:  # not public, not allow-listed: never retried
                logger.warning("relay %s refused: %s", s.id, exc)
                self.end(s, REFUSED)
                return
            except UpstreamError as exc:
                s.detail["last_error"] = str(exc) or type(exc).__name__
            except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
                s.detail["last_error"] = _unreachable(s.url, exc)
            except Exception as exc:  # keep retrying whatever the upstream does
                logger.exception("relay %s pull failed", s.id)
                s.detail["last_error"] = str(exc) or type(exc).__name__
            if s.state != "playing" and s.state != "interrupted":
                return
            if s.state == "playing":  # audio came through since the last failure (or the first one)
                backoff = BACKOFF_START_S
                logger.warning("relay %s interrupted: %s", s.id, s.detail["last_error"])
            s.state = "interrupted"
            s.detail["retries"] += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _one_connection(self, s: RelaySession, live: LiveSession, ffmpeg: str) -> bool:
        """Fetch and decode until the stream drops (False, or an exception), or until an HLS
        playlist with EXT-X-ENDLIST has been played out (True)."""
        proc = await asyncio.create_subprocess_exec(
            ffmpeg, "-hide_banner", "-loglevel", "error", "-probesize", "32768", "-analyzeduration", "500000",
            "-re", "-i", "pipe:0", "-f", "s16le",
            "-ac", "1", "-ar", str(p.LIVE_SAMPLE_RATE), "pipe:1",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        async def read_pcm() -> None:
            got = False
            while chunk := await stdout.read(PCM_READ):
                if not got:
                    got = True
                    if s.state == "interrupted":
                        logger.info("relay %s resumed", s.id)
                    s.state = "playing"
                self.live.feed(live, chunk)

        async def write(data: bytes) -> None:
            s.detail["bytes_in"] += len(data)
            stdin.write(data)
            await stdin.drain()

        reader = asyncio.create_task(read_pcm())
        try:
            async with _client(self.guard) as client:
                async with client.stream("GET", s.url) as r:
                    if r.status_code >= 400:
                        raise UpstreamError(f"HTTP {r.status_code}")
                    chunks = r.aiter_bytes()
                    first = await _first_chunk(chunks)
                    playlist = relay_hls.is_hls(r, first)
                    if playlist:
                        body = await relay_hls.read_body(chunks, relay_hls.PLAYLIST_MAX, "playlist", first)
                    else:
                        await write(first)
                        async for chunk in chunks:
                            await write(chunk)
                if not playlist:
                    return False
                s.detail.setdefault("segments", 0)
                await relay_hls.feed(client, str(r.url), body, write, self._cursors[s.id], s.detail)
            stdin.close()
            await reader  # the end of the playlist: let ffmpeg play out what it has
            return True
        finally:
            with contextlib.suppress(OSError):
                stdin.close()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await proc.wait()


async def _first_chunk(chunks: AsyncIterator[bytes]) -> bytes:
    async for chunk in chunks:
        if chunk:
            return chunk
    return b""
