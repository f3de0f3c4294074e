"""A deployment for the login / request-limit attacks (issue 11 items 7, 8, 16-19): Mosquitto
started with the files ``loaphuong mqtt-config`` writes, and the real app served by uvicorn
with the options ``loaphuong serve`` gives it (forwarded headers only from configured proxies).

Clients can come from several addresses: the whole 127.0.0.0/8 is local on Linux, so a client
bound to 127.0.0.2 is another address to the controller (all traffic still goes to 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from controller.app import create_app
from controller.mqtt_accounts import CONTROLLER_ENV
from controller.mqtt_accounts import main as mqtt_config
from controller.settings import MqttSettings, Settings
from controller.web_settings import HttpSettings, LoginSettings, uvicorn_proxy_options
from devices.broker import free_port, mosquitto_path, wait_port
from tests.conftest import ADMIN


@dataclass(frozen=True)
class Broker:
    port: int
    username: str
    password: str


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[Broker]:
    """Mosquitto with the generated config (no anonymous clients, the generated ACL)."""
    exe = mosquitto_path()
    if exe is None:
        pytest.fail("mosquitto is not installed; tests/run.sh installs it (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory(prefix="lp-sec-d1-") as tmp:
        os.chmod(tmp, 0o755)  # the broker drops to its own user before it reads passwd / acl
        data, out, port = Path(tmp) / "data", Path(tmp) / "mqtt", free_port()
        data.mkdir()
        assert mqtt_config(["--out", str(out), "--data-dir", str(data), "--port", str(port),
                            "--bind", "127.0.0.1"]) == 0
        lines = (out / CONTROLLER_ENV).read_text().splitlines()
        env = dict(line.split("=", 1) for line in lines if "=" in line)
        proc = subprocess.Popen([exe, "-c", str(out / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            assert wait_port("127.0.0.1", port), "mosquitto did not start with the generated config"
            yield Broker(port, env["LOAPHUONG_MQTT__USERNAME"], env["LOAPHUONG_MQTT__PASSWORD"])
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def settings_for(broker: Broker, data_dir: Path, *, login: LoginSettings | None = None,
                 http: HttpSettings | None = None, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, admin_password=ADMIN[1],
                    mqtt=MqttSettings(port=broker.port, username=broker.username,  # type: ignore[call-arg]
                                      password=broker.password),
                    login=login or LoginSettings(),  # type: ignore[call-arg]
                    http=http or HttpSettings(), **extra)  # type: ignore[call-arg]


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[Any, str]]:
    """The app over real HTTP, configured as ``loaphuong serve`` configures uvicorn."""
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           **uvicorn_proxy_options(settings.http)))
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


def client(addr: str, source: str = "127.0.0.1", **kw: Any) -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``source`` (an address of 127.0.0.0/8)."""
    return httpx.AsyncClient(base_url=f"http://{addr}", timeout=30,
                             transport=httpx.AsyncHTTPTransport(local_address=source), **kw)


async def add_user(addr: str, name: str, role: str = "editor") -> str:
    async with client(addr, auth=ADMIN) as admin:
        r = await admin.post("/api/users", json={"username": name, "role": role, "org_unit_id": None})
        assert r.status_code == 201, r.text
        return str(r.json()["password"])


async def audit_rows(addr: str, action: str) -> list[dict[str, Any]]:
    async with client(addr, "127.0.0.9", auth=ADMIN) as admin:
        r = await admin.get("/api/audit", params={"limit": 2000})
        assert r.status_code == 200, r.text
        return [a for a in r.json() if a["action"] == action]
