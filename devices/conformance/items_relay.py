"""Item of docs/protocol.md §2 `play_stream`: the unit fetches a stream itself and relays it until
`stop`. The kit runs a tiny test station (an endless silent MP3 over HTTP) on its own host."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devices.conformance.audio import silent_mp3
from devices.conformance.context import Context, Item, child_lacks, clip
from devices.conformance.report import Result


class Station(ThreadingHTTPServer):
    """``GET /conformance.mp3``: silent MP3 at about its real rate, for at most ``limit_s``."""

    daemon_threads = True

    def __init__(self, host: str, limit_s: float = 120.0) -> None:
        self.requests, self.limit_s, self.closing = 0, limit_s, False
        self.frame, _ = silent_mp3(200)
        super().__init__((host, 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, name="conformance-station", daemon=True)
        self.thread.start()

    def url(self, host: str) -> str:
        return f"http://{host}:{self.server_address[1]}/conformance.mp3"

    def close(self) -> None:
        self.closing = True
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Station

    def log_message(self, *args: Any) -> None:  # quiet: the report says what happened
        return

    def do_GET(self) -> None:
        self.server.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.end_headers()
        end = time.monotonic() + self.server.limit_s
        try:
            while time.monotonic() < end and not self.server.closing:
                self.wfile.write(self.server.frame)
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            return


def local_address(toward: str) -> str:
    """The kit's own address as the unit sees it: the one it uses toward the broker."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((toward, 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


async def relay(ctx: Context, r: Result) -> None:
    """play_stream: answered, fetched, telemetry relay playing; the same URL again `already`; stop."""
    h = ctx.h
    if ctx.gateway:
        await child_lacks(ctx, r, "play_stream", {"url": "http://127.0.0.1:9/conformance.mp3"})
        return
    host = ctx.station_host or local_address(h.client.broker.host)
    station = Station("0.0.0.0" if host != "127.0.0.1" else host)
    url = station.url(host)
    try:
        start = time.monotonic()
        _, resp = await h.call("play_stream", {"url": url})
        tel = await h.wait(lambda: h.objs("telemetry", start, relay="playing", source="relay"))
        _, again = await h.call("play_stream", {"url": url})
        stop_at = time.monotonic()
        _, stopped = await h.call("stop")
        idle = await h.wait(lambda: [t for t in h.objs("telemetry", stop_at) if t.get("relay") == ""])
    finally:
        station.close()
    r.note(f"station {url}: {station.requests} request(s); play_stream: {clip(json.dumps(resp))}")
    r.note(f"telemetry relay playing: {bool(tel)}; again: {clip(json.dumps((again or {}).get('data')))}; "
           f"stop: {clip(json.dumps((stopped or {}).get('data')))}; relay '' after: {bool(idle)}")
    if not resp or resp.get("data") != {"playing": url, "source": "relay"}:
        r.failed("play_stream not answered {playing: url, source: relay}")
    elif not station.requests or not tel:
        r.failed("the stream was not fetched and relayed (telemetry relay: playing, source: relay)")
    elif not again or (again.get("data") or {}).get("already") != "playing":
        r.failed("the URL it relays again was not answered already: playing")
    elif not stopped or (stopped.get("data") or {}).get("stopped") != url or not idle:
        r.failed("stop did not end the relay ({stopped: url}, telemetry relay '')")
    else:
        r.passed()


ITEMS: list[Item] = [
    ("relay", "§2 play_stream", "the unit fetches and relays a stream until stop", relay),
]
