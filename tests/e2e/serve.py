"""The controller served over real HTTP/WebSocket by uvicorn in this event loop, and a phone."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from controller.app import create_app
from controller.core.web_settings import uvicorn_proxy_options
from controller.settings import Settings

RATE = 16000


@asynccontextmanager
async def serving(settings: Settings, tls: tuple[str, str] | None = None, *,
                  wrap: Callable[[FastAPI], Any] | None = None) -> AsyncIterator[tuple[FastAPI, str]]:
    """Yield the app and ``host:port`` while uvicorn serves it (lifespan included; HTTPS with
    ``tls`` = (cert, key); ``wrap``: an ASGI wrapper to serve the app through)."""
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here: no race for a "free" port with parallel tests
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(wrap(app) if wrap else app, log_level="warning", lifespan="on",
                                           ws="websockets-sansio",
                                           ssl_certfile=tls[0] if tls else None,
                                           ssl_keyfile=tls[1] if tls else None,
                                           **uvicorn_proxy_options(settings.http)))  # as `serve` does
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.05)
    try:
        yield app, f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def phone(addr: str, auth: tuple[str, str], target: dict[str, Any],
                priority: str = "normal") -> ClientConnection:
    """Open /api/live/ws and ask for a session (read the replies with :func:`next_state`)."""
    ws = await connect(f"ws://{addr}/api/live/ws", additional_headers={"Authorization": basic(*auth)},
                       max_size=2**20)
    await ws.send(json.dumps({"type": "start", "target": target, "priority": priority}))
    return ws


async def next_msg(ws: ClientConnection, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
    """The next JSON message of ``type`` ``kind`` whose fields equal ``match``."""
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") == kind and all(msg.get(k) == v for k, v in match.items()):
                return dict(msg)
            if msg.get("type") == "error" and kind != "error":
                raise AssertionError(f"refused: {msg['detail']}")


def tone(ms: int, *, freq: float = 440.0, amplitude: int = 8000, start: int = 0) -> bytes:
    n = RATE * ms // 1000
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * (start + i) / RATE))
                                   for i in range(n)))


async def talk(ws: ClientConnection, ms: int, *, chunk_ms: int = 20, pcm: bytes | None = None) -> None:
    """Send ``ms`` of audio in real time, ``chunk_ms`` at a time (an AudioWorklet's pace)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    step = RATE * chunk_ms // 1000 * 2
    data = pcm if pcm is not None else tone(ms)
    for i in range(0, len(data), step):
        try:
            await ws.send(data[i:i + step])
        except ConnectionClosed:  # the controller ended the session (silent, pre-empted...)
            return
        await asyncio.sleep(max(0.0, t0 + (i // step + 1) * chunk_ms / 1000 - loop.time()))
