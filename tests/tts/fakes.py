"""Local stand-ins for online speech services: a real HTTP server on 127.0.0.1.

Engines talk to it over real sockets exactly as they would to the service; tests script
its answers and read back every request it received.
"""

from __future__ import annotations

import array
import base64
import json
import math
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tts.audio import AudioSegment, encode


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def gtts_text(self) -> tuple[str, str]:
        """(text, lang) of a Google batchexecute request as gTTS builds it."""
        freq = urllib.parse.parse_qs(self.body.decode())["f.req"][0]
        text, lang, *_ = json.loads(json.loads(freq)[0][0][1])
        return text, lang


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Handler = Callable[[Received], Reply]


class FakeServer:
    """ThreadingHTTPServer on a free port; ``handler`` answers each request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[Received] = []
        outer = self

        class _H(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                               self.rfile.read(length))
                outer.received.append(req)
                reply = outer.handler(req)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """An address where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def tone_segment(ms: int, freq: float = 440.0, rate: int = 24000) -> AudioSegment:
    n = rate * ms // 1000
    pcm = array.array("h", (int(9000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))
    return AudioSegment(data=pcm.tobytes(), sample_width=2, frame_rate=rate, channels=1)


def tone_mp3(ms: int = 600) -> bytes:
    """A real MP3 (24 kHz mono) like the ones the services send."""
    return encode(tone_segment(ms), codec="mp3", bitrate_kbps=32)


def google_reply(audio: bytes) -> Reply:
    """Google Translate's batchexecute answer carrying ``audio`` (as gTTS parses it)."""
    inner = json.dumps([base64.b64encode(audio).decode()], separators=(",", ":"))
    line = json.dumps([["wrb.fr", "jQ1olc", inner, None, None, None, "generic"]], separators=(",", ":"))
    body = f")]}}'\n\n{len(line)}\n{line}\n25\n[[\"e\",4,null,null,{len(line)}]]\n"
    return Reply(200, body.encode(), {"Content-Type": "application/json; charset=utf-8"})


def scripted(replies: list[Reply], then: Reply) -> Handler:
    """Answer with ``replies`` in order, then always ``then``."""
    queue: Iterator[Reply] = iter(replies)

    def handler(_: Received) -> Reply:
        return next(queue, then)

    return handler
