"""A ward on the broker exactly as ``loaphuong mqtt-config`` configures it (issue 11, broker side).

:func:`secure_ward` provisions units over the API, runs ``loaphuong mqtt-config`` (plain listener
and TLS listener, both on 127.0.0.1 and free ports), starts the real Mosquitto with the generated
``mosquitto.conf`` *as is* (:func:`tests.security.ward.mosquitto`); :func:`controller` serves the
real app over HTTP with the controller's own account.
Helpers: which sockets a process listens on (``/proc/net/tcp{,6}``), a raw MQTT CONNECT, and
attacker clients with a unit's real password.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.core.tls import self_signed
from controller.settings import Settings
from devices.broker import free_port
from devices.mqtt import AsyncMqttClient, BrokerAddress
from devices.security import broker_gid
from firmware_sim.node import SimNode
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import wait_for
from tests.e2e.serve import serving
from tests.security.ward import add_units, broker_dir, controller_env, mosquitto
from tests.security.ward import mqtt_config as ward_mqtt_config


@dataclass
class Ward:
    """The running ward: broker process, its files, the controller app and an HTTP client."""

    dir: Path
    port: int
    tls_port: int
    cert: Path
    settings: Settings
    passwords: dict[str, str]
    proc: subprocess.Popen[bytes]
    app: Any = None
    http: httpx.AsyncClient | None = None
    clients: list[AsyncMqttClient] = field(default_factory=list)
    nodes: list[SimNode] = field(default_factory=list)

    def address(self, user: str | None, *, tls: bool = False, password: str | None = None) -> BrokerAddress:
        return BrokerAddress(port=self.tls_port if tls else self.port, username=user,
                             password=password if password is not None else self.passwords.get(user or ""),
                             tls=tls, ca_file=str(self.cert) if tls else None)

    def client(self, user: str, client_id: str, *, tls: bool = False) -> AsyncMqttClient:
        c = AsyncMqttClient(client_id, self.address(user, tls=tls), log_failures=False,
                            min_backoff=0.2, max_backoff=1.0)
        self.clients.append(c)
        return c

    async def unit(self, node_id: str, **kw: Any) -> SimNode:
        node = SimNode(node_id, self.address(node_id), heartbeat_s=kw.pop("heartbeat_s", 2.0),
                       time_scale=kw.pop("time_scale", 0.05), **kw)
        self.nodes.append(node)
        await node.start()
        return node

    @property
    def link(self) -> Any:
        return self.app.state.services.link

    @property
    def api(self) -> httpx.AsyncClient:
        assert self.http is not None
        return self.http


def tls_files(d: Path) -> tuple[Path, Path]:
    cert, key = self_signed(d / "tls", ["localhost", "127.0.0.1"])
    gid = broker_gid()
    os.chmod(d / "tls", 0o755)
    if gid is not None:  # Mosquitto reads the key as its own user
        os.chown(key, -1, gid)
        os.chmod(key, 0o640)
    return cert, key


def mqtt_config(d: Path, data_dir: Path, port: int, tls_port: int, *extra: str) -> int:
    """``loaphuong mqtt-config`` into ``d``/mqtt with the plain and the TLS listener (:func:`tls_files`)."""
    cert, key = d / "tls" / "cert.pem", d / "tls" / "key.pem"
    return ward_mqtt_config(d / "mqtt", data_dir, port, "--tls-port", str(tls_port), "--tls-bind",
                            "127.0.0.1", "--certfile", str(cert), "--keyfile", str(key), *extra)


@asynccontextmanager
async def secure_ward(tmp_path: Path, zones: dict[str, list[str]], *,
                      gateways: dict[str, list[str]] | None = None,
                      monkeypatch: pytest.MonkeyPatch | None = None) -> AsyncIterator[Ward]:
    data = tmp_path / "data"
    settings = make_settings(data, free_port())
    if gateways:
        settings = settings.model_copy(update={"gateways": gateways})
    async with running_controller(settings) as (_, client):  # provisioning needs no broker
        passwords = await add_units(client, zones)
    with broker_dir() as d:
        cert, _ = tls_files(d)
        port, tls_port = free_port(), free_port()
        if gateways:  # mqtt-config reads the provisioning from the environment
            assert monkeypatch is not None
            monkeypatch.setenv("LOAPHUONG_GATEWAYS", json.dumps(gateways))
        assert mqtt_config(d, data, port, tls_port) == 0
        env = controller_env(d / "mqtt")
        with mosquitto(d / "mqtt" / "mosquitto.conf", (port, tls_port)) as proc:
            mqtt = settings.mqtt.model_copy(update={
                "port": port, "username": env["LOAPHUONG_MQTT__USERNAME"],
                "password": env["LOAPHUONG_MQTT__PASSWORD"]})
            ward = Ward(d, port, tls_port, cert, settings.model_copy(update={"mqtt": mqtt}), passwords, proc)
            yield ward
            await asyncio.gather(*(c.stop() for c in ward.clients), *(n.stop() for n in ward.nodes))


@asynccontextmanager
async def controller(ward: Ward) -> AsyncIterator[Ward]:
    """The real app over real HTTP (uvicorn in this loop), logged in to the broker as itself."""
    async with serving(ward.settings) as (app, addr):
        async with httpx.AsyncClient(base_url=f"http://{addr}", auth=ADMIN, timeout=30) as http:
            ward.app, ward.http = app, http
            await wait_for(lambda: app.state.services.link.connected, 10, "controller connected")
            try:
                yield ward
            finally:
                ward.app, ward.http = None, None


# --------------------------------------------------------------------------- sockets


def _inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            out.add(m.group(1))
    return out


def _addr(hex_addr: str) -> tuple[str, int]:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # /proc prints the IPv6 address as four host-order 32-bit words
        ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return ip, int(port, 16)


def listening(pid: int) -> set[tuple[str, int]]:
    """Every TCP (IPv4 and IPv6) address:port the process ``pid`` listens on."""
    inodes = _inodes(pid)
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                found.add(_addr(cols[1]))
    return found


@contextmanager
def port_1883_taken() -> Iterator[None]:
    """Make sure something listens on 127.0.0.1:1883 (another broker, as on the issue's machine)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 1883))
        s.listen()
    except OSError:
        pass  # already taken (this machine runs a broker there)
    try:
        yield
    finally:
        s.close()


# --------------------------------------------------------------------------- raw MQTT


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def raw_connect(port: int, user: str, password: str, client_id: str) -> socket.socket:
    """A TCP connection that has sent an MQTT 3.1.1 CONNECT and got CONNACK 0 (accepted)."""
    body = _utf8("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 60) + _utf8(client_id) + _utf8(user) \
        + _utf8(password)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"\x10" + remaining_length(len(body)) + body)
    ack = s.recv(4)
    assert ack[:1] == b"\x20" and ack[3:4] == b"\x00", f"CONNACK {ack!r}"
    return s


def closed_by_peer(s: socket.socket, timeout: float) -> bool:
    """True once the peer has closed (or reset) the connection, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    s.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if s.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False
