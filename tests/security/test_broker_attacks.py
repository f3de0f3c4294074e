"""Attacks on the broker side (issue 11 items 1, 5, 6, 15, 20, 21), performed for real: Mosquitto
runs the configuration ``loaphuong mqtt-config`` writes, unchanged; the controller is the real app
over HTTP with its own broker account; attackers are units holding their own real password."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from controller.fleet.gateway_presence import GatewayPresence
from devices import protocol as p
from devices import security as sec
from devices.broker import free_port
from devices.link import ControllerLink
from devices.mqtt import AsyncMqttClient, BrokerAddress
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, wait_broadcast, wait_for, wait_online
from tests.security._broker_fixtures import (
    Ward,
    closed_by_peer,
    controller,
    listening,
    mqtt_config,
    port_1883_taken,
    raw_connect,
    remaining_length,
    secure_ward,
    tls_files,
)
from tests.security.ward import broker_dir, mosquitto
from tests.security.ward import mqtt_config as ward_mqtt_config

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]

WARD = {"za": ["ua-1", "ua-2"], "zb": ["ub-1"]}


async def ping(ward: Ward, zone: str) -> dict[str, str]:
    r = await ward.api.post(f"/api/zones/{zone}/commands", json={"name": "ping"})
    assert r.status_code == 200, r.text
    return {x["node_id"]: x["status"] for x in r.json()["results"]}


def gateway_presence(ward: Ward) -> GatewayPresence:
    """The app's GatewayPresence (it is reached through the link's state handlers)."""
    found = [h.__self__ for h in ward.link._handlers["state"] if isinstance(getattr(h, "__self__", None),
                                                                             GatewayPresence)]
    assert len(found) == 1
    return found[0]


async def test_generated_config_listens_only_where_asked_even_with_1883_taken(tmp_path: Path) -> None:
    # item 5: no implicit cleartext listener on 0.0.0.0:1883 / [::]:1883 (with the TLS recipe too),
    # --bind honoured, and Mosquitto 2.0 starts although another broker holds port 1883.
    with broker_dir() as d:
        tls_files(d)
        port, tls_port = free_port(), free_port()
        (tmp_path / "data").mkdir()
        assert mqtt_config(d, tmp_path / "data", port, tls_port) == 0
        with port_1883_taken(), mosquitto(d / "mqtt" / "mosquitto.conf", (port, tls_port)) as proc:
            assert listening(proc.pid) == {("127.0.0.1", port), ("127.0.0.1", tls_port)}
            assert proc.poll() is None


async def test_generated_plain_config_starts_and_opens_only_its_port(tmp_path: Path) -> None:
    # issue 13 D11, the finding's own case: a plain listener only, on a free port, while the
    # machine's broker holds 1883. Afterwards Mosquitto 2.x runs and its process listens on
    # 127.0.0.1:<port> and nothing else (no implicit 0.0.0.0/[::]:1883), and the listener options
    # come after the listener line in the file.
    with broker_dir() as d:
        (tmp_path / "data").mkdir()
        port = free_port()
        assert ward_mqtt_config(d / "mqtt", tmp_path / "data", port) == 0
        conf = (d / "mqtt" / "mosquitto.conf").read_text().splitlines()
        listener = conf.index(f"listener {port} 127.0.0.1")
        assert conf.index("use_username_as_clientid true") > listener
        assert sum(line.startswith("listener") for line in conf) == 1
        with port_1883_taken(), mosquitto(d / "mqtt" / "mosquitto.conf", (port,)) as proc:
            assert listening(proc.pid) == {("127.0.0.1", port)}
            assert proc.poll() is None


async def test_client_id_takeover_is_refused_on_every_listener(tmp_path: Path) -> None:
    # item 1: unit ua-1 logs in with its own password but claims the controller's client id or
    # another unit's, on the plain and the TLS listener; nobody is kicked off.
    async with secure_ward(tmp_path, WARD) as ward, controller(ward):
        victim = await ward.unit("ua-2")
        await wait_online(ward.api, ["ua-2"])
        link = ward.link.client
        before = (link.stats.connects, victim.stats.connects)
        for tls in (False, True):
            for claimed in ("loaphuong-controller", ward.settings.mqtt.client_id, "ua-2", "ub-1"):
                attacker = ward.client("ua-1", claimed, tls=tls)
                attacker.start()
                await asyncio.wait_for(attacker.connected.wait(), 10)  # it gets a session: its own
                assert (await ping(ward, "za"))["ua-2"] == "ok"  # a round trip after the attempt
                await attacker.stop()
        # the controller and the victim never lost their sessions
        assert link.is_connected and victim.connected
        assert (link.stats.connects, victim.stats.connects) == before == (1, 1)
        assert ward.link.client.flaps == 0
        assert await ping(ward, "za") == {"ua-1": "offline", "ua-2": "ok"}


async def test_oversized_and_retained_unit_messages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # item 21: a unit's retained messages on its own topics are ignored and counted when they are
    # replayed to the controller; a packet above the broker's limit is refused by the broker.
    async with secure_ward(tmp_path, WARD) as ward:
        planter = ward.client("ua-1", "ua-1")
        planter.start()
        await asyncio.wait_for(planter.connected.wait(), 10)
        t = p.Topics("lp")
        hb = p.Heartbeat(node_id="ua-1", session="s", seq=1, uptime_s=1)
        for leaf in ("heartbeat", "telemetry", "ack", "resp"):
            await planter.publish(t.node("ua-1", leaf), p.encode(hb), retain=True)
        await planter.stop()
        async with controller(ward):  # the broker replays them at the controller's subscription
            await wait_for(lambda: ward.link.rejected["retained"] >= 4, 10, "retained messages counted")
            assert ward.link.rejected["retained"] == 4 and ward.link.rejected_by_node["ua-1"] == 4
            assert ward.app.state.services.presence.status("ua-1") != "online"  # nothing replayed took
            health = (await ward.api.get("/api/health")).json()
            assert health["mqtt"]["rejected"]["retained"] == 4
            assert health["mqtt"]["rejected_by_node"]["ua-1"] == 4

            unit = await ward.unit("ua-2")
            await wait_online(ward.api, ["ua-2"])
            # just over the limit, through a normal client: the broker drops the attacker
            big = ward.client("ua-1", "ua-1")
            big.start()
            await asyncio.wait_for(big.connected.wait(), 10)
            big.publish_nowait(t.node("ua-1", "telemetry"), b"x" * sec.MAX_PACKET_SIZE, qos=0)
            await wait_for(lambda: not big.is_connected, 10, "oversized publisher disconnected")
            await big.stop()
            # a header announcing 100 MB: cut off without the broker reading (or buffering) it
            s = raw_connect(ward.port, "ua-1", ward.passwords["ua-1"], "ua-1")
            topic = t.node("ua-1", "telemetry").encode()
            s.sendall(b"\x30" + remaining_length(100 * 1024 * 1024) + len(topic).to_bytes(2, "big") + topic)
            try:
                s.sendall(b"\0" * 65536)
            except OSError:
                pass
            assert closed_by_peer(s, 10)
            s.close()
            # the controller stayed up, with nothing of it received, and a legit broadcast plays
            assert ward.link.client.stats.connects == 1 and ward.link.connected
            assert ward.link.rejected["invalid_payload"] == 0
            b = await bulletin(ward.api, "Thông báo thử")
            bid = await air(ward.api, b["id"], {"nodes": ["ua-2"]})
            final = await wait_broadcast(ward.api, bid, 30)
            assert [d["state"] for d in final["deliveries"]] == ["played"]
            assert unit.connected
        async with controller(ward):  # restarted: the planted messages were cleared, not replayed
            assert (await ping(ward, "za"))["ua-2"] == "ok"
            assert ward.link.rejected["retained"] == 0
    assert not [r for r in caplog.records if r.exc_info]  # no traceback for any of it


async def test_pathological_json_is_one_counted_line_not_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # item 15: a 5,000-digit integer, deep nesting, a huge float exponent from a unit
    payloads = [
        b'{"v":1,"node_id":"ua-1","session":"s","seq":' + b"9" * 5000 + b',"uptime_s":1}',
        b'{"v":1,"node_id":"ua-1","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"v":1,"node_id":"ua-1","session":"s","seq":1e999999,"uptime_s":1}',
        b"\xff\xfe" + b"{" * 100,
    ]
    caplog.set_level(logging.WARNING)
    async with secure_ward(tmp_path, WARD) as ward, controller(ward):
        attacker = ward.client("ua-1", "ua-1")
        attacker.start()
        await asyncio.wait_for(attacker.connected.wait(), 10)
        t = p.Topics("lp")
        rounds = 10
        for _ in range(rounds):
            for pl in payloads:
                await attacker.publish(t.node("ua-1", "heartbeat"), pl)
        total = rounds * len(payloads)
        await wait_for(lambda: ward.link.rejected_by_node["ua-1"] >= total, 10, "bad messages counted")
        assert ward.link.rejected["invalid_payload"] == total
        health = (await ward.api.get("/api/health")).json()["mqtt"]
        assert health["rejected_by_node"] == {"ua-1": total}
        dropped = [r for r in caplog.records if r.name == "devices.link"]
        assert 1 <= len(dropped) <= 2 and all("\n" not in r.getMessage() for r in dropped)
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert ward.link.client.stats.handler_errors == 0
        unit = await ward.unit("ua-2")  # the ward still works
        await wait_online(ward.api, ["ua-2"])
        assert (await ping(ward, "za"))["ua-2"] == "ok" and unit.connected


async def test_a_unit_cannot_pose_as_gateway_for_other_units(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # item 6: ua-1 (zone za) claims to be a serial gateway for ub-1 (zone zb) and says it died;
    # the real gateway gw1 vouches for its provisioned child only and cannot write others' topics.
    zones = {"za": ["ua-1"], "zb": ["ub-1", "gw1", "gw1-a01"]}
    async with secure_ward(tmp_path, zones, gateways={"gw1": ["gw1-a01"]}, monkeypatch=monkeypatch) as ward, \
            controller(ward):
        victim, child = await ward.unit("ub-1"), await ward.unit("gw1-a01")
        await wait_online(ward.api, ["ub-1", "gw1-a01"])
        t = p.Topics("lp")
        liar = ward.client("ua-1", "ua-1")
        liar.start()
        await asyncio.wait_for(liar.connected.wait(), 10)
        gp = gateway_presence(ward)
        for status in (p.NodeStatus.ONLINE, p.NodeStatus.OFFLINE):
            claim = p.NodeState(node_id="ua-1", status=status, session="x", children=["ub-1", "gw1-a01"])
            await liar.publish(t.state("ua-1"), p.encode(claim), retain=True)
        await wait_for(lambda: gp.refused["ua-1"] >= 2, 10, "the false claims seen")
        gw = ward.client("gw1", "gw1")
        gw.start()
        await asyncio.wait_for(gw.connected.wait(), 10)
        # gw1 may not write ub-1's topics (ACL): this never arrives
        forged = p.NodeState(node_id="ub-1", status=p.NodeStatus.OFFLINE, session="f")
        await gw.publish(t.state("ub-1"), p.encode(forged), retain=True)
        # gw1 dies, naming its provisioned child and (falsely) ub-1
        will = p.NodeState(node_id="gw1", status=p.NodeStatus.OFFLINE, session="g",
                           children=["gw1-a01", "ub-1"])
        await gw.publish(t.state("gw1"), p.encode(will), retain=True)
        presence = ward.app.state.services.presence
        await wait_for(lambda: presence.status("gw1-a01") == "unknown", 10, "gw1's child unknown")
        assert gp.refused["gw1"] >= 1 and gp.children == {"gw1": ["gw1-a01"]}
        assert presence.status("ub-1") == "online"
        r = (await ward.api.get("/api/nodes/ub-1")).json()
        assert (r["status"], r["alarm"]) == ("online", "")
        assert victim.connected and child.connected
        assert (await ping(ward, "zb"))["ub-1"] == "ok"


async def test_reserved_ids_refused_and_one_bad_unit_does_not_break_mqtt_config(tmp_path: Path) -> None:
    # item 20 (reserved ids): the API refuses them; a unit with one already in the database (from
    # before) is left out of the broker files with an error, and everyone else keeps working.
    async with secure_ward(tmp_path, {"za": ["ua-1"]}) as ward, controller(ward):
        for bad in ("loaphuong-controller", "loaphuong", "loaphuong-x"):
            r = await ward.api.post("/api/nodes", json={"id": bad, "zones": ["za"]})
            assert r.status_code == 422 and "reserved" in json.dumps(r.json()["detail"]), r.text
        nodes = {n["id"] for n in (await ward.api.get("/api/nodes")).json()}
        assert nodes == {"ua-1"}
        with ward.app.state.services.db.session() as s:  # a row from before the check existed
            from controller.fleet.models import Node, NodeCredential
            s.add(Node(id="loaphuong-controller"))
            s.add(NodeCredential(node_id="loaphuong-controller", password_hash=sec.mosquitto_hash("x")))
            s.commit()
        assert mqtt_config(ward.dir, ward.settings.data_dir, ward.port, ward.tls_port) == 0
        passwd = (ward.dir / "mqtt" / "passwd").read_text()
        users = [x.split(":")[0] for x in passwd.splitlines()]
        assert sorted(users) == ["loaphuong-controller", "ua-1"]  # one controller line, the unit's own
        acl = (ward.dir / "mqtt" / "acl").read_text()
        assert acl.count("user loaphuong-controller") == 1
        env = dict(x.split("=", 1) for x in (ward.dir / "mqtt" / "controller.env").read_text().splitlines())
        ctl = next(x for x in passwd.splitlines() if x.startswith("loaphuong-controller:"))
        assert sec.verify_mosquitto_hash(env["LOAPHUONG_MQTT__PASSWORD"], ctl.split(":", 1)[1])
        unit = await ward.unit("ua-1")
        await wait_online(ward.api, ["ua-1"])
        assert unit.connected and ward.link.connected


async def test_each_controller_has_its_own_account_and_nobody_takes_its_session(tmp_path: Path) -> None:
    # item 1, several controllers on one database: each has its own account (client id pinned to
    # it), so two controllers configured with the same client id, or a unit claiming one, kick nobody.
    with broker_dir() as d:
        tls_files(d)
        (tmp_path / "data").mkdir()
        async with running_controller(make_settings(tmp_path / "data", free_port())) as (_, client):
            assert (await client.post("/api/nodes", json={"id": "ua-1"})).status_code == 201
            pw = (await client.post("/api/nodes/ua-1/credentials")).json()["password"]
        port, tls_port = free_port(), free_port()
        assert mqtt_config(d, tmp_path / "data", port, tls_port, "--controller", "loaphuong-ctl2") == 0
        assert mqtt_config(d, tmp_path / "data", port, tls_port, "--controller", "not-reserved") == 1
        envs = [dict(x.split("=", 1) for x in (d / "mqtt" / name).read_text().splitlines())
                for name in ("controller.env", "controller-loaphuong-ctl2.env")]
        assert envs[1]["LOAPHUONG_MQTT__CLIENT_ID"] == "loaphuong-ctl2"
        clients = []
        with mosquitto(d / "mqtt" / "mosquitto.conf", (port, tls_port)):
            try:
                for env in envs:  # both configured with the same client id
                    c = AsyncMqttClient("loaphuong-controller", BrokerAddress(
                        port=port, username=env["LOAPHUONG_MQTT__USERNAME"],
                        password=env["LOAPHUONG_MQTT__PASSWORD"]), log_failures=False, min_backoff=0.2)
                    clients.append(c)
                    c.start()
                    await asyncio.wait_for(c.connected.wait(), 10)
                unit = AsyncMqttClient("loaphuong-ctl2", BrokerAddress(  # claims controller 2's id
                    port=port, username="ua-1", password=pw), log_failures=False, min_backoff=0.2)
                clients.append(unit)
                unit.start()
                await asyncio.wait_for(unit.connected.wait(), 10)
                for c in clients[:2]:  # a PUBACK round trip on each controller's connection
                    await c.publish("lp/controller/probe", b"x", qos=1, timeout=5)
                assert [c.stats.connects for c in clients] == [1, 1, 1]
                assert all(c.is_connected for c in clients)
            finally:
                await asyncio.gather(*(c.stop() for c in clients))


async def test_configured_controller_name_is_reserved_too(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, free_port())
    mqtt = settings.mqtt.model_copy(update={"username": "ward-ctl", "client_id": "ward-ctl-a"})
    async with running_controller(settings.model_copy(update={"mqtt": mqtt})) as (_, client):
        for bad in ("ward-ctl", "ward-ctl-a", "loaphuong-controller"):
            r = await client.post("/api/nodes", json={"id": bad})
            assert r.status_code == 422 and "reserved" in json.dumps(r.json()), r.text
        assert (await client.post("/api/nodes", json={"id": "ward-ctl-b"})).status_code == 201
        assert {n["id"] for n in (await client.get("/api/nodes")).json()} == {"ward-ctl-b"}


def test_link_drops_bad_input_without_a_broker() -> None:
    link = ControllerLink(BrokerAddress(port=1), prefix="lp")
    seen: list[str] = []
    link.on("heartbeat", lambda n, m: seen.append(n))
    ok = p.encode(p.Heartbeat(node_id="u", session="s", seq=1, uptime_s=1))
    link._dispatch("lp/node/u/heartbeat", ok, True)  # retained: replayed, ignored
    link._dispatch("lp/node/u/heartbeat", b'{"v":1,"seq":' + b"1" * 5000 + b"}", False)
    link._dispatch("lp/node/u/heartbeat", ok, False)
    assert seen == ["u"] and link.rejected == {"retained": 1, "invalid_payload": 1}
    assert link.rejected_by_node == {"u": 2}
