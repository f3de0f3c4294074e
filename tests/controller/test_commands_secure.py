"""The ward on a locked-down Mosquitto: credentials issued per unit, ``loaphuong mqtt-config``,
and the controller and units working with their own accounts only."""

from __future__ import annotations

import asyncio
import csv
import os
import stat
import tempfile
from pathlib import Path

import pytest
from sqlmodel import select

from controller.cli.loaphuong import main as cli_main
from controller.fleet.models import NodeCredential
from devices import security as sec
from devices.broker import BrokerProcess, free_port
from devices.mqtt import BrokerAddress
from firmware_sim.faults import Faults
from firmware_sim.node import SimNode
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


async def test_issued_credentials_mqtt_config_and_a_working_locked_down_ward(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, free_port())  # no broker yet: provisioning needs none
    passwords: dict[str, str] = {}
    async with running_controller(settings) as (app, client):
        for zone, ids in {"z1": ["s-1", "s-2"], "z2": ["s-3", "liar-1"]}.items():
            assert (await client.post("/api/zones", json={"id": zone, "name": zone})).status_code == 201
            for node_id in ids:
                r = await client.post("/api/nodes", json={"id": node_id, "zones": [zone]})
                assert r.status_code == 201, r.text
                creds = r.json()["mqtt"]
                assert creds["username"] == node_id and len(creds["password"]) >= 20
                passwords[node_id] = creds["password"]
        first = passwords["s-3"]
        r = await client.post("/api/nodes/s-3/credentials")
        assert r.status_code == 201 and r.json()["password"] != first
        passwords["s-3"] = r.json()["password"]
        assert (await client.post("/api/nodes/nope/credentials")).status_code == 404
        with app.state.services.db.session() as s:
            stored = {c.node_id: c.password_hash for c in s.exec(select(NodeCredential))}
    assert set(stored) == {"s-1", "s-2", "s-3", "liar-1"}
    for node_id, h in stored.items():  # only hashes are kept, and they match what was shown once
        assert passwords[node_id] not in h and sec.verify_mosquitto_hash(passwords[node_id], h)
    assert not sec.verify_mosquitto_hash(first, stored["s-3"])

    with tempfile.TemporaryDirectory(prefix="lp-sec-") as tmp:
        os.chmod(tmp, 0o755)
        out = Path(tmp) / "mqtt"
        assert cli_main(["mqtt-config", "--out", str(out), "--data-dir", str(tmp_path)]) == 0
        assert {p.name for p in out.iterdir()} == {"passwd", "acl", "mosquitto.conf", "controller.env"}
        assert stat.S_IMODE((out / "controller.env").stat().st_mode) == 0o600
        passwd = (out / "passwd").read_text()
        assert all(pw not in passwd for pw in passwords.values())
        env = dict(line.split("=", 1) for line in (out / "controller.env").read_text().splitlines())
        # running it again keeps the controller's password (no surprise rotation)
        assert cli_main(["mqtt-config", "--out", str(out), "--data-dir", str(tmp_path)]) == 0
        assert dict(line.split("=", 1) for line in (out / "controller.env").read_text().splitlines()) == env

        conf = [line for line in (out / "mosquitto.conf").read_text().splitlines()
                if not line.startswith(("listener", "per_listener_settings"))]
        with BrokerProcess("mosquitto", conf_extra="\n".join(conf)) as broker:
            mqtt = settings.mqtt.model_copy(update={
                "port": broker.port, "username": env["LOAPHUONG_MQTT__USERNAME"],
                "password": env["LOAPHUONG_MQTT__PASSWORD"]})
            async with running_controller(settings.model_copy(update={"mqtt": mqtt})) as (app, client):
                honest = {n: pw for n, pw in passwords.items() if n != "liar-1"}
                nodes = [SimNode(n, BrokerAddress(port=broker.port, password=pw), heartbeat_s=5)
                         for n, pw in honest.items()]
                impostor = SimNode("s-2", BrokerAddress(port=broker.port, password="guessed"), heartbeat_s=5)
                # a unit with valid credentials of its own that claims to be s-1
                liar = SimNode("liar-1", BrokerAddress(port=broker.port, password=passwords["liar-1"]),
                               heartbeat_s=1, faults=Faults(claim_id="s-1"))
                await asyncio.gather(*(n.start() for n in nodes))
                await impostor.start(wait=False)
                await liar.start(wait=False)
                try:
                    await wait_online(client, list(honest))
                    await wait_for(lambda: all(n.groups_subscribed == set(n.config.groups)  # type: ignore[union-attr]
                                               for n in nodes if n.config), 10, "groups")
                    r = await client.post("/api/zones/z1/commands", json={"name": "ping"})
                    statuses = {x["node_id"]: x["status"] for x in r.json()["results"]}
                    assert statuses == {"s-1": "ok", "s-2": "ok"}
                    r = await client.post("/api/zones/all/commands", json={"name": "ping"})
                    assert r.json()["tally"] == {"ok": 3, "offline": 1}  # liar-1 never showed up as itself
                    assert not impostor.connected and impostor.stats.connects == 0
                    await wait_for(lambda: liar.stats.heartbeats >= 3, 10, "the liar talking")
                    s1 = (await client.get("/api/nodes/s-1")).json()
                    assert (s1["status"], s1["alarm"]) == ("online", "")  # nothing it said got through
                    assert app.state.services.presence.view("s-1").session == nodes[0].session  # type: ignore[union-attr]
                    assert nodes[0].connected and nodes[0].stats.connects == 1  # no session takeover
                finally:
                    await asyncio.gather(*(n.stop() for n in [*nodes, impostor, liar]))


async def test_issue_missing_writes_new_passwords_once(tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        assert (await client.post("/api/zones", json={"id": "z", "name": "z"})).status_code == 201
        assert (await client.post("/api/nodes", json={"id": "old-1", "zones": ["z"]})).status_code == 201
        with app.state.services.db.session() as s:  # a unit added before credentials existed
            s.delete(s.get(NodeCredential, "old-1"))
            s.commit()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mqtt"
        assert cli_main(["mqtt-config", "--out", str(out), "--data-dir", str(tmp_path)]) == 0
        assert "old-1" not in (out / "passwd").read_text()  # refused until it has credentials
        assert cli_main(["mqtt-config", "--out", str(out), "--data-dir", str(tmp_path),
                         "--issue-missing"]) == 0
        rows = list(csv.DictReader((out / "new-credentials.csv").open()))
        assert [r["node_id"] for r in rows] == ["old-1"]
        line = next(x for x in (out / "passwd").read_text().splitlines() if x.startswith("old-1:"))
        assert sec.verify_mosquitto_hash(rows[0]["password"], line.split(":", 1)[1])
