"""The serial gateway end to end: a plain MQTT client plays the controller, a real Mosquitto
carries the contract, and simulated boards (firmware_sim.serial_node) sit on the far end of
a pty. Every child must look like an ordinary node on MQTT (docs/protocol.md §7.5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devices import protocol as p
from devices.broker import BrokerProcess
from devices.mqtt import AsyncMqttClient, BrokerAddress
from devices.serial.contract import GatewayConfig
from devices.serial.gateway import SerialGateway
from firmware_sim.serial_node import SerialFaults, SerialNodeSim
from tests.e2e.helpers import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.pty, pytest.mark.timeout(90)]

T = p.Topics()
CHILDREN = {1: "gw1-a01", 2: "gw1-a02", 3: "gw1-a03", 4: "gw1-a04"}  # no board answers at 4
GROUPS = {"gw1-a01": ["all", "tdp4"], "gw1-a02": ["all", "tdp4"], "gw1-a03": ["all"], "gw1-a04": ["all"]}


@dataclass
class Ctl:
    """The controller's side of the wire, reduced to a recording MQTT client."""

    client: AsyncMqttClient
    got: list[tuple[str, Any, bool]] = field(default_factory=list)

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self.got.append((topic, json.loads(payload) if payload else None, retained))

    def last(self, node: str, leaf: str) -> Any:
        msgs = [m for t, m, _ in self.got if t == T.node(node, leaf)]
        return msgs[-1] if msgs else None

    def acks(self, node: str, bc: str) -> list[str]:
        return [m["state"] for t, m, _ in self.got if t == T.ack(node) and m["bc"] == bc]

    def ack_reasons(self, node: str, bc: str) -> list[str]:
        return [m["reason"] for t, m, _ in self.got if t == T.ack(node) and m["bc"] == bc]

    def resp(self, node: str, cid: str) -> Any:
        found = [m for t, m, _ in self.got if t == T.resp(node) and m["id"] == cid]
        return found[0] if found else None

    async def command(self, node: str, cid: str, name: str, **args: Any) -> Any:
        cmd = p.Command(id=cid, name=name, args=args)
        await self.client.publish(T.cmd(node), p.encode(cmd))
        await wait_for(lambda: self.resp(node, cid) is not None, 10, f"response to {cid}")
        return self.resp(node, cid)

    async def broadcast(self, scope: p.AudioScope, bc: str, audio: bytes, *, duration_ms: int = 400,
                        priority: p.Priority = p.Priority.NORMAL, skip: tuple[int, ...] = (),
                        hold: bool = False) -> list[bytes]:
        info, chunks = p.chunk_audio(audio, duration_ms=duration_ms, chunk_size=8192)
        m = p.Manifest(bc=bc, audio=info, priority=priority, expires_at=p.now_ms() + 60_000, hold=hold)
        await self.client.publish(T.manifest(scope, bc), p.encode(m), retain=True)
        for i, chunk in enumerate(chunks):
            if i not in skip:
                await self.client.publish(T.data(scope, bc), chunk)
        return chunks


@dataclass
class Rig:
    gw: SerialGateway
    sim: SerialNodeSim
    ctl: Ctl
    tty: Path
    play_dir: Path


@contextlib.asynccontextmanager
async def make_rig(port: int, tmp: Path, faults: SerialFaults | None = None) -> AsyncIterator[Rig]:
    sim = SerialNodeSim([1, 2, 3], faults)
    tty = tmp / "ttyRS485"
    sim.open_pty(tty)
    cfg = GatewayConfig(gateway_id="gw1", port=str(tty), children=dict(CHILDREN), baudrate=115200,
                        poll_s=0.2, offline_after=2, reply_timeout=0.1, attempts=4, heartbeat_s=1.0,
                        telemetry_s=1.0, repair_idle_s=0.3, min_backoff=0.05, max_backoff=0.4,
                        play_dir=tmp / "line")
    gw = SerialGateway(cfg, BrokerAddress(port=port))
    holder: list[Ctl] = []
    client = AsyncMqttClient("ctl", BrokerAddress(port=port), on_message=lambda *a: holder[0].on_message(*a),
                             on_connect=lambda: client.subscribe([f"{T.prefix}/node/+/+"]))
    ctl = Ctl(client)
    holder.append(ctl)
    client.start()
    await client.connected.wait()
    await asyncio.sleep(0.2)
    for node, groups in GROUPS.items():
        await client.publish(T.config(node), p.encode(p.NodeConfig(node_id=node, groups=groups, volume=55)),
                             retain=True)
    await gw.start()
    try:
        await wait_for(lambda: [ (ctl.last(n, "state") or {}).get("status") for n in CHILDREN.values()]
                       == ["online", "online", "online", "offline"], 15, "children states")
        await wait_for(lambda: all(sim.boards[a].volume == 55 for a in (1, 2, 3)), 5, "config volume applied")
        yield Rig(gw, sim, ctl, tty, tmp / "line")
    finally:
        await gw.stop()
        await client.stop()
        await sim.stop()


@pytest.fixture
async def rig(mosquitto: BrokerProcess, tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(mosquitto.port, tmp_path) as r:
        yield r


@pytest.fixture
async def noisy_rig(mosquitto: BrokerProcess, tmp_path: Path) -> AsyncIterator[Rig]:
    faults = SerialFaults(noise_rate=0.4, tx_flip_rate=0.05, rx_flip_rate=0.05, seed=11)
    async with make_rig(mosquitto.port, tmp_path, faults) as r:
        yield r


async def test_children_are_nodes_commands_and_group_broadcast(rig: Rig) -> None:
    ctl, sim = rig.ctl, rig.sim
    # After start: the gateway's retained state names its children and its port; each answering
    # child is online (retained, with the gateway named), the silent address 4 is offline.
    gw_state = ctl.last("gw1", "state")
    assert gw_state["children"] == list(CHILDREN.values()) and gw_state["port"] == "up"
    a01 = ctl.last("gw1-a01", "state")
    assert a01["gateway"] == "gw1" and a01["hw"] == "serial:1" and a01["fw"] == "1.2"
    assert ctl.last("gw1-a04", "state")["reason"] == "no_response"
    await wait_for(lambda: ctl.last("gw1-a02", "heartbeat") and ctl.last("gw1-a02", "telemetry"), 5, "hb")
    assert ctl.last("gw1-a04", "heartbeat") is None  # nobody speaks for a silent board

    # Commands: answered on the child's resp topic with the correlation id, after the board acted.
    r = await ctl.command("gw1-a01", "c-vol", "volume", level=40)
    assert (r["status"], r["data"], sim.boards[1].volume) == ("ok", {"volume": 40}, 40)
    r = await ctl.command("gw1-a03", "c-off", "power", on=False)
    assert (r["status"], r["data"], sim.boards[3].power) == ("ok", {"power": False}, False)
    r = await ctl.command("gw1-a04", "c-ping", "ping")
    assert r["status"] == "error" and "serial timeout" in r["error"]
    r = await ctl.command("gw1-a02", "c-x", "selfdestruct")
    assert (r["status"], r["error"]) == ("error", "unknown command")

    # A group broadcast: the gateway plays it once on the line; boards 1 and 2 (group tdp4)
    # close their relays for the duration and are acked played; 3 and 4 hear nothing of it.
    audio = os.urandom(20_000)
    await ctl.broadcast(p.AudioScope(kind="group", id="tdp4"), "b-1", audio, duration_ms=400)
    await wait_for(lambda: ctl.acks("gw1-a01", "b-1")[-1:] == ["played"]
                   and ctl.acks("gw1-a02", "b-1")[-1:] == ["played"], 15, "played by both")
    for node in ("gw1-a01", "gw1-a02"):
        assert ctl.acks(node, "b-1") == ["receiving", "verified", "playing", "played"]
    assert ctl.acks("gw1-a03", "b-1") == [] and ctl.acks("gw1-a04", "b-1") == []
    for addr in (1, 2):
        (t_on, on), (t_off, off) = sim.boards[addr].relay_log
        assert on is True and off is False and t_off - t_on >= 0.35
    assert sim.boards[3].relay_log == []
    assert (rig.play_dir / "gw1" / "b-1.mp3").read_bytes() == audio
    assert rig.gw.line.played == ["b-1"]

    # The retained manifest seen again (e.g. after a reconnect) re-sends the final ack only.
    await ctl.client.publish(T.manifest(p.AudioScope(kind="group", id="tdp4"), "b-1"), b"", retain=True)
    await ctl.broadcast(p.AudioScope(kind="group", id="tdp4"), "b-1", audio)
    await wait_for(lambda: ctl.acks("gw1-a01", "b-1").count("played") == 2, 30, "final ack re-sent")
    assert len(sim.boards[1].relay_log) == 2 and rig.gw.line.played == ["b-1"]


async def test_power_off_offline_child_repair_and_emergency_preemption(rig: Rig) -> None:
    ctl, sim = rig.ctl, rig.sim
    sim.boards[3].power = False  # amplifier switched off at the board
    # (seen by the gateway's next poll: before it, a broadcast would still find it on)
    await wait_for(lambda: (ctl.last("gw1-a03", "telemetry") or {}).get("power") is False, 30, "seen off")
    # A normal broadcast to the whole ward, one chunk missing at first: the gateway asks for it on
    # a child's repair topic; the "controller" republishes it on that child's node topic.
    audio = os.urandom(30_000)
    all_ = p.AudioScope(kind="group", id="all")
    chunks = await ctl.broadcast(all_, "b-2", audio, duration_ms=3000, skip=(1,))
    await wait_for(lambda: ctl.last("gw1-a01", "repair") is not None, 30, "repair request")
    assert ctl.last("gw1-a01", "repair")["missing"] == [1]
    await ctl.client.publish(T.data(p.AudioScope(kind="node", id="gw1-a01"), "b-2"), chunks[1])
    await wait_for(lambda: ctl.acks("gw1-a01", "b-2")[-1:] == ["playing"], 30, "b-2 playing")
    # While b-2 plays, an emergency for group tdp4 pre-empts it.
    await ctl.broadcast(p.AudioScope(kind="group", id="tdp4"), "e-1", os.urandom(5000), duration_ms=300,
                        priority=p.Priority.EMERGENCY)
    await wait_for(lambda: ctl.acks("gw1-a01", "e-1")[-1:] == ["played"]
                   and ctl.acks("gw1-a02", "e-1")[-1:] == ["played"], 15, "emergency played")
    # After: b-2 failed "preempted" for the children that were on the line, "power_off" for the
    # board whose amplifier is off, nothing for the silent address 4; the emergency played on
    # 1 and 2; every relay is open again; the line played b-2 then e-1.
    assert ctl.acks("gw1-a01", "b-2") == ["receiving", "verified", "playing", "failed"]
    assert ctl.ack_reasons("gw1-a01", "b-2")[-1] == "preempted"
    assert ctl.acks("gw1-a03", "b-2")[-1] == "failed" and ctl.ack_reasons("gw1-a03", "b-2")[-1] == "power_off"
    assert ctl.acks("gw1-a04", "b-2") == ["receiving", "verified"]
    await wait_for(lambda: not any(b.relay for b in sim.boards.values()), 5, "relays open")
    assert rig.gw.line.played == ["b-2", "e-1"]
    assert [on for _, on in sim.boards[1].relay_log] == [True, False, True, False]


async def test_a_held_broadcast_waits_for_its_play_then_airs_once(rig: Rig) -> None:
    """§3 `hold` (the controller always sets it): verified, the broadcast waits on the gateway; a
    `play` on the group's cmd topic (the controller's zone play, one per member) puts it on the line
    once, for every child it targets."""
    ctl, sim = rig.ctl, rig.sim
    tdp4 = p.AudioScope(kind="group", id="tdp4")
    await ctl.broadcast(tdp4, "h-1", os.urandom(5000), duration_ms=300, hold=True)
    both = ("gw1-a01", "gw1-a02")
    await wait_for(lambda: all(ctl.acks(n, "h-1") == ["receiving", "verified"] for n in both), 15, "verified")
    await ctl.command("gw1-a01", "c-ping-h", "ping")  # a barrier: polls went by, nothing aired
    assert rig.gw.line.played == [] and not any(b.relay for b in sim.boards.values())
    play = p.Command(id="c-play-h", name="play", args={"bc": "h-1", "at": p.now_ms(), "offset_ms": 0})
    await ctl.client.publish(T.group_cmd("tdp4"), p.encode(play))
    await wait_for(lambda: all(ctl.acks(n, "h-1")[-1:] == ["played"] for n in both), 15, "h-1 played")
    assert ctl.resp("gw1-a01", "c-play-h")["data"] == {"bc": "h-1"}
    assert rig.gw.line.played == ["h-1"], "aired once on the line for both children"


async def test_noisy_line_still_delivers(noisy_rig: Rig) -> None:
    rig = noisy_rig
    ctl, sim = rig.ctl, rig.sim
    # Garbage before 40 % of replies, 5 % bit flips each way: commands and a broadcast still work.
    for i in range(5):
        r = await ctl.command("gw1-a02", f"c-n{i}", "volume", level=10 + i)
        assert r["status"] == "ok"
    assert sim.boards[2].volume == 14
    await ctl.broadcast(p.AudioScope(kind="group", id="tdp4"), "b-n", os.urandom(9000), duration_ms=300)
    await wait_for(lambda: ctl.acks("gw1-a01", "b-n")[-1:] == ["played"]
                   and ctl.acks("gw1-a02", "b-n")[-1:] == ["played"], 20, "played despite noise")
    # After: the line really was noisy (the gateway dropped frames and retried) and the children
    # never went offline because of it.
    assert rig.gw.link.decoder.stats.errors > 0 and rig.gw.bus.stats.retries > 0
    assert sim.stats.noise_bursts > 0
    states = [m["status"] for t, m, _ in ctl.got if t == T.state("gw1-a01")]
    assert "offline" not in states


async def test_port_disappears_fault_is_reported_and_port_reopened(rig: Rig) -> None:
    ctl, sim = rig.ctl, rig.sim
    await sim.close_line()
    rig.tty.unlink()
    # After the pty vanished: the gateway's retained state says port down, its telemetry lists
    # the serial_port fault and each child is offline with reason serial_port.
    await wait_for(lambda: (ctl.last("gw1", "state") or {}).get("port") == "down", 30, "port down state")
    assert ctl.last("gw1", "state")["status"] == "online"
    await wait_for(lambda: "serial_port" in (ctl.last("gw1", "telemetry") or {}).get("faults", []), 5,
                   "fault in telemetry")
    for node in ("gw1-a01", "gw1-a02", "gw1-a03"):
        assert ctl.last(node, "state")["status"] == "offline"
        assert ctl.last(node, "state")["reason"] == "serial_port"
    await asyncio.sleep(1.0)
    sim2 = SerialNodeSim([1, 2, 3])
    sim2.open_pty(rig.tty)
    try:
        # After the port came back: reopened (with backoff in between), port up, faults
        # cleared, children online again.
        await wait_for(lambda: (ctl.last("gw1", "state") or {}).get("port") == "up", 30, "port up state")
        await wait_for(lambda: all((ctl.last(n, "state") or {}).get("status") == "online"
                                   for n in ("gw1-a01", "gw1-a02", "gw1-a03")), 10, "children back")
        await wait_for(lambda: (ctl.last("gw1", "telemetry") or {}).get("faults") == [], 5, "fault cleared")
        stats = rig.gw.link.stats
        assert stats.opens == 2 and stats.losses == 1 and 2 <= stats.open_failures <= 10
    finally:
        await sim2.stop()


async def test_gateway_death_will_lists_children(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with make_rig(mosquitto.port, tmp_path) as rig:
        await rig.gw.kill()
        # After a power loss: the broker publishes the gateway's will, retained, naming the
        # children the controller can no longer trust.
        await wait_for(lambda: (rig.ctl.last("gw1", "state") or {}).get("status") == "offline", 30, "will")
        will = [(m, r) for t, m, r in rig.ctl.got if t == T.state("gw1")][-1]
        assert will[0]["children"] == list(CHILDREN.values())
        # the children's own retained states are stale ("online"): that is what §7.5 is about
        assert rig.ctl.last("gw1-a01", "state")["status"] == "online"


async def test_stop_one_child_mid_broadcast_and_reboot_a_board(rig: Rig) -> None:
    ctl, sim = rig.ctl, rig.sim
    await ctl.broadcast(p.AudioScope(kind="group", id="tdp4"), "b-s", os.urandom(4000), duration_ms=1500)
    await wait_for(lambda: ctl.acks("gw1-a02", "b-s")[-1:] == ["playing"]
                   and ctl.acks("gw1-a01", "b-s")[-1:] == ["playing"], 10, "b-s playing")
    r = await ctl.command("gw1-a02", "c-stop", "stop")
    # After `stop` on one child: it answered with the broadcast it stopped, was acked
    # failed/stopped and its relay opened at once, while the other child heard it to the end.
    assert r["data"] == {"stopped": "b-s"} and ctl.ack_reasons("gw1-a02", "b-s")[-1] == "stopped"
    assert sim.boards[2].relay is False and sim.boards[1].relay is True
    await wait_for(lambda: ctl.acks("gw1-a01", "b-s")[-1:] == ["played"], 30, "b-s played by a01")
    assert ctl.acks("gw1-a02", "b-s") == ["receiving", "verified", "playing", "failed"]

    session, booted = ctl.last("gw1-a03", "state")["session"], sim.boards[3].booted
    r = await ctl.command("gw1-a03", "c-boot", "reboot")
    # After `reboot`: the board restarted, the child was announced shutdown/reboot and came
    # back online with a new session.
    assert r["status"] == "ok" and sim.boards[3].booted > booted
    await wait_for(lambda: ctl.last("gw1-a03", "state")["status"] == "online"
                   and ctl.last("gw1-a03", "state")["session"] != session, 10, "back after reboot")
    states = [(m["status"], m["reason"]) for t, m, _ in ctl.got if t == T.state("gw1-a03")]
    assert ("shutdown", "reboot") in states
