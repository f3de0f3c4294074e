"""The simulated node against a real Mosquitto, checked over the wire as a controller would."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devices.mqtt import AsyncMqttClient, BrokerAddress
from devices.protocol import (
    CHUNK_HEADER,
    CHUNK_MAGIC,
    Ack,
    AudioScope,
    Command,
    CommandResponse,
    Heartbeat,
    Manifest,
    NodeConfig,
    NodeState,
    Priority,
    RepairRequest,
    Telemetry,
    Topics,
    chunk_audio,
    decode,
    encode,
    now_ms,
)
from firmware_sim.faults import Faults
from firmware_sim.fleet import Fleet, NodeSpec
from firmware_sim.node import SimNode

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(60)]

ALL = AudioScope(kind="group", id="all")


async def until(pred: Callable[[], Any], within: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


def make_bcast(bc: str, size: int = 40_000, *, duration_ms: int = 300, chunk_size: int = 16384,
               priority: Priority = Priority.NORMAL, expires_in_s: float = 300,
               play_at: int | None = None) -> tuple[Manifest, list[bytes], bytes]:
    audio = random.Random(bc).randbytes(size)
    info, frames = chunk_audio(audio, duration_ms=duration_ms, chunk_size=chunk_size)
    m = Manifest(bc=bc, title=bc, priority=priority, audio=info, play_at=play_at,
                 expires_at=now_ms() + int(expires_in_s * 1000))
    return m, frames, audio


def frame_per_doc(index: int, total: int, data: bytes, tag: bytes) -> bytes:
    """A chunk framed from docs/protocol.md §3 alone (CRC over the zeroed header, then the data)."""
    header = CHUNK_HEADER.pack(CHUNK_MAGIC, 1, index, total, 0, len(data), tag)
    crc = zlib.crc32(data, zlib.crc32(header))
    return CHUNK_HEADER.pack(CHUNK_MAGIC, 1, index, total, crc, len(data), tag) + data


class Ctl:
    """The test's controller: a plain AsyncMqttClient recording what nodes publish."""

    def __init__(self, broker: BrokerAddress, prefix: str) -> None:
        self.t = Topics(prefix)
        self.msgs: list[tuple[str, bytes, bool]] = []
        self.frames: dict[str, list[bytes]] = {}  # bc -> chunks, for auto_repair
        self.auto_repair = False
        self.ack_log: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.client = AsyncMqttClient(f"ctl-{secrets.token_hex(3)}", broker, on_message=self._on)

    async def start(self) -> None:
        self.client.start()
        await asyncio.wait_for(self.client.connected.wait(), 10)
        self.client.subscribe(self.t.controller_subscriptions())
        probe = self.t.resp("zz-probe")  # subscriptions are active once our own probe comes back
        await self.client.publish(probe, b"{}")
        await until(lambda: any(m[0] == probe for m in self.msgs), what="controller subscriptions")

    def _on(self, topic: str, payload: bytes, retained: bool) -> None:
        self.msgs.append((topic, payload, retained))
        parsed = self.t.parse_node_topic(topic)
        if parsed and parsed[1] == "ack":
            a = decode(Ack, payload)
            self.ack_log.setdefault((a.node_id, a.bc), []).append((a.state.value, a.reason))
        if self.auto_repair and parsed and parsed[1] == "repair":
            req = decode(RepairRequest, payload)
            for i in req.missing:
                self.client.publish_nowait(self.t.data(AudioScope(kind="node", id=req.node_id), req.bc),
                                           self.frames[req.bc][i], qos=1)

    def of(self, node_id: str, leaf: str) -> list[tuple[bytes, bool]]:
        topic = self.t.node(node_id, leaf)
        return [(p, r) for t, p, r in self.msgs if t == topic]

    def acks(self, node_id: str, bc: str) -> list[tuple[str, str]]:
        return list(self.ack_log.get((node_id, bc), []))

    def states(self, node_id: str, bc: str) -> list[str]:
        return [s for s, _ in self.acks(node_id, bc)]

    def repairs(self, node_id: str) -> list[RepairRequest]:
        return [decode(RepairRequest, p) for p, _ in self.of(node_id, "repair")]

    def resp(self, node_id: str, cmd_id: str) -> list[CommandResponse]:
        resps = [decode(CommandResponse, p) for p, _ in self.of(node_id, "resp")]
        return [r for r in resps if r.id == cmd_id]

    async def config(self, node_id: str, groups: list[str], volume: int = 70) -> None:
        cfg = NodeConfig(node_id=node_id, groups=groups, volume=volume)
        await self.client.publish(self.t.config(node_id), encode(cfg), retain=True)

    async def send(self, scope: AudioScope, m: Manifest, frames: list[bytes],
                   skip: set[int] | frozenset[int] = frozenset()) -> None:
        self.frames[m.bc] = frames
        await self.client.publish(self.t.manifest(scope, m.bc), encode(m), retain=True)
        for i, frame in enumerate(frames):
            if i not in skip:
                await self.client.publish(self.t.data(scope, m.bc), frame)

    async def cmd(self, node_id: str, name: str, args: dict[str, Any] | None = None, *,
                  cmd_id: str | None = None, expires_in_s: float | None = 30.0) -> str:
        cmd_id = cmd_id or f"c-{secrets.token_hex(3)}"
        expires = None if expires_in_s is None else now_ms() + int(expires_in_s * 1000)
        c = Command(id=cmd_id, name=name, args=args or {}, expires_at=expires)
        await self.client.publish(self.t.cmd(node_id), encode(c))
        return cmd_id

    async def call(self, node_id: str, name: str, args: dict[str, Any] | None = None) -> CommandResponse:
        cmd_id = await self.cmd(node_id, name, args)
        return (await until(lambda: self.resp(node_id, cmd_id), what=f"response to {name}"))[0]


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}"


@pytest_asyncio.fixture
async def ctl(sim_broker: BrokerAddress, prefix: str) -> AsyncIterator[Ctl]:
    c = Ctl(sim_broker, prefix)
    await c.start()
    yield c
    await c.client.stop()


@pytest_asyncio.fixture
async def nodes(sim_broker: BrokerAddress, prefix: str) -> AsyncIterator[Callable[..., SimNode]]:
    made: list[SimNode] = []

    def make(node_id: str, **kw: Any) -> SimNode:
        kw.setdefault("time_scale", 0.1)
        kw.setdefault("repair_idle_s", 0.5)
        node = SimNode(node_id, sim_broker, prefix=prefix, **kw)
        made.append(node)
        return node

    yield make
    for node in made:
        await node.stop()


# ---------------------------------------------------------------------------- presence


async def test_birth_heartbeat_lastwill_and_shutdown(ctl: Ctl, nodes: Callable[..., SimNode],
                                                     sim_broker: BrokerAddress, prefix: str) -> None:
    a = nodes("loa-a", heartbeat_s=0.2)
    b = nodes("loa-b")
    await a.start()
    await b.start()
    late = Ctl(sim_broker, prefix)  # subscribes after the births: gets the retained copies
    await late.start()
    birth = await until(lambda: late.of("loa-a", "state"), what="retained birth")
    state = decode(NodeState, birth[0][0])
    assert birth[0][1] is True and state.status.value == "online" and state.session == a.session
    assert state.fw == "sim-1.0" and state.proto == 1

    await until(lambda: len(ctl.of("loa-a", "heartbeat")) >= 3, what="heartbeats")
    seqs = [decode(Heartbeat, p).seq for p, _ in ctl.of("loa-a", "heartbeat")]
    assert seqs[:3] == [0, 1, 2]
    tel = decode(Telemetry, ctl.of("loa-a", "telemetry")[0][0])
    assert tel.power is True and tel.volume == 70 and tel.storage_free_kb == 8192

    await a.kill()  # power loss: the broker fires the last-will
    await until(lambda: any(decode(NodeState, p).status.value == "offline"
                            for p, _ in ctl.of("loa-a", "state")), what="last-will")
    await b.stop()
    await until(lambda: any(decode(NodeState, p).status.value == "shutdown"
                            for p, _ in ctl.of("loa-b", "state")), what="shutdown state")
    later = Ctl(sim_broker, prefix)
    await later.start()
    await until(lambda: later.of("loa-a", "state") and later.of("loa-b", "state"), what="retained")
    assert decode(NodeState, later.of("loa-a", "state")[0][0]).status.value == "offline"
    assert decode(NodeState, later.of("loa-b", "state")[0][0]).status.value == "shutdown"
    await late.client.stop()
    await later.client.stop()


# ---------------------------------------------------------------------------- delivery


async def test_delivery_receiving_verified_playing_played(ctl: Ctl, nodes: Callable[..., SimNode],
                                                          tmp_path: Path) -> None:
    node = nodes("loa-1", play_dir=tmp_path)
    await ctl.config("loa-1", ["all", "tdp1"])
    await node.start()
    await until(lambda: node.groups_subscribed == {"all", "tdp1"}, what="group subscriptions")
    m, frames, audio = make_bcast("b-1")
    await ctl.send(ALL, m, frames)
    await until(lambda: "played" in ctl.states("loa-1", "b-1"), what="played")
    assert ctl.states("loa-1", "b-1") == ["receiving", "verified", "playing", "played"]
    assert node.audio["b-1"] == audio
    assert node.played == ["b-1"]
    assert (tmp_path / "loa-1" / "b-1.mp3").read_bytes() == audio
    assert node.stats.chunks_ok == len(frames) and node.stats.repairs_sent == 0


async def test_dropped_chunks_are_repaired(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1", groups=["all"], faults=Faults(drop_chunks={2, 5}))
    await node.start()
    m, frames, audio = make_bcast("b-2", chunk_size=4096)
    await ctl.send(ALL, m, frames)
    reqs = await until(lambda: ctl.repairs("loa-1"), what="repair request")
    assert reqs[0].bc == "b-2" and reqs[0].missing == [2, 5]
    assert ctl.states("loa-1", "b-2") == ["receiving"]
    node_scope = AudioScope(kind="node", id="loa-1")
    for i in reqs[0].missing:
        await ctl.client.publish(ctl.t.data(node_scope, "b-2"), frames[i])
    await until(lambda: "played" in ctl.states("loa-1", "b-2"), what="played after repair")
    assert node.audio["b-2"] == audio and node.stats.chunks_fault_dropped == 2


async def test_corrupt_chunk_is_caught_and_repaired(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1", faults=Faults(corrupt_chunks={1}))
    await node.start()
    ctl.auto_repair = True
    m, frames, audio = make_bcast("b-3")
    await ctl.send(AudioScope(kind="node", id="loa-1"), m, frames)
    await until(lambda: "verified" in ctl.states("loa-1", "b-3"), what="verified")
    assert node.stats.chunks_bad == 1
    assert [r.missing for r in ctl.repairs("loa-1")] == [[1]]
    assert node.audio["b-3"] == audio


async def test_sha256_mismatch_asks_once_then_fails(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1")
    await node.start()
    m, good, audio = make_bcast("b-4")
    tag = bytes.fromhex(m.audio.sha256)[:8]
    size, n = m.audio.chunk_size, m.audio.chunks
    assert good == [frame_per_doc(i, n, audio[i * size : (i + 1) * size], tag) for i in range(n)]
    fake = random.Random(7).randbytes(m.audio.size)  # right tag and CRCs, wrong file
    bad = [frame_per_doc(i, n, fake[i * size : (i + 1) * size], tag) for i in range(n)]
    scope = AudioScope(kind="node", id="loa-1")
    await ctl.send(scope, m, bad)
    reqs = await until(lambda: ctl.repairs("loa-1"), what="request for every chunk")
    assert reqs[0].missing == list(range(m.audio.chunks))
    for frame in bad:
        await ctl.client.publish(ctl.t.data(scope, "b-4"), frame)
    await until(lambda: ("failed", "checksum") in ctl.acks("loa-1", "b-4"), what="failed/checksum")
    assert node.stats.checksum_mismatches == 2 and "b-4" not in node.audio


async def test_repair_backoff_and_256_index_limit(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1", repair_idle_s=0.2)
    await node.start()
    scope = AudioScope(kind="node", id="loa-1")
    m, frames, audio = make_bcast("b-many", size=30_000, chunk_size=100)  # 300 chunks
    await ctl.client.publish(ctl.t.manifest(scope, m.bc), encode(m), retain=True)  # no live chunks
    await until(lambda: len(ctl.repairs("loa-1")) >= 4, what="four repair requests")
    reqs = ctl.repairs("loa-1")
    assert all(r.missing == list(range(256)) for r in reqs[:4])  # at most 256 per request
    times = [decode(RepairRequest, p).ts for p, _ in ctl.of("loa-1", "repair")][:4]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[1] >= 150 and gaps[2] >= 1.5 * gaps[1]  # 2, 2, 4, 8 ... (scaled to 0.2 s)
    ctl.frames[m.bc] = frames
    ctl.auto_repair = True  # answer the next request: the node then asks for the rest at once
    await until(lambda: "played" in ctl.states("loa-1", "b-many"), within=30, what="played after repairs")
    assert ctl.repairs("loa-1")[-1].missing == list(range(256, 300))
    assert node.audio["b-many"] == audio


async def test_priority_order_and_play_at(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1", time_scale=1.0)
    await node.start()
    scope = AudioScope(kind="node", id="loa-1")
    first, f1, _ = make_bcast("b-first", duration_ms=600)
    await ctl.send(scope, first, f1)
    await until(lambda: "playing" in ctl.states("loa-1", "b-first"), what="first playing")
    for bc, prio in (("b-normal", Priority.NORMAL), ("b-prio", Priority.PRIORITY)):
        m, f, _ = make_bcast(bc, duration_ms=100, priority=prio)
        await ctl.send(scope, m, f)
    at = now_ms() + 1200
    timed, f4, _ = make_bcast("b-timed", duration_ms=100, play_at=at)
    await ctl.send(scope, timed, f4)
    await until(lambda: len(node.played) == 4, what="all four played")
    assert node.played == ["b-first", "b-prio", "b-normal", "b-timed"]
    playing_ts = [decode(Ack, p).ts for p, _ in ctl.of("loa-1", "ack")
                  if decode(Ack, p).bc == "b-timed" and decode(Ack, p).state == "playing"]
    assert playing_ts[0] >= at


async def test_finished_broadcast_is_not_played_again(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1", groups=["all"])
    await node.start()
    m, frames, _ = make_bcast("b-5")
    await ctl.send(ALL, m, frames)  # the manifest stays retained
    await until(lambda: "played" in ctl.states("loa-1", "b-5"), what="played")
    before = len(ctl.acks("loa-1", "b-5"))
    await node.kill()
    await node.start()  # reconnect: the broker hands out the retained manifest again
    await until(lambda: len(ctl.acks("loa-1", "b-5")) > before, what="re-sent final ack")
    await asyncio.sleep(0.3)
    assert ctl.states("loa-1", "b-5")[before:] == ["played"]
    assert node.played == ["b-5"]


async def test_expired_manifest_and_withdrawn_download(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1")
    skew = nodes("loa-2", faults=Faults(clock_offset_ms=600_000))  # node clock 10 min ahead
    await node.start()
    await skew.start()
    full = nodes("loa-3", faults=Faults(storage_full=True))
    await full.start()
    m, frames, _ = make_bcast("b-6", expires_in_s=-1)
    await ctl.send(AudioScope(kind="node", id="loa-1"), m, frames)
    await until(lambda: ctl.acks("loa-1", "b-6") == [("failed", "expired")], what="failed/expired")
    m2, frames2, _ = make_bcast("b-7", expires_in_s=60)
    await ctl.send(AudioScope(kind="node", id="loa-2"), m2, frames2)
    await until(lambda: ctl.acks("loa-2", "b-7") == [("failed", "expired")], what="expired by node clock")
    await ctl.send(AudioScope(kind="node", id="loa-3"), m2, frames2)
    await until(lambda: ctl.acks("loa-3", "b-7") == [("failed", "storage_full")], what="storage_full")

    m3, frames3, _ = make_bcast("b-8", chunk_size=4096)
    scope = AudioScope(kind="node", id="loa-1")
    await ctl.send(scope, m3, frames3, skip={3})
    await until(lambda: "b-8" in node.receiving, what="partial download")
    # the last chunk came: the sending is over, so the lost chunk 3 is asked for at once (§3)
    await until(lambda: [r.missing for r in ctl.repairs("loa-1")] == [[3]], what="chunk 3 asked for")
    await ctl.client.publish(ctl.t.manifest(scope, "b-8"), b"", retain=True)  # withdrawn
    await until(lambda: "b-8" not in node.receiving, what="partial download dropped")
    await asyncio.sleep(0.8)
    assert len(ctl.repairs("loa-1")) == 1 and node.played == []  # nothing asked after the withdrawal


async def test_emergency_preempts_normal_and_power(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1", time_scale=1.0)
    await node.start()
    scope = AudioScope(kind="node", id="loa-1")
    normal, f1, _ = make_bcast("b-normal", duration_ms=20_000)
    await ctl.send(scope, normal, f1)
    await until(lambda: "playing" in ctl.states("loa-1", "b-normal"), what="normal playing")
    urgent, f2, _ = make_bcast("b-urgent", duration_ms=200, priority=Priority.EMERGENCY)
    await ctl.send(scope, urgent, f2)
    await until(lambda: "played" in ctl.states("loa-1", "b-urgent"), what="emergency played")
    assert ctl.acks("loa-1", "b-normal")[-1] == ("failed", "preempted")
    assert node.played == ["b-urgent"]

    assert (await ctl.call("loa-1", "power", {"on": False})).data == {"power": False}
    quiet, f3, _ = make_bcast("b-quiet", duration_ms=200)
    await ctl.send(scope, quiet, f3)
    await until(lambda: ("failed", "power_off") in ctl.acks("loa-1", "b-quiet"), what="power_off")
    alarm, f4, _ = make_bcast("b-alarm", duration_ms=200, priority=Priority.EMERGENCY)
    await ctl.send(scope, alarm, f4)
    await until(lambda: "played" in ctl.states("loa-1", "b-alarm"), what="emergency with amp off")
    assert node.player.power is True


# ---------------------------------------------------------------------------- commands


async def test_commands(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1")
    await node.start()
    ping = await ctl.call("loa-1", "ping")
    assert ping.status == "ok" and ping.node_id == "loa-1" and "uptime_s" in ping.data
    assert (await ctl.call("loa-1", "volume", {"level": 40})).data == {"volume": 40}
    assert node.volume == 40
    assert (await ctl.call("loa-1", "power", {"on": False})).data == {"power": False}
    await until(lambda: any(decode(Telemetry, p).power is False for p, _ in ctl.of("loa-1", "telemetry")),
                what="telemetry on change")
    unknown = await ctl.call("loa-1", "dance")
    assert unknown.status == "error" and unknown.error == "unknown command"
    bad = await ctl.call("loa-1", "volume", {"level": 500})
    assert bad.status == "error"
    assert (await ctl.call("loa-1", "stop")).data == {"stopped": ""}

    expired = await ctl.cmd("loa-1", "volume", {"level": 30}, expires_in_s=-5)  # (ping: exempt unsynced)
    dup = await ctl.cmd("loa-1", "ping", cmd_id="c-dup")
    await ctl.cmd("loa-1", "ping", cmd_id="c-dup")
    await ctl.call("loa-1", "ping")  # answered after the three above were handled
    assert ctl.resp("loa-1", expired) == []
    assert len(ctl.resp("loa-1", dup)) == 1
    assert node.stats.commands_expired == 1 and node.stats.commands_duplicate == 1


async def test_stop_cancel_and_reboot(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1", time_scale=1.0)
    await node.start()
    scope = AudioScope(kind="node", id="loa-1")
    long, f1, _ = make_bcast("b-long", duration_ms=20_000)
    await ctl.send(scope, long, f1)
    await until(lambda: "playing" in ctl.states("loa-1", "b-long"), what="playing")
    assert (await ctl.call("loa-1", "stop")).data == {"stopped": "b-long"}
    assert ctl.acks("loa-1", "b-long")[-1] == ("failed", "stopped")

    later, f2, _ = make_bcast("b-later", play_at=now_ms() + 60_000)
    await ctl.send(scope, later, f2)
    await until(lambda: "verified" in ctl.states("loa-1", "b-later"), what="verified, waiting for play_at")
    resp = await ctl.call("loa-1", "cancel", {"bc": "b-later"})
    assert resp.data == {"cancelled": "b-later", "found": True}
    await until(lambda: ("failed", "cancelled") in ctl.acks("loa-1", "b-later"), what="cancelled ack")

    old_session = node.session
    assert (await ctl.call("loa-1", "reboot")).status == "ok"
    await until(lambda: any(decode(NodeState, p).reason == "reboot" for p, _ in ctl.of("loa-1", "state")),
                what="shutdown before reboot")
    await until(lambda: node.session != old_session and node.connected, what="back after reboot")
    await node.wait_ready()
    assert (await ctl.call("loa-1", "ping")).status == "ok"
    n = len(ctl.acks("loa-1", "b-later"))
    await ctl.client.publish(ctl.t.manifest(scope, "b-later"), encode(later), retain=True)
    await until(lambda: len(ctl.acks("loa-1", "b-later")) > n, what="final ack re-sent after reboot")
    assert ctl.acks("loa-1", "b-later")[-1] == ("failed", "cancelled") and node.played == []


async def test_group_command_and_ignored_commands(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    a = nodes("loa-a", groups=["tdp1"])
    mute = nodes("loa-b", groups=["tdp1"], faults=Faults(ignore_commands=True))
    deaf = nodes("loa-c", groups=["tdp1"], faults=Faults(drop_rate=1.0))
    slow = nodes("loa-d", groups=["tdp1"], faults=Faults(ack_delay_s=0.4))
    other = nodes("loa-e", groups=["tdp2"])
    for n in (a, mute, deaf, slow, other):
        await n.start()
    sent = time.monotonic()
    c = Command(id="g-1", name="ping", expires_at=now_ms() + 10_000)
    await ctl.client.publish(ctl.t.group_cmd("tdp1"), encode(c))
    await until(lambda: ctl.resp("loa-a", "g-1"), what="group command answered")
    await until(lambda: ctl.resp("loa-d", "g-1"), what="delayed answer")
    assert time.monotonic() - sent >= 0.35
    assert ctl.resp("loa-b", "g-1") == [] and mute.stats.commands_ignored == 1
    assert ctl.resp("loa-c", "g-1") == [] and deaf.stats.dropped_in >= 1
    assert ctl.resp("loa-e", "g-1") == []


async def test_bad_payloads_are_counted_and_ignored(ctl: Ctl, nodes: Callable[..., SimNode]) -> None:
    node = nodes("loa-1")
    await node.start()
    t = ctl.t
    junk = [
        (t.cmd("loa-1"), b"{not json"),
        (t.cmd("loa-1"), b'{"v":1,"id":5,"name":"ping"}'),
        (t.cmd("loa-1"), b'{"v":1,"id":"x","name":"ping","args":"loud"}'),
        (t.cmd("loa-1"), b'{"v":2,"id":"y","name":"ping"}'),
        (t.cmd("loa-1"), b"[1,2]"),
        (t.cmd("loa-1"), b'{"v":1,"id":"' + b"x" * 100_000 + b'","name":"ping"}'),
        (t.config("loa-1"), b"\xff\xfe"),
        (t.config("loa-1"), b'{"v":1,"node_id":"loa-1","groups":"all"}'),
        (t.config("loa-1"), b'{"v":1,"node_id":"loa-1","volume":"max"}'),
        (t.config("loa-1"), b" " * 100_000),
        (t.config("loa-1"), b'{"v":1,"node_id":"loa-1","groups":["#"]}'),
        (t.manifest(AudioScope(kind="node", id="loa-1"), "b-x"), b'{"v":1,"bc":"b-x"}'),
    ]
    for topic, payload in junk:
        await ctl.client.publish(topic, payload)
    await ctl.client.publish(t.data(AudioScope(kind="node", id="loa-1"), "b-x"), b"LPA\x01garbage")
    pong = await ctl.call("loa-1", "ping")
    assert pong.status == "ok"
    assert node.stats.payload_errors == len(junk)
    assert node.stats.handler_errors == 0 and node.groups_requested == set()
    await ctl.config("loa-1", ["all"])
    await until(lambda: node.groups_subscribed == {"all"}, what="valid config still applied")


# ---------------------------------------------------------------------------- fleet


async def test_fleet_of_200_nodes_plays_one_group_broadcast(ctl: Ctl, sim_broker: BrokerAddress,
                                                            prefix: str) -> None:
    count = 200
    specs = [NodeSpec(f"sim-{i:03d}", groups=["all", f"zone{i % 4 + 1}"]) for i in range(count)]
    fleet = Fleet(specs, sim_broker, prefix, time_scale=0.1, heartbeat_s=5)
    t0 = time.monotonic()
    try:
        assert await fleet.start() == count
        started = time.monotonic()
        ctl.auto_repair = True
        m, frames, audio = make_bcast("b-fleet", duration_ms=1000)
        await ctl.send(ALL, m, frames)

        def played() -> int:
            return sum(1 for n in fleet.nodes if "played" in ctl.states(n, "b-fleet"))

        await until(lambda: played() == count, within=40, what="200 nodes played")
        delivered = time.monotonic()
        assert all(n.audio["b-fleet"] == audio and n.played == ["b-fleet"] for n in fleet.nodes.values())
        summary = fleet.summary()
        assert summary["connected"] == count and summary["played"] == count
        # the fleet shares one copy of the file
        assert len({id(n.audio["b-fleet"]) for n in fleet.nodes.values()}) == 1
    finally:
        await fleet.stop()
    logger.info("fleet of %d: start %.1f s, broadcast %.1f s, stop %.1f s", count, started - t0,
                delivered - started, time.monotonic() - delivered)
