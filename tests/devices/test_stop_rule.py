"""§2 ``stop`` with ``bc`` and ``reason`` (D1): the rule once (devices/node_rules.py), and the
simulator and the serial gateway following it: a stop naming a broadcast stops only that one,
reports it ``failed`` with the stop's reason (``preempted`` when an emergency takes the zone), and
a stop for a broadcast the unit does not hold does nothing."""

from __future__ import annotations

import pytest

from devices import protocol as p
from devices.serial.commands import GatewayCommands
from firmware_sim.commands import BadArgs
from tests.devices.test_serial_parts import FakeBoards, FakeGatewayIO, _config, _parts
from tests.devices.test_serial_parts import _bcast as _line_bcast
from tests.devices.test_serial_parts import until as line_until
from tests.firmware_sim.test_parts import NOW, _held, _io, _playback, until

pytestmark = pytest.mark.timeout(30)


def test_stop_args_default_to_stopped_and_refuse_bad_values() -> None:
    assert p.stop_args({}) == (None, "stopped")
    assert p.stop_args({"bc": "b-1", "reason": "preempted"}) == ("b-1", "preempted")
    for bad in ({"reason": "because"}, {"bc": 7}, {"bc": "Not An Id"}):
        with pytest.raises(ValueError):
            p.stop_args(bad)
    assert p.stop_applies(None, "") and p.stop_applies(None, "b-1") and p.stop_applies("b-1", "b-1")
    assert not p.stop_applies("b-1", "b-2") and not p.stop_applies("b-1", "")


async def test_the_simulator_stops_only_the_named_broadcast_and_reports_the_stops_reason() -> None:
    io = _io()
    cmds, player, dl, _, _ = _playback(io)
    _held(io, dl, "b-1")
    _held(io, dl, "b-2")
    cmds.play({"bc": "b-1", "at": NOW})
    await until(lambda: player.playing == "b-1", "b-1 playing")
    assert cmds.stop({"bc": "b-3", "reason": "preempted"}) == {"stopped": ""}  # not held: nothing
    assert player.playing == "b-1"
    assert cmds.stop({"bc": "b-2", "reason": "preempted"}) == {"stopped": "b-2"}  # held: dropped
    assert io.acked[-1] == ("b-2", p.AckState.FAILED, "preempted", None) and player.playing == "b-1"
    assert cmds.stop({"bc": "b-1", "reason": "preempted"}) == {"stopped": "b-1"}
    assert io.acked[-1] == ("b-1", p.AckState.FAILED, "preempted", None) and player.playing == ""
    with pytest.raises(BadArgs):
        cmds.stop({"reason": "because"})


async def test_the_gateway_stops_a_childs_named_broadcast_with_the_stops_reason() -> None:
    io, boards = FakeGatewayIO(_config()), FakeBoards()
    dl, line = _parts(io, boards)
    cmds = GatewayCommands(io, boards=boards, line=line, downloads=dl)
    c1 = io.children()[:1]
    m, frames = _line_bcast("b-p", duration_ms=3_600_000)  # long enough to be on air when stopped
    dl.on_manifest(c1, "t/node/c-1/bcast/b-p/manifest", "b-p", p.encode(m))
    for f in frames:
        dl.on_chunk("b-p", f)
    await line_until(lambda: line.playing == "b-p" and boards.closed == {"c-1"}, what="b-p on air")

    def stop(cid: str, args: dict[str, object]) -> None:
        cmds.on_command(c1, "t/node/c-1/cmd", p.encode(p.Command(id=cid, name="stop", args=args)))

    stop("s1", {"bc": "b-other", "reason": "preempted"})
    await line_until(lambda: cmds.handled == 1, what="the first answer")
    assert line.playing == "b-p"  # another broadcast named: nothing stopped
    stop("s2", {"bc": "b-p", "reason": "preempted"})
    await line_until(lambda: cmds.handled == 2, what="the second answer")
    stop("s3", {"reason": "because"})
    await line_until(lambda: cmds.handled == 3, what="the third answer")
    resp = [p.decode(p.CommandResponse, b) for t, b in io.sent if t.endswith("/resp")]
    assert [(r.id, r.status, r.data) for r in resp][:2] == [("s1", "ok", {"stopped": ""}),
                                                         ("s2", "ok", {"stopped": "b-p"})]
    assert resp[2].status == "error" and "reason" in resp[2].error
    assert io.acked[-1] == ("c-1", "b-p", p.AckState.FAILED, "preempted") and boards.closed == set()
