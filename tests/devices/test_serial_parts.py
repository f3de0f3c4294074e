"""The serial gateway's parts built alone on a fake GatewayIO and fake boards: no broker, no port.

Downloads for several children at once, the programme line (relays per child, pre-emption by
an emergency) and the command answers (per-child dedupe, a reboot) — what the gateway does on
the wire is in tests/devices/test_serial_gateway.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from devices import protocol as p
from devices.serial.audio import Downloads
from devices.serial.commands import GatewayCommands
from devices.serial.contract import Child, GatewayConfig
from devices.serial.io import BoardControl, GatewayIO
from devices.serial.line import LinePlayer
from devices.serial.wire import BoardStatus, Cmd

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


@dataclass
class FakeGatewayIO:
    config: GatewayConfig
    topics: p.Topics = field(default_factory=lambda: p.Topics("t"))
    running: bool = True
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    acked: list[tuple[str, str, p.AckState, str]] = field(default_factory=list)
    bad_payloads: int = 0
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    kids: dict[str, Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kids = {nid: Child(addr, nid) for addr, nid in sorted(self.config.children.items())}
        for c in self.kids.values():
            c.status, c.board = "online", BoardStatus()

    @property
    def gateway_id(self) -> str:
        return self.config.gateway_id

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        self.sent.append((topic, payload))
        return True

    def ack(self, child: Child, bc: str, state: p.AckState, reason: str = "",
            have: int | None = None, attention: str = "") -> None:
        if state in p.FINAL_STATES:
            child.finished.finish(bc, state, reason)
        self.acked.append((child.node_id, bc, state, reason))

    def bad(self, topic: str, why: object) -> None:
        self.bad_payloads += 1

    def clock_ms(self) -> int:
        return p.now_ms()

    def uptime_s(self) -> int:
        return 7

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coro, name=name)

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> asyncio.TimerHandle:
        handle = asyncio.get_running_loop().call_later(delay, fn, *args)
        self.timers.append(handle)
        return handle

    def child(self, node_id: str) -> Child | None:
        return self.kids.get(node_id)

    def children(self) -> list[Child]:
        return list(self.kids.values())

    def members(self, group: str) -> list[Child]:
        return [c for c in self.kids.values() if group in c.groups]

    def acks_of(self, bc: str) -> list[tuple[str, p.AckState, str]]:
        return [(n, s, r) for n, b, s, r in self.acked if b == bc]


@dataclass
class FakeBoards:
    """Relays that switch at once; ``refuse`` maps node id -> why connect() says no."""

    refuse: dict[str, str] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    requests: list[tuple[str, Cmd, int | None]] = field(default_factory=list)
    rebooted: list[str] = field(default_factory=list)

    async def connect(self, child: Child, bc: str, emergency: bool) -> str | None:
        why = self.refuse.get(child.node_id)
        if why is None:
            self.closed.add(child.node_id)
        return why

    async def disconnect(self, child: Child) -> None:
        self.closed.discard(child.node_id)

    async def request(self, child: Child, cmd: Cmd, arg: int | None = None) -> BoardStatus:
        self.requests.append((child.node_id, cmd, arg))
        return BoardStatus(uptime_s=99, volume=arg if cmd == Cmd.VOLUME and arg is not None else 70)

    async def reboot(self, child: Child) -> None:
        self.rebooted.append(child.node_id)


def _config(**kw: Any) -> GatewayConfig:
    return GatewayConfig(gateway_id="gw", port="loop://", children={1: "c-1", 2: "c-2", 3: "c-3"},
                         time_scale=0.01, repair_idle_s=0.05, **kw)


def _bcast(bc: str, priority: p.Priority = p.Priority.NORMAL,
           duration_ms: int = 2000) -> tuple[p.Manifest, list[bytes]]:
    audio = hashlib.sha256(bc.encode()).digest() * 1000
    info, frames = p.chunk_audio(audio, duration_ms=duration_ms, chunk_size=16384)
    return p.Manifest(bc=bc, audio=info, priority=priority, expires_at=p.now_ms() + 60_000), frames


async def until(pred: Callable[[], object], within: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


def _parts(io: FakeGatewayIO, boards: FakeBoards) -> tuple[Downloads, LinePlayer]:
    port: GatewayIO = io  # the fakes are the ports (checked by mypy)
    control: BoardControl = boards
    line = LinePlayer(port, control)
    return Downloads(port, line), line


async def test_one_download_for_several_children_then_the_line_plays_it() -> None:
    io, boards = FakeGatewayIO(_config()), FakeBoards(refuse={"c-3": "power_off"})
    dl, line = _parts(io, boards)
    m, frames = _bcast("b-1")
    kids = io.children()
    dl.on_manifest(kids, "t/group/g/bcast/b-1/manifest", "b-1", p.encode(m))
    assert io.acks_of("b-1") == [(c.node_id, p.AckState.RECEIVING, "") for c in kids]
    for f in frames:
        dl.on_chunk("b-1", f)
    await until(lambda: line.played == ["b-1"] and not line.playing, what="played on the line")
    acks = io.acks_of("b-1")
    assert ("c-3", p.AckState.FAILED, "power_off") in acks
    for nid in ("c-1", "c-2"):
        assert [s for n, s, _ in acks if n == nid] == [p.AckState.RECEIVING, p.AckState.VERIFIED,
                                                         p.AckState.PLAYING, p.AckState.PLAYED]
    assert boards.closed == set()  # every relay opened again
    dl.on_manifest(kids[:1], "t/node/c-1/bcast/b-1/manifest", "b-1", p.encode(m))  # never twice
    assert io.acks_of("b-1")[-1] == ("c-1", p.AckState.PLAYED, "")


async def test_a_missing_chunk_is_asked_for_on_one_childs_repair_topic() -> None:
    io, boards = FakeGatewayIO(_config()), FakeBoards()
    dl, _ = _parts(io, boards)
    m, frames = _bcast("b-2")
    dl.on_manifest(io.children()[1:], "t/group/g/bcast/b-2/manifest", "b-2", p.encode(m))
    dl.on_chunk("b-2", frames[0])
    await until(lambda: any(t.endswith("/repair") for t, _ in io.sent), what="a repair request")
    [(topic, body)] = [(t, b) for t, b in io.sent if t.endswith("/repair")]
    req = p.decode(p.RepairRequest, body)
    assert topic == "t/node/c-2/repair" and req.missing == [1] and dl.repairs_sent == 1
    dl.clear()


async def test_an_emergency_preempts_what_plays() -> None:
    io, boards = FakeGatewayIO(_config()), FakeBoards()
    _, line = _parts(io, boards)
    normal, _ = _bcast("b-n", duration_ms=3_600_000)  # would play 36 s: pre-empted long before
    urgent, _ = _bcast("b-e", p.Priority.EMERGENCY, duration_ms=500)
    line.enqueue(normal, b"x", io.children()[:1])
    await until(lambda: line.played == ["b-n"] and boards.closed == {"c-1"}, what="the normal one on air")
    line.enqueue(urgent, b"y", io.children()[:1])
    await until(lambda: line.played == ["b-n", "b-e"] and not line.playing, what="the emergency played")
    assert ("c-1", p.AckState.FAILED, "preempted") in io.acks_of("b-n")
    assert io.acks_of("b-e")[-1] == ("c-1", p.AckState.PLAYED, "")


async def test_commands_are_answered_once_per_child_and_reboot_resets_the_board() -> None:
    io, boards = FakeGatewayIO(_config()), FakeBoards()
    dl, line = _parts(io, boards)
    cmds = GatewayCommands(io, boards=boards, line=line, downloads=dl)
    kids = io.children()
    ping = p.encode(p.Command(id="r1", name="ping"))
    cmds.on_command(kids[:2], "t/group/g/cmd", ping)
    cmds.on_command(kids[:2], "t/group/g/cmd", ping)  # the same id: not again
    cmds.on_command(kids[:1], "t/node/c-1/cmd", p.encode(p.Command(id="r2", name="reboot")))
    volume = p.Command(id="r3", name="volume", args={"level": 7})
    cmds.on_command(kids[:1], "t/node/c-1/cmd", p.encode(volume))
    await until(lambda: cmds.handled == 4, what="four answers")
    resp = [p.decode(p.CommandResponse, b) for t, b in io.sent if t.endswith("/resp")]
    assert sorted((r.node_id, r.id, r.status) for r in resp) == [
        ("c-1", "r1", "ok"), ("c-1", "r2", "ok"), ("c-1", "r3", "ok"), ("c-2", "r1", "ok")]
    assert boards.rebooted == ["c-1"] and ("c-1", Cmd.VOLUME, 7) in boards.requests
    cmds.on_gateway_command("t/node/gw/cmd", p.encode(p.Command(id="g1", name="ping")))
    assert p.decode(p.CommandResponse, io.sent[-1][1]).data == {"uptime_s": 7}


async def test_a_repeated_play_never_airs_a_childs_broadcast_twice() -> None:
    """The node rule (devices.protocol.play_already) for a child: answered, its ack re-sent."""
    io, boards = FakeGatewayIO(_config()), FakeBoards()
    dl, line = _parts(io, boards)
    cmds = GatewayCommands(io, boards=boards, line=line, downloads=dl)
    c1 = io.children()[:1]
    m, frames = _bcast("b-p", duration_ms=3_600_000)  # plays 36 s: still on air while asked again
    dl.on_manifest(c1, "t/node/c-1/bcast/b-p/manifest", "b-p", p.encode(m))
    dl.on_chunk("b-p", frames[0])

    def play(cid: str) -> None:
        cmds.on_command(c1, "t/node/c-1/cmd", p.encode(p.Command(id=cid, name="play", args={"bc": "b-p"})))

    def answers() -> list[tuple[str, str, dict[str, Any], str]]:
        resp = [p.decode(p.CommandResponse, b) for t, b in io.sent if t.endswith("/resp")]
        return [(r.id, r.status, r.data, r.error) for r in resp]

    play("p1")  # still downloading
    await until(lambda: cmds.handled == 1, what="the first answer")
    for f in frames[1:]:
        dl.on_chunk("b-p", f)
    await until(lambda: line.playing == "b-p" and boards.closed == {"c-1"}, what="b-p on air")
    play("p2")
    await until(lambda: cmds.handled == 2, what="the second answer")
    assert io.acks_of("b-p")[-1] == ("c-1", p.AckState.PLAYING, "")  # re-sent
    assert await line.stop_child(c1[0], "stopped") == "b-p"
    play("p3")
    play("p3")  # the same id: not answered again
    await until(lambda: cmds.handled == 3, what="the third answer")
    assert answers() == [("p1", "error", {}, "not_ready: 1/2 chunks"),
                         ("p2", "ok", {"bc": "b-p", "already": "playing"}, ""),
                         ("p3", "ok", {"bc": "b-p", "already": "failed", "reason": "stopped"}, "")]
    assert io.acks_of("b-p")[-2:] == [("c-1", p.AckState.FAILED, "stopped")] * 2
    assert line.played == ["b-p"] and line.queue == []
