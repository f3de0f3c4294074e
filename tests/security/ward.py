"""The attack suite's deployment (issue 11): Mosquitto run from the files ``loaphuong mqtt-config``
writes, the controller on it with the account that command generated (served over real HTTP by
:func:`tests.e2e.serve.serving`), two wards built through the API, and simulated units.

- :func:`generated_broker`: mqtt-config for a data directory, then Mosquitto on exactly that
  configuration (plain listener on 127.0.0.1; ``extra`` arguments for more, e.g. TLS);
  :func:`on_broker` points settings at it with the controller's generated account.
- :func:`two_wards`: org units hn → wa, wb; zone za (ward A, unit za-1) and zb (ward B, unit zb-1);
  the given users. :func:`on_air`: those wards, the controller over HTTP on the generated broker
  and the units online.
- :func:`units_online`: simulated units logged in with their own broker passwords.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from controller.cli.loaphuong import main as cli_main
from controller.fleet.broker_accounts import CONTROLLER_ENV
from controller.live.settings import LiveSettings
from controller.settings import Settings
from devices.broker import free_port, mosquitto_path, wait_port
from devices.mqtt import BrokerAddress
from firmware_sim.node import SimNode
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import wait_online
from tests.e2e.serve import serving

# --------------------------------------------------------------------------- the broker


@contextmanager
def broker_dir() -> Iterator[Path]:
    """A directory Mosquitto can enter after it drops root (pytest's tmp_path is private)."""
    with tempfile.TemporaryDirectory(prefix="lp-attack-") as tmp:
        os.chmod(tmp, 0o755)
        yield Path(tmp)


def mqtt_config(out: Path, data_dir: Path, port: int, *extra: str) -> int:
    """``loaphuong mqtt-config`` for ``data_dir``'s database, plain listener on 127.0.0.1:``port``."""
    return cli_main(["mqtt-config", "--out", str(out), "--data-dir", str(data_dir), "--port", str(port),
                     "--bind", "127.0.0.1", *extra])


def controller_env(out: Path) -> dict[str, str]:
    """The controller's account as mqtt-config wrote it (``controller.env``)."""
    lines = (out / CONTROLLER_ENV).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


class PortTaken(Exception):
    """Another test's process took the free port between ``free_port()`` and Mosquitto binding it."""


@contextmanager
def mosquitto(conf: Path, ports: tuple[int, ...]) -> Iterator[subprocess.Popen[bytes]]:
    """Mosquitto started with the generated configuration file, unchanged, listening on ``ports``
    (its log next to the mqtt-config output directory)."""
    exe = mosquitto_path()
    if exe is None:
        pytest.fail("mosquitto is not installed; tests/run.sh installs it (apt-get install mosquitto)")
    log = conf.parent.parent / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        for port in ports:
            if not wait_port("127.0.0.1", port, 10):
                text = log.read_text()[-2000:]
                if "Address already in use" in text:
                    raise PortTaken(port)
                raise AssertionError(f"mosquitto did not listen on {port}: {text}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass(frozen=True)
class Broker:
    """The running generated broker and the controller's account on it."""

    port: int
    username: str
    password: str
    out: Path  # the mqtt-config output (passwd, acl, mosquitto.conf, controller.env)
    proc: subprocess.Popen[bytes]


@contextmanager
def generated_broker(data_dir: Path, *extra: str) -> Iterator[Broker]:
    """Mosquitto on the configuration ``loaphuong mqtt-config`` writes for ``data_dir``'s database."""
    for attempt in range(3):  # a port taken by a parallel test in the meantime: another port
        port = free_port()
        with broker_dir() as d, ExitStack() as stack:
            out = d / "mqtt"
            assert mqtt_config(out, data_dir, port, *extra) == 0, "loaphuong mqtt-config failed"
            env = controller_env(out)
            try:
                proc = stack.enter_context(mosquitto(out / "mosquitto.conf", (port,)))
            except PortTaken:
                if attempt == 2:
                    raise
                continue
            yield Broker(port, env["LOAPHUONG_MQTT__USERNAME"], env["LOAPHUONG_MQTT__PASSWORD"], out, proc)
            return


def on_broker(settings: Settings, broker: Broker, **update: Any) -> Settings:
    """``settings`` on the generated broker, logged in with the controller's account (and ``update``)."""
    mqtt = settings.mqtt.model_copy(update={"port": broker.port, "username": broker.username,
                                            "password": broker.password})
    return settings.model_copy(update={"mqtt": mqtt, **update})


# --------------------------------------------------------------------------- units


@asynccontextmanager
async def units_online(url: str, port: int, passwords: dict[str, str],
                       ) -> AsyncIterator[dict[str, SimNode]]:
    """Simulated units, each logged in with its own broker password, online at ``url``."""
    sims = {u: SimNode(u, BrokerAddress(port=port, username=u, password=pw), heartbeat_s=2.0)
            for u, pw in passwords.items()}
    await asyncio.gather(*(n.start() for n in sims.values()))
    try:
        if sims:
            async with httpx.AsyncClient(base_url=url, auth=ADMIN, timeout=30) as admin:
                await wait_online(admin, list(sims))
        yield sims
    finally:
        await asyncio.gather(*(n.stop() for n in sims.values()))


async def add_units(api: httpx.AsyncClient, zones: dict[str, list[str]], **kw: Any) -> dict[str, str]:
    """Zones (no org unit) with their units; each unit's broker password (shown once)."""
    passwords = {}
    for zone, ids in zones.items():
        r = await api.post("/api/zones", json={"id": zone, "name": zone}, **kw)
        assert r.status_code == 201, r.text
        for node_id in ids:
            r = await api.post("/api/nodes", json={"id": node_id, "zones": [zone]}, **kw)
            assert r.status_code == 201, r.text
            passwords[node_id] = str(r.json()["mqtt"]["password"])
    return passwords


# --------------------------------------------------------------------------- two wards

ORG_UNITS = (("hn", None), ("wa", "hn"), ("wb", "hn"))
ZONES = {"za": ("wa", "za-1"), "zb": ("wb", "zb-1")}  # zone → (its ward, its unit)


@dataclass
class World:
    passwords: dict[str, str] = field(default_factory=dict)  # user name → password
    units: dict[str, str] = field(default_factory=dict)  # unit id → its broker password
    bulletins: dict[tuple[str, str], int] = field(default_factory=dict)  # (ward, approval) → id
    approved: dict[str, int] = field(default_factory=dict)  # ward → its approved bulletin

    def auth(self, user: str) -> tuple[str, str]:
        return user, self.passwords[user]


def ok(r: httpx.Response, code: int = 201) -> Any:
    assert r.status_code == code, r.text
    return r.json()


async def org_units(admin: httpx.AsyncClient, **kw: Any) -> None:
    """Province ``hn`` with wards ``wa`` and ``wb``."""
    for org, parent in ORG_UNITS:
        ok(await admin.post("/api/org-units", json={"id": org, "name": f"Đơn vị {org}", "parent_id": parent},
                            **kw))


async def two_wards(admin: httpx.AsyncClient, users: dict[str, tuple[str, str]],
                    auth: tuple[str, str] | None = None) -> World:
    """The two wards through the API as the province admin: org units, zones and units, and
    ``users`` (name → (role, org unit)); ``auth``: the admin's, when the client carries none."""
    kw: dict[str, Any] = {"auth": auth} if auth else {}
    w = World()
    await org_units(admin, **kw)
    for zone, (org, unit) in ZONES.items():
        ok(await admin.post("/api/zones", json={"id": zone, "name": zone, "org_unit_id": org}, **kw))
        made = ok(await admin.post("/api/nodes", json={"id": unit, "zones": [zone]}, **kw))
        w.units[unit] = str(made["mqtt"]["password"])
    for name, (role, org) in users.items():
        made = ok(await admin.post("/api/users", json={"username": name, "role": role, "org_unit_id": org},
                                   **kw))
        w.passwords[name] = str(made["password"])
    return w


@asynccontextmanager
async def on_air(tmp_path: Path, provision: Callable[[httpx.AsyncClient], Awaitable[World]], *,
                 lead_s: float = 600.0, units: bool = True,
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, World, dict[str, SimNode], FastAPI]]:
    """The wards ``provision`` builds (in-process, no broker needed); then the controller over real
    HTTP on the generated Mosquitto with schedules leading by ``lead_s``, and the units online.
    Yields the province admin's client, the world, the units and the app."""
    settings = make_settings(tmp_path, free_port())
    async with running_controller(settings) as (_, admin):
        world = await provision(admin)
    with generated_broker(tmp_path) as broker:
        schedule = settings.schedule.model_copy(update={"lead_s": lead_s})
        async with serving(on_broker(settings, broker, schedule=schedule)) as (app, addr):
            url = f"http://{addr}"
            async with units_online(url, broker.port, world.units if units else {}) as sims, \
                    httpx.AsyncClient(base_url=url, auth=ADMIN, timeout=60) as admin:
                yield admin, world, sims, app


# the airing attacks (items 2, 11): every role in ward A, the authors and approvers of ward B; in
# each ward one bulletin in every approval state
STATES = ("approved", "submitted", "draft", "rejected")
AIRING_USERS = {
    "adm_a": ("admin", "wa"), "ed_a": ("editor", "wa"), "ap_a": ("approver", "wa"),
    "op_a": ("operator", "wa"), "ap_b": ("approver", "wb"), "ed_b": ("editor", "wb"),
}
WARD_A = ("adm_a", "ed_a", "ap_a", "op_a")


async def airing_world(admin: httpx.AsyncClient) -> World:
    w = await two_wards(admin, AIRING_USERS)

    async def write(ward: str, state: str) -> None:  # (rendered concurrently)
        ap: dict[str, Any] = {"auth": w.auth(f"ap_{ward[-1]}")}
        ed: dict[str, Any] = {"auth": w.auth(f"ed_{ward[-1]}")}
        who = ap if state == "approved" else ed
        b = ok(await admin.post("/api/bulletins", json={"text": f"Bản tin {state} của {ward}."}, **who))
        bid = int(b["id"])
        assert b["approval"] == ("approved" if state == "approved" else "draft"), b
        if state in ("submitted", "rejected"):
            ok(await admin.post(f"/api/bulletins/{bid}/submit", **ed), 200)
        if state == "rejected":
            ok(await admin.post(f"/api/bulletins/{bid}/reject", json={"note": "sai"}, **ap), 200)
        w.bulletins[(ward, state)] = bid

    await asyncio.gather(*(write(ward, state) for ward in ("wa", "wb") for state in STATES))
    return w


# the approval-binding attacks (items 4, 14, 22): an editor, an approver and an operator in each
# ward, an editor of the province; in each ward one approved bulletin about "tiêm phòng"
BINDING_USERS = {
    "ed_a": ("editor", "wa"), "ap_a": ("approver", "wa"), "op_a": ("operator", "wa"),
    "adm_a": ("admin", "wa"),
    "ed_b": ("editor", "wb"), "ap_b": ("approver", "wb"), "op_b": ("operator", "wb"),
    "ed_hn": ("editor", "hn"),
}
TEXT = "Thông báo của {ward}: sáng mai phường tổ chức tiêm phòng tại nhà văn hóa."


async def approved_bulletin(api: httpx.AsyncClient, w: World, ward: str, text: str) -> int:
    """Written by the ward's editor, submitted, approved by the ward's approver."""
    b = ok(await api.post("/api/bulletins", json={"text": text}, auth=w.auth(f"ed_{ward[-1]}")))
    ok(await api.post(f"/api/bulletins/{b['id']}/submit", auth=w.auth(f"ed_{ward[-1]}")), 200)
    ok(await api.post(f"/api/bulletins/{b['id']}/approve", auth=w.auth(f"ap_{ward[-1]}"),
                      json={"audio_sha256": b["audio"]["sha256"]}), 200)
    return int(b["id"])


async def binding_world(admin: httpx.AsyncClient, auth: tuple[str, str] | None = None) -> World:
    w = await two_wards(admin, BINDING_USERS, auth)
    for ward in ("wa", "wb"):
        w.approved[ward] = await approved_bulletin(admin, w, ward, TEXT.format(ward=ward))
    return w


# --------------------------------------------------------------------------- clients from other addresses
# The whole 127.0.0.0/8 is local on Linux, so a client bound to 127.0.0.2 is another address to the
# controller (all traffic still goes to 127.0.0.1).


def settings_for(broker: Broker, data_dir: Path, **update: Any) -> Settings:
    """A controller of its own (``data_dir``) on the shared ``broker`` (``update``: login=, http=...)."""
    return on_broker(make_settings(data_dir, broker.port), broker, **update)


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


# --------------------------------------------------------------------------- one ward, units online


class HandshakeRecorder:
    """ASGI wrapper that keeps the headers of every WebSocket handshake (what the browser sent)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.handshakes: list[dict[str, str]] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
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


@asynccontextmanager
async def secure_stack(zones: dict[str, list[str]], *, live: LiveSettings | None = None,
                       record: bool = False) -> AsyncIterator[Stack]:
    """Zones and units (no org unit), Mosquitto with the generated config, the controller over
    HTTP and the units online; ``record``: keep the WebSocket handshakes (``Stack.recorder``)."""
    recorders: list[HandshakeRecorder] = []

    def recording(app: FastAPI) -> HandshakeRecorder:
        recorders.append(HandshakeRecorder(app))
        return recorders[-1]

    with tempfile.TemporaryDirectory(prefix="lp-stack-") as tmp:
        settings = make_settings(Path(tmp), free_port())
        async with running_controller(settings) as (_, api):  # provisioning needs no broker
            passwords = await add_units(api, zones)
        with generated_broker(Path(tmp)) as broker:
            served = on_broker(settings, broker, live=live or LiveSettings())
            async with serving(served, wrap=recording if record else None) as (app, addr):
                stack = Stack(app, addr, broker.port, recorder=recorders[0] if record else None)
                async with units_online(stack.url, broker.port, passwords) as stack.units:
                    yield stack
