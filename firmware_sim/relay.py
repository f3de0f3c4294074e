"""Relay (tiếp sóng) on a simulated node: it really fetches the upstream stream.

``play_stream`` hands the URL here. An HTTP(S) stream (MP3/AAC, Icecast) is read as it comes;
an HLS playlist (``.m3u8``, parsed by devices/hls.py) is polled and its new segments fetched
in sequence order (a master playlist: its lowest-bandwidth variant; live: from near the live
edge). Bytes are counted; a real
unit's output (firmware_sim/hardware.py ``stream_sink``) also decodes and plays them as they come.
When the stream drops (connection refused or reset, HTTP error, nothing for
``READ_TIMEOUT_S``) the state becomes ``interrupted`` — reported in telemetry, so the
controller shows "relay interrupted" — and the node retries with backoff (0.5 s doubling to
30 s) until it plays again or is told to stop.

What it fetches follows the node-side rule of devices/netguard.py (docs/protocol.md
``play_stream``): the origin of the URL the controller sent as it is; a redirect, variant or
segment on any other origin only if that host's addresses are all public. A URL refused by that
rule is never requested; the state becomes ``refused`` (telemetry ``relay``, the reason in the
log and in :attr:`RelayFetcher.last_error`) and the node retries the controller's URL with the
same backoff (a station may fix its redirect). (The simulator checks the name and then lets
urllib resolve it again; firmware connects to the address it checked.)
"""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from http.client import HTTPResponse
from typing import Any, cast
from urllib.parse import urlsplit

from devices import hls
from devices.netguard import unit_fetch_refusal
from firmware_sim.hardware import AudioOutput, Sink

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
READ_SIZE = 8192
_ERRORS = (OSError, urllib.error.URLError, ValueError, ConnectionError, TimeoutError)


class Refused(Exception):
    """A URL the node-side rule (devices/netguard.py) forbids this node to fetch."""


class RelayFetcher:
    def __init__(self, node_id: str, on_change: Callable[[], None],
                 output: AudioOutput | None = None) -> None:
        self.node_id = node_id
        self._out = output  # a real unit decodes and plays what it fetches (firmware_sim/hardware.py)
        self._sink: Sink | None = None
        self.on_change = on_change
        self.url = ""
        self.state = ""  # '' | connecting | playing | interrupted
        self.bytes_in = 0
        self.retries = 0
        self.last_error = ""
        self.refused = 0  # URLs not fetched because of the node-side rule
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
        self._close_sink()
        self.url = ""
        self._set("")

    def _close_sink(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def _play(self, data: bytes) -> None:
        """A real unit's output decodes and plays the stream's bytes as they come."""
        if self._out is None:
            return
        if self._sink is None:
            self._sink = self._out.stream_sink(f"relay-{self.node_id}")
        if self._sink is not None:
            self._sink.write(data)

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_change()

    async def _run(self, url: str) -> None:
        backoff = BACKOFF_START_S
        while True:
            state = "interrupted"
            try:
                reader = self._hls(url) if urlsplit(url).path.endswith(".m3u8") else self._stream(url)
                async for data in reader:
                    self.bytes_in += len(data)
                    self._play(data)
                    if self.state != "playing":
                        logger.info("%s: relay %s playing", self.node_id, url)
                        self._set("playing")
                    backoff = BACKOFF_START_S
                raise ConnectionError("the stream ended")
            except Refused as exc:
                self.last_error, state = str(exc)[:200], "refused"
                self.refused += 1
            except _ERRORS as exc:
                self.last_error = str(exc)[:200]
            self.retries += 1
            self._close_sink()  # the next connection's stream is decoded afresh
            if self.state != state:
                logger.warning("%s: relay %s %s (%s); retrying", self.node_id, url, state, self.last_error)
            self._set(state)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _stream(self, url: str) -> AsyncIterator[bytes]:
        resp = await asyncio.to_thread(_open, url, url)
        try:
            while True:
                data = await asyncio.to_thread(resp.read1, READ_SIZE)
                if not data:
                    return
                yield data
        finally:
            await asyncio.to_thread(resp.close)

    async def _hls(self, url: str) -> AsyncIterator[bytes]:
        """New segments of an HLS playlist, in sequence order (devices/hls.py parses it): a master
        playlist's cheapest variant is followed, a live one starts near its live edge."""
        sent = url  # the controller's URL: its origin is the one not re-checked
        pl = hls.parse((await asyncio.to_thread(_get, url, sent)).decode("utf-8", "replace"), url)
        if pl.is_master:
            url = hls.choose_variant(pl).uri
            pl = hls.parse((await asyncio.to_thread(_get, url, sent)).decode("utf-8", "replace"), url)
            if pl.is_master:
                raise ValueError("HLS master playlist points at another master playlist")
        next_seq = hls.start_sequence(pl)
        init = ""
        while True:
            if pl.last_sequence < next_seq - 1:  # the sequence went back: the stream restarted
                next_seq = hls.start_sequence(pl)
            for seg in pl.segments:
                if seg.sequence < next_seq:
                    continue
                if pl.init_uri and pl.init_uri != init:
                    init = pl.init_uri
                    yield await asyncio.to_thread(_get, init, sent)
                yield await asyncio.to_thread(_get, seg.uri, sent)
                next_seq = seg.sequence + 1
            if pl.ended:
                return
            await asyncio.sleep(max(0.2, pl.target_duration / 2))
            pl = hls.parse((await asyncio.to_thread(_get, url, sent)).decode("utf-8", "replace"), url)


def _check(url: str, sent: str) -> None:
    if why := unit_fetch_refusal(url, sent):
        logger.warning("relay: not fetching %s: %s", url[:200], why)
        raise Refused(why)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, each target checked by the node-side rule before it is requested."""

    def __init__(self, sent: str) -> None:
        super().__init__()
        self.sent = sent

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        try:
            _check(newurl, self.sent)
        except Refused:
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, sent: str) -> HTTPResponse:
    """GET ``url`` for the relay of ``sent`` (the controller's URL), redirects included."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http(s) streams")
    _check(url, sent)
    req = urllib.request.Request(url, headers={"User-Agent": "loaphuong-sim", "Icy-MetaData": "0"})
    opener = urllib.request.build_opener(_Redirects(sent))
    return cast(HTTPResponse, opener.open(req, timeout=READ_TIMEOUT_S))


def _get(url: str, sent: str) -> bytes:
    with _open(url, sent) as resp:
        return resp.read()
