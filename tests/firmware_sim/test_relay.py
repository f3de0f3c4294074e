"""Relay on a node: it fetches the upstream stream itself (a local HTTP server stands in for the
radio station), reports "interrupted" when the stream drops, retries, and plays again."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devices.protocol import Telemetry, decode
from tests.firmware_sim import test_node
from tests.firmware_sim.test_node import Ctl, until

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(60)]

prefix, ctl, nodes = test_node.prefix, test_node.ctl, test_node.nodes  # the same fixtures


class Radio(ThreadingHTTPServer):
    """An Icecast-like MP3 stream (``/live.mp3``, endless until ``up`` is cleared) and an HLS
    playlist with two segments (``/hls/index.m3u8``)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.up = threading.Event()
        self.up.set()
        self.requests: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Radio

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if not self.server.up.is_set():
            self.send_error(503, "station off the air")
            return
        if self.path == "/live.mp3":
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            frame = b"\xff\xf3\x84\xc0" + bytes(140)
            while self.server.up.is_set():
                try:
                    self.wfile.write(frame * 4)
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            return  # the station drops: the connection closes mid-stream
        if self.path == "/hls/index.m3u8":
            body = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg0.ts\n#EXTINF:1.0,\nseg1.ts\n"
        elif self.path.startswith("/hls/seg"):
            body = b"G" * 1880
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def radio() -> Iterator[Radio]:
    server = Radio()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.up.clear()
    server.shutdown()
    server.server_close()


def relay_states(c: Ctl, node_id: str) -> list[str]:
    out = []
    for payload, _ in c.of(node_id, "telemetry"):
        state = decode(Telemetry, payload).relay
        if not out or out[-1] != state:
            out.append(state)
    return out


async def test_stream_drops_is_reported_interrupted_and_resumes(ctl: Ctl, nodes: Any, radio: Radio) -> None:
    node = nodes("rl-1")
    await node.start()
    r = await ctl.call("rl-1", "play_stream", {"url": f"{radio.base}/live.mp3"})
    assert r.status == "ok" and r.data == {"playing": f"{radio.base}/live.mp3", "source": "relay"}
    await until(lambda: node.relay.state == "playing" and node.relay.bytes_in > 2000, 10, "relay plays")
    radio.up.clear()  # the upstream station goes off the air
    await until(lambda: node.relay.state == "interrupted", 10, "interrupted")
    await until(lambda: node.relay.retries >= 2, 10, "retries")
    assert "503" in node.relay.last_error
    radio.up.set()
    got = node.relay.bytes_in
    await until(lambda: node.relay.state == "playing" and node.relay.bytes_in > got, 40, "resumed")
    await until(lambda: relay_states(ctl, "rl-1")[-3:] == ["playing", "interrupted", "playing"], 10,
                "telemetry shows the interruption")
    assert (await ctl.call("rl-1", "stop")).data == {"stopped": f"{radio.base}/live.mp3"}
    assert node.relay.state == "" and node.relay.url == ""
    requests = len(radio.requests)
    await asyncio.sleep(0.3)
    assert len(radio.requests) == requests  # no more fetching after stop


async def test_hls_playlist_segments_are_fetched(ctl: Ctl, nodes: Any, radio: Radio) -> None:
    node = nodes("rl-2")
    await node.start()
    assert (await ctl.call("rl-2", "play_stream", {"url": f"{radio.base}/hls/index.m3u8"})).status == "ok"
    await until(lambda: node.relay.bytes_in >= 2 * 1880, 10, "segments fetched")
    assert node.relay.state == "playing"
    assert {"/hls/seg0.ts", "/hls/seg1.ts"} <= set(radio.requests)
    assert radio.requests.count("/hls/seg0.ts") == 1  # each segment once, the playlist polled
    r = await ctl.call("rl-2", "play_stream", {"url": "ftp://radio"})
    assert r.status == "error" and json.dumps(r.error)
