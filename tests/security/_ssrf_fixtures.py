"""Local HTTP servers for the SSRF attacks (issue 11 item 9), all on 127.0.0.1.

:class:`Site` answers fixed bodies by path (anything else: 200 with audio-looking bytes) and
counts every request it receives — the "internal service" must count none. ``/live.mp3`` is an
endless MP3-like stream (the legitimate station). :func:`closed_port` is a port nobody listens
on; :func:`silent_port` accepts connections and never answers (a timeout). :class:`Resolver`
fakes DNS answers for chosen names (in this process, where the app runs) and passes every other
lookup to the real resolver.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FRAME = b"\xff\xf3\x84\xc0" + bytes(140)
STREAM_MAX_S = 30.0  # an endless stream still ends (bounded)
Route = tuple[int, dict[str, str], bytes]


class Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = dict(routes or {})
        self.hits: list[str] = []
        self.closing = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Site:
        threading.Thread(target=self.serve_forever, name=f"site-{self.port}", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path == "/live.mp3":
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            end = time.monotonic() + STREAM_MAX_S
            while not self.server.closing.is_set() and time.monotonic() < end:
                try:
                    self.wfile.write(FRAME * 4)
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            return
        status, headers, body = self.server.routes.get(self.path, (200, {"Content-Type": "audio/mpeg"},
                                                                    FRAME * 64))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def redirect(to: str) -> Route:
    return 302, {"Location": to}, b""


def playlist(text: str) -> Route:
    return 200, {"Content-Type": "application/vnd.apple.mpegurl"}, text.encode()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def silent_port() -> Iterator[int]:
    """A port that completes the TCP handshake (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


class Resolver:
    """getaddrinfo with fixed answers for some names (changeable mid-test: DNS rebinding)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *a: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.answers:
            return self._real(host, port, *a, **kw)
        self.asked.append(name)
        ips = self.answers[name]
        if not ips:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, int(port or 0))) for ip in ips]
