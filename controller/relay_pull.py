"""Relay mode ``republish``: the controller fetches the upstream stream for units that cannot.

The HTTP MP3/AAC (Icecast) stream is read with httpx, piped into ffmpeg (``-re``: paced at
real time) which decodes it to PCM s16le 16 kHz mono, and the PCM is fed to a live session
(controller/live.py) — the same frames, topics and unit behaviour as a live broadcast from a
phone. The relay session, not the live session, holds the zones in the arbiter.

When the upstream drops (connection refused or reset, HTTP error, nothing for
``READ_TIMEOUT_S``) the relay's state is ``interrupted`` (GET /api/relays/{id}) and the fetch
is retried with backoff (0.5 s doubling to 30 s); the units stop by themselves when frames stop
and rejoin at the next ``live_start`` announcement once audio flows again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

import httpx

from controller.aircontrol import AirControl
from controller.live import LiveHub, LiveSession
from controller.presence import Presence
from controller.relays import RelayHub, RelaySession
from devices import protocol as p
from devices.link import ControllerLink

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
PCM_READ = 1280  # 40 ms of 16 kHz s16le


async def probe(url: str) -> str:
    """'' if the stream answers with audio bytes, else why not (shown to the user)."""
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                                     follow_redirects=True) as client, \
                client.stream("GET", url) as r:
            if r.status_code >= 400:
                return f"HTTP {r.status_code}"
            async for chunk in r.aiter_bytes():
                if chunk:
                    return ""
            return "the stream sent no data"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class PullRelayHub(RelayHub):
    """Relay sessions, with the ``republish`` mode pulling the stream in the controller."""

    def __init__(self, link: ControllerLink, air: AirControl, presence: Presence) -> None:
        super().__init__(link, air, presence)
        # its own hub: a relay is not ended by a quiet or interrupted stream (only by its owner)
        self.live = LiveHub(link, air, presence, no_audio_s=math.inf, silence_s=math.inf)
        self._pulls: dict[str, tuple[asyncio.Task[None], LiveSession]] = {}

    def units(self, s: RelaySession) -> list[str]:
        pulled = self._pulls.get(s.id)
        return self.live.units(pulled[1]) if pulled else super().units(s)

    def _on_play(self, s: RelaySession) -> None:
        if s.mode != "republish":
            super()._on_play(s)
            return

        def notify(msg: dict[str, Any]) -> None:
            if msg.get("type") == "units":
                s.detail["units_live"] = msg.get("live", [])

        live = self.live.open_direct(user=s.user, priority=s.priority, nodes=s.nodes, scopes=s.scopes,
                                     notify=notify)
        s.detail.update(live_session=live.id, bytes_in=0, retries=0, last_error="")
        task = asyncio.get_running_loop().create_task(self._pull(s, live), name=f"pull-{s.id}")
        self._pulls[s.id] = (task, live)

    def _on_stop(self, s: RelaySession) -> None:
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
                got = await self._one_connection(s, live, ffmpeg_path())
                s.detail["last_error"] = "the stream ended"
                if got:
                    backoff = BACKOFF_START_S
            except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError, _Upstream) as exc:
                s.detail["last_error"] = str(exc) or type(exc).__name__
            except Exception as exc:  # keep retrying whatever the upstream does
                logger.exception("relay %s pull failed", s.id)
                s.detail["last_error"] = str(exc) or type(exc).__name__
            if s.state != "playing" and s.state != "interrupted":
                return
            if s.state != "interrupted":
                logger.warning("relay %s interrupted: %s", s.id, s.detail["last_error"])
            s.state = "interrupted"
            s.detail["retries"] += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _one_connection(self, s: RelaySession, live: LiveSession, ffmpeg: str) -> bool:
        """Fetch and decode until the stream drops; True if audio came through."""
        proc = await asyncio.create_subprocess_exec(
            ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-i", "pipe:0", "-f", "s16le",
            "-ac", "1", "-ar", str(p.LIVE_SAMPLE_RATE), "pipe:1",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None
        stdout = proc.stdout
        got = False

        async def read_pcm() -> None:
            nonlocal got
            while chunk := await stdout.read(PCM_READ):
                if not got:
                    got = True
                    if s.state == "interrupted":
                        logger.info("relay %s resumed", s.id)
                    s.state = "playing"
                self.live.feed(live, chunk)

        reader = asyncio.create_task(read_pcm())
        try:
            timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client, \
                    client.stream("GET", s.url) as r:
                if r.status_code >= 400:
                    raise _Upstream(f"HTTP {r.status_code}")
                async for chunk in r.aiter_bytes():
                    s.detail["bytes_in"] += len(chunk)
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await proc.wait()
        return got


class _Upstream(Exception):
    """The upstream answered, but not with a stream."""
