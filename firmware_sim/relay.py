"""Relay (tiếp sóng) on a simulated node: it really fetches the upstream stream.

``play_stream`` hands the URL here. An HTTP(S) stream (MP3/AAC, Icecast) is read as it comes;
an HLS playlist (``.m3u8``) is polled and its new segments fetched. Bytes are counted, not
decoded. When the stream drops (connection refused or reset, HTTP error, nothing for
``READ_TIMEOUT_S``) the state becomes ``interrupted`` — reported in telemetry, so the
controller shows "relay interrupted" — and the node retries with backoff (0.5 s doubling to
30 s) until it plays again or is told to stop.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from http.client import HTTPResponse
from typing import cast
from urllib.parse import urljoin, urlsplit

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
READ_SIZE = 8192
_ERRORS = (OSError, urllib.error.URLError, ValueError, ConnectionError, TimeoutError)


class RelayFetcher:
    def __init__(self, node_id: str, on_change: Callable[[], None]) -> None:
        self.node_id = node_id
        self.on_change = on_change
        self.url = ""
        self.state = ""  # '' | connecting | playing | interrupted
        self.bytes_in = 0
        self.retries = 0
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None

    def start(self, url: str) -> None:
        self.stop()
        self.url, self.bytes_in, self.retries = url, 0, 0
        self._set("connecting")
        self._task = asyncio.get_running_loop().create_task(self._run(url), name=f"relay-{self.node_id}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.url = ""
        self._set("")

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_change()

    async def _run(self, url: str) -> None:
        backoff = BACKOFF_START_S
        while True:
            try:
                reader = self._hls(url) if urlsplit(url).path.endswith(".m3u8") else self._stream(url)
                async for n in reader:
                    self.bytes_in += n
                    if self.state != "playing":
                        logger.info("%s: relay %s playing", self.node_id, url)
                        self._set("playing")
                    backoff = BACKOFF_START_S
                raise ConnectionError("the stream ended")
            except _ERRORS as exc:
                self.last_error = str(exc)[:200]
            self.retries += 1
            if self.state != "interrupted":
                logger.warning("%s: relay %s interrupted (%s); retrying", self.node_id, url, self.last_error)
            self._set("interrupted")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _stream(self, url: str) -> AsyncIterator[int]:
        resp = await asyncio.to_thread(_open, url)
        try:
            while True:
                data = await asyncio.to_thread(resp.read1, READ_SIZE)
                if not data:
                    return
                yield len(data)
        finally:
            await asyncio.to_thread(resp.close)

    async def _hls(self, url: str) -> AsyncIterator[int]:
        seen: set[str] = set()
        while True:
            playlist = (await asyncio.to_thread(_get, url)).decode("utf-8", "replace")
            if not playlist.startswith("#EXTM3U"):
                raise ValueError("not an HLS playlist")
            target = 2.0
            segments = []
            for line in playlist.splitlines():
                line = line.strip()
                if line.startswith("#EXT-X-TARGETDURATION:"):
                    target = float(line.split(":", 1)[1] or 2)
                elif line and not line.startswith("#"):
                    segments.append(urljoin(url, line))
            if segments and segments[0].split("?")[0].endswith(".m3u8"):
                url = segments[0]  # a master playlist: take its first variant
                continue
            for seg in segments:
                if seg not in seen:
                    seen.add(seg)
                    yield len(await asyncio.to_thread(_get, seg))
            if "#EXT-X-ENDLIST" in playlist:
                return
            await asyncio.sleep(max(0.2, target / 2))


def _open(url: str) -> HTTPResponse:
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http(s) streams")
    req = urllib.request.Request(url, headers={"User-Agent": "loaphuong-sim", "Icy-MetaData": "0"})
    return cast(HTTPResponse, urllib.request.urlopen(req, timeout=READ_TIMEOUT_S))


def _get(url: str) -> bytes:
    with _open(url) as resp:
        return resp.read()
