"""The parts of a simulated node, each built alone on a fake NodeIO: no broker, no SimNode.

The fake records what a part publishes and acks, keeps its timers until the test fires them
(no wall-clock waits) and runs spawned coroutines on the test's loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from devices.mqtt import AsyncMqttClient
from devices.protocol import (
    AckState,
    Command,
    CommandResponse,
    FinishedLog,
    Manifest,
    NodeConfig,
    Priority,
    RepairRequest,
    Telemetry,
    Topics,
    chunk_audio,
    decode,
    encode,
)
from firmware_sim.clock import ClockSync, NodeClock
from firmware_sim.commands import BadArgs, CommandDesk, CommandRejected
from firmware_sim.download import Downloads
from firmware_sim.faults import Faults
from firmware_sim.io import NodeIO, NodeStats
from firmware_sim.live_audio import LiveReceiver
from firmware_sim.membership import Membership
from firmware_sim.playback import PlaybackCommands
from firmware_sim.player import Player
from firmware_sim.relay import RelayFetcher
from firmware_sim.telemetry import Reporter

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

NOW = 1_700_000_000_000  # the fake clocks (ms)


@dataclass
class FakeTimer:
    delay: float
    fn: Callable[..., object]
    args: tuple[object, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeIO:
    """A NodeIO that records everything and keeps its timers until :meth:`fire`."""

    node_id: str = "n-1"
    topics: Topics = field(default_factory=lambda: Topics("t"))
    faults: Faults = field(default_factory=Faults)
    stats: NodeStats = field(default_factory=NodeStats)
    finished: FinishedLog = field(default_factory=FinishedLog)
    now_ms: int = NOW
    synced: bool = True
    sent: list[tuple[str, bytes, int, bool]] = field(default_factory=list)
    acked: list[tuple[str, AckState, str, int | None]] = field(default_factory=list)
    attention: list[tuple[str, str]] = field(default_factory=list)  # (bc, what the tone did)
    began: list[tuple[str, AckState, int]] = field(default_factory=list)  # acks that said started_at
    timers: list[FakeTimer] = field(default_factory=list)
    changes: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        self.sent.append((topic, payload, qos, retain))
        return True

    def ack(self, bc: str, state: AckState, reason: str = "", have: int | None = None, *,
            attention: str = "", started_at: int | None = None) -> None:
        if started_at is not None:
            self.began.append((bc, state, started_at))
        if state in (AckState.PLAYED, AckState.FAILED):
            self.finished.finish(bc, state, reason)
        self.acked.append((bc, state, reason, have))
        if attention:
            self.attention.append((bc, attention))

    def bad(self, topic: str, why: object) -> None:
        self.stats.payload_errors += 1

    def changed(self) -> None:
        self.changes += 1

    def clock_ms(self) -> int:
        return self.now_ms

    def controller_ms(self) -> float:
        return float(self.now_ms)

    def clock_synced(self) -> bool:
        return self.synced

    def uptime_s(self) -> int:
        return 42

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> FakeTimer:
        timer = FakeTimer(delay, fn, args)
        self.timers.append(timer)
        return timer

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    def fire(self) -> int:
        """Run the timers due so far (not those they start); returns how many ran."""
        due, self.timers = self.timers, []
        ran = 0
        for t in due:
            if not t.cancelled:
                t.fn(*t.args)
                ran += 1
        return ran

    def on(self, leaf: str) -> list[bytes]:
        want = self.topics.node(self.node_id, leaf)
        return [payload for topic, payload, _, _ in self.sent if topic == want]


def _io(**kw: Any) -> FakeIO:
    io = FakeIO(**kw)
    port: NodeIO = io  # the fake is a NodeIO (checked by mypy)
    assert port is io
    return io


def _player(io: FakeIO, time_scale: float = 1.0) -> Player:
    return Player(io.node_id, clock=lambda: float(io.now_ms), on_ack=io.ack, on_change=io.changed,
                  time_scale=time_scale)


def _command(cid: str, name: str, args: dict[str, Any] | None = None, expires_at: int | None = None) -> bytes:
    return encode(Command(id=cid, name=name, args=args or {}, expires_at=expires_at))


def _responses(io: FakeIO) -> list[CommandResponse]:
    return [decode(CommandResponse, b) for b in io.on("resp")]


def _bcast(bc: str, *, size: int = 40_000, hold: bool = True) -> tuple[Manifest, list[bytes]]:
    audio = hashlib.sha256(bc.encode()).digest() * (size // 32)
    info, frames = chunk_audio(audio, duration_ms=300, chunk_size=16384)
    return Manifest(bc=bc, audio=info, expires_at=NOW + 60_000, hold=hold), frames


# --------------------------------------------------------------------------- the command desk


async def test_desk_answers_once_drops_expired_and_counts_bad_args() -> None:
    io = _io()
    desk = CommandDesk(io)

    def echo(args: dict[str, Any]) -> dict[str, Any]:
        if "bad" in args:
            raise BadArgs("args.bad is not allowed")
        if "no" in args:
            raise CommandRejected("busy")
        return dict(args)

    desk.register("echo", echo)
    topic = io.topics.cmd(io.node_id)
    desk.on_command(topic, _command("c1", "echo", {"x": 1}))
    desk.on_command(topic, _command("c1", "echo", {"x": 2}))  # the same id again: ignored
    desk.on_command(topic, _command("c2", "echo", expires_at=NOW - 1))  # expired: no answer
    desk.on_command(topic, _command("c3", "nope"))
    desk.on_command(topic, _command("c4", "echo", {"bad": True}))
    desk.on_command(topic, _command("c5", "echo", {"no": True}))
    desk.on_command(topic, b"{not json")
    got = [(r.id, r.status, r.data, r.error) for r in _responses(io)]
    assert got == [("c1", "ok", {"x": 1}, ""), ("c3", "error", {}, "unknown command"),
                   ("c4", "error", {}, "bad arguments: args.bad is not allowed"),
                   ("c5", "error", {}, "busy")]
    s = io.stats
    assert (s.commands, s.commands_duplicate, s.commands_expired, s.payload_errors) == (4, 1, 1, 2)
    with pytest.raises(ValueError):
        desk.register("echo", echo)


async def test_desk_before_the_first_sync_sample_answers_sync_time_and_ping_whatever_their_expiry() -> None:
    io = _io()
    io.synced = False  # no clock-sync sample: the node's estimate is its own clock (maybe 20 s fast)
    desk = CommandDesk(io)
    for name in ("sync_time", "ping", "volume"):
        desk.register(name, lambda args, name=name: {"name": name})
    topic = io.topics.cmd(io.node_id)
    for cid, name in (("c1", "sync_time"), ("c2", "ping"), ("c3", "volume")):
        desk.on_command(topic, _command(cid, name, expires_at=NOW - 20_000))
    io.synced = True  # now the estimate is trusted: only sync_time is still answered late
    for cid, name in (("c4", "sync_time"), ("c5", "ping")):
        desk.on_command(topic, _command(cid, name, expires_at=NOW - 20_000))
    assert [r.id for r in _responses(io)] == ["c1", "c2", "c4"]
    assert io.stats.commands_expired == 2


async def test_desk_delays_the_answer_by_the_ack_fault() -> None:
    io = _io(faults=Faults(ack_delay_s=0.5))
    desk = CommandDesk(io)
    desk.register("ping", lambda _a: {"pong": True})
    desk.on_command(io.topics.cmd(io.node_id), _command("c1", "ping"))
    assert io.on("resp") == [] and [t.delay for t in io.timers] == [0.5]
    assert io.fire() == 1 and _responses(io)[0].data == {"pong": True}


# --------------------------------------------------------------------------- downloads


async def test_download_repairs_the_missing_chunk_then_verifies() -> None:
    io = _io()
    player = _player(io)
    dl = Downloads(io, player, repair_idle_s=60.0, blobs=None, keep_audio=True)
    m, frames = _bcast("b-1")
    dl.on_manifest("t/node/n-1/bcast/b-1/manifest", "b-1", encode(m))
    assert io.acked == [("b-1", AckState.RECEIVING, "", 0)] and dl.progress("b-1") == (0, 3)
    dl.on_chunk("b-1", frames[0])
    dl.on_chunk("b-1", frames[2])  # the last chunk: the sending is over, chunk 1 was lost
    dl.on_chunk("b-1", frames[2])  # a duplicate
    [req] = [decode(RepairRequest, b) for b in io.on("repair")]  # asked at once, not after 60 s
    assert io.fire() == 1 and len(io.on("repair")) == 1  # the idle timer (not due): nothing more
    assert req.bc == "b-1" and req.missing == [1]
    dl.on_chunk("b-1", frames[1])
    assert io.acked[-1] == ("b-1", AckState.VERIFIED, "", None)
    assert player.state_of("b-1") == AckState.VERIFIED and "b-1" not in dl
    assert (io.stats.chunks_ok, io.stats.chunks_dup, io.stats.repairs_sent) == (3, 1, 1)
    assert dl.audio["b-1"] == b"".join(f[24:] for f in frames)


async def test_manifest_of_a_finished_broadcast_gets_its_final_ack_again() -> None:
    io = _io()
    io.finished.finish("b-2", AckState.PLAYED, "")
    dl = Downloads(io, _player(io), repair_idle_s=1.0, blobs=None, keep_audio=False)
    m, _ = _bcast("b-2")
    dl.on_manifest("t/node/n-1/bcast/b-2/manifest", "b-2", encode(m))
    assert io.acked == [("b-2", AckState.PLAYED, "", None)] and "b-2" not in dl


async def test_storage_full_and_expired_manifests_fail() -> None:
    io = _io(faults=Faults(storage_kb=16))
    dl = Downloads(io, _player(io), repair_idle_s=1.0, blobs=None, keep_audio=False)
    m, _ = _bcast("b-3")
    dl.on_manifest("x", "b-3", encode(m))
    old = Manifest(bc="b-4", audio=m.audio, expires_at=NOW - 1)
    dl.on_manifest("x", "b-4", encode(old))
    assert [(a[0], a[2]) for a in io.acked] == [("b-3", "storage_full"), ("b-4", "expired")]


# --------------------------------------------------------------------------- playback commands


def _playback(io: FakeIO, time_scale: float = 1.0
              ) -> tuple[PlaybackCommands, Player, Downloads, RelayFetcher, LiveReceiver]:
    player = _player(io, time_scale)
    dl = Downloads(io, player, repair_idle_s=1.0, blobs=None, keep_audio=False)
    relay = RelayFetcher(io.node_id, io.changed)
    live = LiveReceiver(io, player)
    sync = ClockSync(io.node_id, NodeClock(), lambda _b: True, io.later)
    cmds = PlaybackCommands(io, player=player, downloads=dl, relay=relay, live=live, clock=sync)
    return cmds, player, dl, relay, live


async def test_cancel_before_the_manifest_fails_it_when_it_comes() -> None:
    io = _io()
    cmds, _, dl, _, _ = _playback(io)
    assert cmds.cancel({"bc": "b-5"}) == {"cancelled": "b-5", "found": False}
    m, _ = _bcast("b-5")
    dl.on_manifest("x", "b-5", encode(m))
    assert io.acked == [("b-5", AckState.FAILED, "cancelled", None)]


async def test_play_refuses_unknown_broadcasts_answers_a_played_one_and_checks_its_arguments() -> None:
    io = _io()
    cmds, player, *_ = _playback(io)
    with pytest.raises(CommandRejected, match="unknown broadcast"):
        cmds.play({"bc": "b-6", "at": NOW})
    io.finished.finish("b-6", AckState.PLAYED, "")
    assert cmds.play({"bc": "b-6", "at": NOW}) == {"bc": "b-6", "already": "played"}
    assert io.acked[-1] == ("b-6", AckState.PLAYED, "", None) and player.started == []
    with pytest.raises(BadArgs):
        cmds.play({"bc": "b-6", "at": "soon"})
    with pytest.raises(BadArgs):
        cmds.volume({"level": 101})


def _held(io: FakeIO, dl: Downloads, bc: str) -> None:
    """Download ``bc`` (held for a ``play``) to ``verified``."""
    m, frames = _bcast(bc)
    dl.on_manifest("x", bc, encode(m))
    for f in frames:
        dl.on_chunk(bc, f)
    assert io.acked[-1] == (bc, AckState.VERIFIED, "", None)


async def until(pred: Callable[[], object], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(0.005)


async def test_a_repeated_play_never_starts_a_broadcast_twice_and_re_sends_the_ack() -> None:
    """A controller that lost track (restart, lost ack) asks again with new command ids."""
    io = _io()
    cmds, player, dl, _, _ = _playback(io, time_scale=0.5)  # 300 ms of audio plays 150 ms
    desk = CommandDesk(io)
    cmds.register(desk)
    _held(io, dl, "b-8")
    topic = io.topics.cmd(io.node_id)
    desk.on_command(topic, _command("play:b-8:1", "play", {"bc": "b-8", "at": NOW}))
    await until(lambda: player.started == ["b-8"], "b-8 started")
    acks = len(io.acked)
    desk.on_command(topic, _command("play:b-8:2", "play", {"bc": "b-8", "at": NOW + 500}))  # while playing
    assert io.acked[acks:] == [("b-8", AckState.PLAYING, "", None)]
    assert player.queue == [] and player.state_of("b-8") == AckState.PLAYING
    await until(lambda: player.played == ["b-8"], "b-8 played")
    desk.on_command(topic, _command("play:b-8:1", "play", {"bc": "b-8", "at": NOW}))  # same id: ignored
    desk.on_command(topic, _command("play:b-8:3", "play", {"bc": "b-8", "at": NOW}))  # after played
    got = [(r.id, r.status, r.data) for r in _responses(io)]
    assert got == [("play:b-8:1", "ok", {"bc": "b-8", "at_local": NOW}),
                   ("play:b-8:2", "ok", {"bc": "b-8", "already": "playing"}),
                   ("play:b-8:3", "ok", {"bc": "b-8", "already": "played"})]
    assert io.acked[-1] == ("b-8", AckState.PLAYED, "", None) and io.stats.commands_duplicate == 1
    assert player.queue == [] and player.current is None and player.started == ["b-8"]
    assert player.played == ["b-8"]
    # the playing ack and every played one, the re-sent one too, say when it began (the controller's
    # clock: a controller that learns of the start only now records it when it happened)
    assert io.began[0] == ("b-8", AckState.PLAYING, NOW)
    assert io.began[-2:] == [("b-8", AckState.PLAYED, NOW)] * 2


async def test_a_stopped_broadcast_stays_finished_but_a_preempted_one_plays_again() -> None:
    io = _io()
    cmds, player, dl, _, _ = _playback(io)
    _held(io, dl, "b-9")
    cmds.play({"bc": "b-9", "at": NOW})
    await until(lambda: player.started == ["b-9"], "b-9 started")
    assert cmds.stop({"bc": "b-9"}) == {"stopped": "b-9"}
    assert cmds.play({"bc": "b-9", "at": NOW}) == {"bc": "b-9", "already": "failed", "reason": "stopped"}
    assert io.acked[-1] == ("b-9", AckState.FAILED, "stopped", None)
    assert player.started == ["b-9"] and player.queue == []
    io.finished.finish("b-9", AckState.FAILED, "preempted")  # the controller's resume policy
    assert cmds.play({"bc": "b-9", "at": NOW, "offset_ms": 100}) == {"bc": "b-9", "at_local": NOW,
                                                                     "replay": True}
    await until(lambda: player.started == ["b-9", "b-9"], "b-9 started again")
    assert "b-9" not in io.finished
    player.stop_current()


async def test_play_stream_of_the_stream_it_relays_is_not_restarted() -> None:
    io = _io()
    cmds, _, _, relay, _ = _playback(io)
    url = "http://127.0.0.1:9/live.mp3"  # nothing listens: the fetcher keeps retrying
    assert cmds.play_stream({"url": url}) == {"playing": url, "source": "relay"}
    changes = io.changes
    assert cmds.play_stream({"url": url}) == {"playing": url, "source": "relay", "already": "playing"}
    assert io.changes == changes and relay.url == url  # not stopped and started again
    relay.stop()


async def test_volume_power_and_a_stream_refused_while_off() -> None:
    io = _io()
    cmds, player, _, relay, _ = _playback(io)
    assert cmds.volume({"level": 30}) == {"volume": 30} and player.volume == 30
    assert cmds.power({"on": False}) == {"power": False} and not player.power
    with pytest.raises(CommandRejected, match="power_off"):
        cmds.play_stream({"url": "http://radio.example/live.mp3"})
    assert relay.url == "" and io.changes == 2  # volume, power
    assert cmds.stop({}) == {"stopped": ""}


async def test_live_session_registers_its_commands_and_emergency_powers_on() -> None:
    io = _io()
    _, player, _, _, live = _playback(io)
    desk = CommandDesk(io)
    live.register(desk)
    assert desk.names == ["live_start", "live_stop"]
    player.set_power(False)
    desk.on_command("x", _command("c1", "live_start", {"session": "s-1"}))
    emergency = {"session": "s-2", "priority": Priority.EMERGENCY.value}
    desk.on_command("x", _command("c2", "live_start", emergency))
    assert [(r.status, r.error) for r in _responses(io)] == [("error", "power_off"), ("ok", "")]
    assert live.active == "s-2" and player.power
    live.end("stopped")
    assert live.ended == {"s-2": "stopped"} and not live.active


# --------------------------------------------------------------------------- membership, telemetry


class FakeLink:
    is_connected = True

    def __init__(self) -> None:
        self.subscribed: list[list[str]] = []
        self.unsubscribed: list[list[str]] = []

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed.append(topics)

    def unsubscribe(self, topics: list[str]) -> None:
        self.unsubscribed.append(topics)


async def test_membership_follows_the_config_groups_and_volume() -> None:
    io = _io()
    volumes: list[int] = []
    mem = Membership(io, initial_groups=["g-a", "BAD"], on_volume=volumes.append)
    link = FakeLink()
    mem.connected(cast(AsyncMqttClient, link))
    assert link.subscribed[0] == io.topics.node_subscriptions("n-1")
    assert link.subscribed[1] == io.topics.group_subscriptions("g-a") and mem.in_group("g-a")
    cfg = NodeConfig(node_id="n-1", groups=["g-b"], volume=55)
    mem.on_config(io.topics.config("n-1"), encode(cfg))
    assert volumes == [55] and mem.requested == {"g-b"}
    assert link.unsubscribed == [io.topics.group_subscriptions("g-a")]
    mem.on_config(io.topics.config("n-1"), encode(NodeConfig(node_id="other")))
    assert io.stats.payload_errors == 1 and mem.config == cfg


async def test_reporter_tells_what_plays_and_numbers_heartbeats() -> None:
    io = _io()
    player = _player(io)
    relay = RelayFetcher(io.node_id, io.changed)
    live = LiveReceiver(io, player)
    sync = ClockSync(io.node_id, NodeClock(), lambda _b: True, io.later)
    rep = Reporter(io, random.Random(1), fw="fw-t", heartbeat_s=10,
                   telemetry_s=60, player=player, live=live, relay=relay, storage_used=lambda: 1024 * 1024,
                   sync=sync)
    now = time.monotonic()
    rep.connected(now, "sess")
    rep.tick(now + 1, "sess")  # nothing due yet
    rep.tick(now + 10, "sess")
    assert len(io.on("heartbeat")) == 2 and io.stats.heartbeats == 2
    [tel] = [decode(Telemetry, b) for b in io.on("telemetry")]
    assert (tel.source, tel.playing, tel.fw, tel.volume, tel.power) == ("idle", "", "fw-t", 70, True)
    assert tel.storage_free_kb == 8192 - 1024


async def test_a_play_that_came_too_late_is_failed_then_a_catch_up_plays_it_from_the_kept_file() -> None:
    # docs/protocol.md §3: a play whose audio would be over by the time it starts ends
    # failed/too_late; the unit keeps the file, and the controller's catch-up (a play from the
    # start) plays it — once: a further play is answered with the state, starting nothing.
    io = _io()
    cmds, player, dl, _, _ = _playback(io)
    _held(io, dl, "b-t")
    cmds.play({"bc": "b-t", "at": NOW - 3_600_000})  # an hour ago: long over
    await until(lambda: io.acked[-1][1:3] == (AckState.FAILED, "too_late"), "b-t too late")
    assert player.started == [] and io.finished.get("b-t") == (AckState.FAILED, "too_late")
    catch_up = cmds.play({"bc": "b-t", "at": NOW, "offset_ms": 0})
    assert catch_up == {"bc": "b-t", "at_local": NOW, "replay": True}
    await until(lambda: player.played == ["b-t"], "the catch-up played")
    assert cmds.play({"bc": "b-t", "at": NOW}) == {"bc": "b-t", "already": "played"}
    assert player.started == ["b-t"]
