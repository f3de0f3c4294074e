"""Two wards for the approval-binding attacks (issue 11 items 4, 14, 22): org units hn → wa, wb;
zones za (ward A, unit za-1) and zb (ward B, unit zb-1); an editor, an approver and an operator
in each ward, an editor of the province; in each ward one approved bulletin about "tiêm phòng".

``provision`` runs against the in-process app; ``generated_broker`` writes the broker files with
``loaphuong mqtt-config`` and runs Mosquitto on exactly that configuration; ``ward_world``
serves the controller over real HTTP against it, with the two simulated units logged in.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from controller.cli import main as cli_main
from devices.broker import free_port, mosquitto_path
from devices.mqtt import BrokerAddress
from firmware_sim.node import SimNode
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import wait_online
from tests.e2e.serve import serving

USERS = {
    "ed_a": ("editor", "wa"), "ap_a": ("approver", "wa"), "op_a": ("operator", "wa"),
    "adm_a": ("admin", "wa"),
    "ed_b": ("editor", "wb"), "ap_b": ("approver", "wb"), "op_b": ("operator", "wb"),
    "ed_hn": ("editor", "hn"),
}
ZONES = {"za": ("wa", "za-1"), "zb": ("wb", "zb-1")}
TEXT = "Thông báo của {ward}: sáng mai phường tổ chức tiêm phòng tại nhà văn hóa."


@dataclass
class World:
    passwords: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)  # unit id → its broker password
    approved: dict[str, int] = field(default_factory=dict)  # ward → its approved bulletin

    def auth(self, user: str) -> tuple[str, str]:
        return user, self.passwords[user]


def ok(r: httpx.Response, code: int = 201) -> Any:
    assert r.status_code == code, r.text
    return r.json()


async def approved_bulletin(api: httpx.AsyncClient, w: World, ward: str, text: str) -> int:
    """Written by the ward's editor, submitted, approved by the ward's approver."""
    w_ = ward[-1]
    b = ok(await api.post("/api/bulletins", json={"text": text}, auth=w.auth(f"ed_{w_}")))
    ok(await api.post(f"/api/bulletins/{b['id']}/submit", auth=w.auth(f"ed_{w_}")), 200)
    ok(await api.post(f"/api/bulletins/{b['id']}/approve", auth=w.auth(f"ap_{w_}"),
                      json={"audio_sha256": b["audio"]["sha256"]}), 200)
    return int(b["id"])


async def provision(admin: httpx.AsyncClient, auth: tuple[str, str] | None = None) -> World:
    """Build the two wards through the API as the province admin (``auth``: theirs, when the
    client carries none)."""
    kw: dict[str, Any] = {"auth": auth} if auth else {}
    w = World()
    for org, parent in (("hn", None), ("wa", "hn"), ("wb", "hn")):
        ok(await admin.post("/api/org-units", json={"id": org, "name": f"Đơn vị {org}", "parent_id": parent},
                            **kw))
    for zone, (org, unit) in ZONES.items():
        ok(await admin.post("/api/zones", json={"id": zone, "name": zone, "org_unit_id": org}, **kw))
        made = ok(await admin.post("/api/nodes", json={"id": unit, "zones": [zone]}, **kw))
        w.units[unit] = str(made["mqtt"]["password"])
    for name, (role, org) in USERS.items():
        made = ok(await admin.post("/api/users", json={"username": name, "role": role, "org_unit_id": org},
                                   **kw))
        w.passwords[name] = str(made["password"])
    for ward in ("wa", "wb"):
        w.approved[ward] = await approved_bulletin(admin, w, ward, TEXT.format(ward=ward))
    return w


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def generated_broker(data_dir: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Mosquitto on the configuration ``loaphuong mqtt-config`` writes for ``data_dir``'s database."""
    exe = mosquitto_path()
    assert exe is not None, "mosquitto is not installed; tests/run.sh installs it"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lp-binding-") as tmp:
        os.chmod(tmp, 0o755)  # the broker may drop to its own user and must read the files
        out = Path(tmp) / "mqtt"
        assert cli_main(["mqtt-config", "--out", str(out), "--data-dir", str(data_dir), "--port", str(port),
                         "--bind", "127.0.0.1"]) == 0
        env = dict(line.split("=", 1) for line in (out / "controller.env").read_text().splitlines())
        log = Path(tmp) / "broker.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen([exe, "-c", str(out / "mosquitto.conf")], stdout=sink, stderr=sink)
        try:
            deadline = time.monotonic() + 10
            while not _listening(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mosquitto did not start: {log.read_text()[-2000:]}")
                time.sleep(0.05)
            yield port, env
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@asynccontextmanager
async def ward_world(tmp_path: Path, *, lead_s: float = 600.0, units: bool = True,
                     ) -> AsyncIterator[tuple[httpx.AsyncClient, World, dict[str, SimNode], FastAPI]]:
    """The two wards; the controller over real HTTP on the generated Mosquitto, units online."""
    settings = make_settings(tmp_path, free_port())
    async with running_controller(settings) as (_, admin):  # provisioning needs no broker
        world = await provision(admin)
    with generated_broker(tmp_path) as (port, env):
        mqtt = settings.mqtt.model_copy(update={"port": port, "username": env["LOAPHUONG_MQTT__USERNAME"],
                                                "password": env["LOAPHUONG_MQTT__PASSWORD"]})
        schedule = settings.schedule.model_copy(update={"lead_s": lead_s})
        live = settings.model_copy(update={"mqtt": mqtt, "schedule": schedule})
        async with serving(live) as (app, addr):
            sims = {u: SimNode(u, BrokerAddress(port=port, password=pw), heartbeat_s=2)
                    for u, pw in world.units.items()} if units else {}
            await asyncio.gather(*(n.start() for n in sims.values()))
            try:
                async with httpx.AsyncClient(base_url=f"http://{addr}", auth=ADMIN, timeout=60) as admin:
                    if sims:
                        await wait_online(admin, list(sims))
                    yield admin, world, sims, app
            finally:
                await asyncio.gather(*(n.stop() for n in sims.values()))
