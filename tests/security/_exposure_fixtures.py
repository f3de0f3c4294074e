"""A deployment as the docs describe it, for the browser / anonymous-visitor attacks (issue 11):
Mosquitto started with the files ``loaphuong mqtt-config`` writes (no anonymous clients, the
generated ACL), the real app served over HTTP by uvicorn, simulated units logged in with their
own broker credentials, and an attacker's web server on another port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import httpx
import pytest
import uvicorn

from controller.app import create_app
from controller.db import Database
from controller.models import Node, NodeZone, Zone
from controller.mqtt_accounts import CONTROLLER_ENV, issue_credentials
from controller.mqtt_accounts import main as mqtt_config
from controller.settings import LiveSettings, MqttSettings, Settings
from devices.broker import free_port, mosquitto_path, wait_port
from devices.mqtt import BrokerAddress
from firmware_sim.node import SimNode
from tests.conftest import ADMIN
from tests.e2e.helpers import wait_online

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HandshakeRecorder:
    """ASGI wrapper that keeps the headers of every WebSocket handshake (what the browser sent)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.handshakes: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.handshakes.append({k.decode("latin-1").lower(): v.decode("latin-1")
                                    for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@dataclass
class Stack:
    app: Any
    addr: str  # host:port of the controller
    broker_port: int
    units: dict[str, SimNode] = field(default_factory=dict)
    recorder: HandshakeRecorder | None = None

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def admin(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, auth=ADMIN, timeout=30)

    def anon(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    def frames_in(self) -> int:
        """Live frames the units received, all sessions together."""
        return sum(u.live.stats.frames_in for u in self.units.values())


def _provision(db_url: str, zones: dict[str, list[str]]) -> dict[str, str]:
    """Zones and units in the database, each unit with its broker password (as POST /api/nodes)."""
    db = Database(db_url)
    try:
        db.migrate()
        passwords = {}
        with db.session() as s:
            for zid, nodes in zones.items():
                s.add(Zone(id=zid, name=f"Tổ dân phố {zid}"))
                for n in nodes:
                    s.add(Node(id=n, name=f"Loa {n}"))
                    s.flush()
                    s.add(NodeZone(node_id=n, zone_id=zid))
                    passwords[n] = issue_credentials(s, n, by="test")
            s.commit()
        return passwords
    finally:
        db.dispose()


@asynccontextmanager
async def _uvicorn(app: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets-sansio"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def secure_stack(zones: dict[str, list[str]], *, live: LiveSettings | None = None,
                       record: bool = False) -> AsyncIterator[Stack]:
    """Mosquitto with the generated config, the controller over HTTP and the units online."""
    exe = mosquitto_path()
    if exe is None:
        pytest.fail("mosquitto is not installed; tests/run.sh installs it (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory(prefix="lp-sec-d2-") as tmp:
        os.chmod(tmp, 0o755)  # the broker drops to its own user before it reads passwd / acl
        data, out, port = Path(tmp) / "data", Path(tmp) / "mqtt", free_port()
        data.mkdir()
        passwords = _provision(Settings(data_dir=data).db_url, zones)
        assert mqtt_config(["--out", str(out), "--data-dir", str(data), "--port", str(port),
                            "--bind", "127.0.0.1"]) == 0
        lines = (out / CONTROLLER_ENV).read_text().splitlines()
        env = dict(line.split("=", 1) for line in lines if "=" in line)
        broker = await asyncio.create_subprocess_exec(exe, "-c", str(out / "mosquitto.conf"),
                                                      stdout=DEVNULL, stderr=DEVNULL)
        try:
            up = await asyncio.to_thread(wait_port, "127.0.0.1", port)
            assert up, "mosquitto did not start with the generated config"
            settings = Settings(data_dir=data, admin_password=ADMIN[1], live=live or LiveSettings(),
                                mqtt=MqttSettings(port=port, username=env["LOAPHUONG_MQTT__USERNAME"],
                                                  password=env["LOAPHUONG_MQTT__PASSWORD"]))
            app = create_app(settings)
            recorder = HandshakeRecorder(app) if record else None
            async with _uvicorn(recorder or app) as addr:
                stack = Stack(app, addr, port, recorder=recorder)
                for n, pw in passwords.items():
                    stack.units[n] = SimNode(n, BrokerAddress(port=port, username=n, password=pw),
                                             heartbeat_s=2.0)
                await asyncio.gather(*(u.start() for u in stack.units.values()))
                try:
                    async with stack.admin() as admin:
                        await wait_online(admin, list(stack.units))
                    yield stack
                finally:
                    await asyncio.gather(*(u.stop() for u in stack.units.values()))
        finally:
            if broker.returncode is None:
                broker.terminate()
                try:
                    await asyncio.wait_for(broker.wait(), 10)
                except TimeoutError:
                    broker.kill()
                    await asyncio.wait_for(broker.wait(), 10)


@asynccontextmanager
async def attacker_site(html: str) -> AsyncIterator[str]:
    """Another web origin on 127.0.0.1 (its own port) that serves one page: ``html``."""
    body = html.encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                             b"Cache-Control: no-store\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
