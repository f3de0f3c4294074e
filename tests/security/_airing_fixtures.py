"""Two wards for the airing attacks (issue 11 items 2 and 11): org units hn → wa, wb; zones za
(ward A) and zb (ward B) with one unit each; users of every role in ward A and an approver and
an editor in ward B; in each ward one bulletin in every approval state.

``provision`` runs against the in-process app (no broker needed); ``generated_broker`` then
writes the broker files with ``loaphuong mqtt-config`` and runs Mosquitto on exactly that
configuration, so the controller and the units log in with their own accounts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from controller.cli import main as cli_main
from devices.broker import free_port, mosquitto_path

STATES = ("approved", "submitted", "draft", "rejected")
# user name → (role, org unit); every role in ward A, the authors and approvers of ward B
USERS = {
    "adm_a": ("admin", "wa"), "ed_a": ("editor", "wa"), "ap_a": ("approver", "wa"),
    "op_a": ("operator", "wa"), "ap_b": ("approver", "wb"), "ed_b": ("editor", "wb"),
}
WARD_A = ("adm_a", "ed_a", "ap_a", "op_a")
ZONES = {"za": ("wa", "za-1"), "zb": ("wb", "zb-1")}


@dataclass
class World:
    passwords: dict[str, str] = field(default_factory=dict)  # user name → password
    units: dict[str, str] = field(default_factory=dict)  # unit id → its broker password
    bulletins: dict[tuple[str, str], int] = field(default_factory=dict)  # (ward, approval) → id

    def auth(self, user: str) -> tuple[str, str]:
        return user, self.passwords[user]


def _ok(r: httpx.Response, code: int = 201) -> dict[str, object]:
    assert r.status_code == code, r.text
    body: dict[str, object] = r.json()
    return body


async def provision(admin: httpx.AsyncClient) -> World:
    """Build the two wards through the API (``admin``: the province admin, no org unit)."""
    w = World()
    for org, parent in (("hn", None), ("wa", "hn"), ("wb", "hn")):
        body = {"id": org, "name": f"Đơn vị {org}", "parent_id": parent}
        _ok(await admin.post("/api/org-units", json=body))
    for zone, (org, unit) in ZONES.items():
        _ok(await admin.post("/api/zones", json={"id": zone, "name": zone, "org_unit_id": org}))
        made = _ok(await admin.post("/api/nodes", json={"id": unit, "zones": [zone]}))
        w.units[unit] = str(made["mqtt"]["password"])  # type: ignore[index]
    for name, (role, org) in USERS.items():
        made = _ok(await admin.post("/api/users", json={"username": name, "role": role, "org_unit_id": org}))
        w.passwords[name] = str(made["password"])
    await asyncio.gather(*(_bulletins(admin, w, ward, approver, editor)
                           for ward, approver, editor in (("wa", "ap_a", "ed_a"), ("wb", "ap_b", "ed_b"))))
    return w


async def _bulletins(admin: httpx.AsyncClient, w: World, ward: str, approver: str, editor: str) -> None:
    """One bulletin of the ward in each approval state (rendered concurrently)."""
    ap, ed = {"auth": w.auth(approver)}, {"auth": w.auth(editor)}

    async def write(state: str) -> None:
        who = ap if state == "approved" else ed
        b = _ok(await admin.post("/api/bulletins", json={"text": f"Bản tin {state} của {ward}."}, **who))
        bid = int(b["id"])  # type: ignore[call-overload]
        assert b["approval"] == ("approved" if state == "approved" else "draft"), b
        if state in ("submitted", "rejected"):
            _ok(await admin.post(f"/api/bulletins/{bid}/submit", **ed), 200)
        if state == "rejected":
            _ok(await admin.post(f"/api/bulletins/{bid}/reject", json={"note": "sai"}, **ap), 200)
        w.bulletins[(ward, state)] = bid

    await asyncio.gather(*(write(state) for state in STATES))


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def generated_broker(data_dir: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Mosquitto on the configuration ``loaphuong mqtt-config`` writes for ``data_dir``'s
    database (plain listener on 127.0.0.1 only); yields its port and the controller's env."""
    exe = mosquitto_path()
    assert exe is not None, "mosquitto is not installed; tests/run.sh installs it"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lp-airing-") as tmp:
        os.chmod(tmp, 0o755)  # the broker may drop to its own user and must read the files
        out = Path(tmp) / "mqtt"
        args = ["mqtt-config", "--out", str(out), "--data-dir", str(data_dir), "--port", str(port),
                "--bind", "127.0.0.1"]
        assert cli_main(args) == 0
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
