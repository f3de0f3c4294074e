"""What the gateway publishes for its child boards (docs/protocol.md §7.5), without a line or a
broker: :class:`devices.serial.boards.Boards` on the fake GatewayIO of test_serial_parts and a
fake bus master answering with status blocks. Issue 13: S5 (a reboot's ``shutdown`` carries the
session it ends, the next ``online`` a new one), S6 (a child's telemetry says its source and
firmware), S7 (heartbeat ``seq`` starts at 0 again with each new session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from devices import protocol as p
from devices.serial.boards import Boards
from devices.serial.commands import GatewayCommands
from devices.serial.contract import Child
from devices.serial.master import BusMaster
from devices.serial.port import SerialLink
from devices.serial.wire import BoardStatus, Cmd
from tests.devices.test_serial_parts import FakeBoards, FakeGatewayIO, _config, _parts, until


@dataclass
class FakeBus:
    """Answers every request with ``status`` (after applying VOLUME/RELAY to it)."""

    status: BoardStatus = field(default_factory=lambda: BoardStatus(uptime_s=100, fw=(1, 2)))
    seen: list[tuple[int, Cmd, int | None]] = field(default_factory=list)

    async def request(self, addr: int, cmd: Cmd, arg: int | None = None, *, attempts: int | None = None
                      ) -> BoardStatus:
        self.seen.append((addr, cmd, arg))
        s = self.status
        if cmd == Cmd.VOLUME and arg is not None:
            s = self.status = BoardStatus(power=s.power, relay=s.relay, volume=arg, input=s.input,
                                          faults=s.faults, uptime_s=s.uptime_s, fw=s.fw)
        return s


def _boards() -> tuple[FakeGatewayIO, FakeBus, Boards, Child]:
    io, bus = FakeGatewayIO(_config()), FakeBus()
    boards = Boards(io, cast(SerialLink, None), cast(BusMaster, bus))  # neither is used but through bus
    child = io.kids["c-1"]
    child.status, child.board = "unknown", None
    return io, bus, boards, child


def _sent(io: FakeGatewayIO, node: str, leaf: str, model: type[Any]) -> list[Any]:
    return [p.decode(model, b) for t, b in io.sent if t == io.topics.node(node, leaf)]


async def test_reboot_shutdown_carries_the_old_session_and_online_a_new_one_with_seq_from_0() -> None:
    io, bus, boards, child = _boards()
    boards.update_board(child, bus.status)  # first answer: online
    boards.heartbeats()
    boards.heartbeats()
    first = child.session
    await boards.reboot(child)
    bus.status = BoardStatus(uptime_s=1, fw=(1, 2))  # it restarted
    boards.update_board(child, bus.status)
    boards.heartbeats()
    states = [(s.status.value, s.reason, s.session) for s in _sent(io, "c-1", "state", p.NodeState)]
    assert states == [("online", "", first), ("shutdown", "reboot", first), ("online", "", child.session)]
    assert child.session != first
    beats = [(h.session, h.seq) for h in _sent(io, "c-1", "heartbeat", p.Heartbeat)]
    assert beats == [(first, 0), (first, 1), (child.session, 0)]


async def test_a_restart_seen_by_uptime_starts_a_new_session_and_the_config_volume_again() -> None:
    # S3/S7: the board restarted by itself (uptime went backwards, volume back to its default):
    # afterwards the child is online with a new session, heartbeats count from 0, and the
    # gateway set the config's volume on the board again.
    io, bus, boards, child = _boards()
    child.volume = 55
    boards.update_board(child, bus.status)
    first = child.session
    boards.heartbeats()
    bus.status = BoardStatus(uptime_s=2, volume=70, fw=(1, 2))
    boards.update_board(child, bus.status)
    await boards.apply_volume(child)
    boards.heartbeats()
    assert child.session != first and child.online
    assert [(h.session, h.seq) for h in _sent(io, "c-1", "heartbeat", p.Heartbeat)][-1] == (child.session, 0)
    assert (1, Cmd.VOLUME, 55) in bus.seen and child.board is not None and child.board.volume == 55


async def test_child_telemetry_says_source_and_firmware() -> None:
    io, bus, boards, child = _boards()
    boards.update_board(child, bus.status)
    child.playing = "b-1"
    boards.send_telemetry(child)
    idle, playing = _sent(io, "c-1", "telemetry", p.Telemetry)[-2:]
    assert (idle.source, idle.playing, idle.fw) == ("idle", "", "1.2")
    assert (playing.source, playing.playing, playing.fw) == ("bulletin", "b-1", "1.2")


async def test_stop_with_nothing_playing_sends_nothing_and_a_stray_closed_relay_is_opened() -> None:
    # S2/S3: `stop` for a child whose relay carries nothing is answered {"stopped": ""} and puts
    # nothing on the line; a relay the board reports closed while nothing plays to it (closed by
    # the board itself, or a lost RELAY 0) is opened at the next poll.
    io, bus, boards, child = _boards()
    boards.update_board(child, bus.status)
    fake_boards = FakeBoards()
    dl, line = _parts(io, fake_boards)
    cmds = GatewayCommands(io, boards=fake_boards, line=line, downloads=dl)
    cmds.on_command([child], io.topics.cmd(child.node_id), p.encode(p.Command(id="s1", name="stop")))
    await until(lambda: cmds.handled == 1, what="stop answered")
    [resp] = [p.decode(p.CommandResponse, b) for t, b in io.sent if t.endswith("/resp")]
    assert (resp.status, resp.data) == ("ok", {"stopped": ""}) and fake_boards.requests == []

    bus.status = BoardStatus(relay=True, uptime_s=101, fw=(1, 2))
    bus.seen.clear()
    await boards._poll(child)  # one round of the poll loop for this child
    assert bus.seen == [(1, Cmd.POLL, None), (1, Cmd.RELAY, 0)]
