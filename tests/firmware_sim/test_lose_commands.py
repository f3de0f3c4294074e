"""The simulator's lost-command fault (Faults.lose_commands): the first N commands of a name never
reach the unit — nothing executed, nothing answered, not remembered by the dedupe — and the next
one is handled as usual. The e2e reconcile tests (tests/e2e/test_reconcile.py) lose a play or a stop
this way."""

from __future__ import annotations

import pytest

from devices.protocol import CommandResponse, decode
from firmware_sim.commands import CommandDesk
from firmware_sim.faults import Faults
from tests.firmware_sim.test_parts import _command, _io


def test_the_first_play_is_lost_and_the_next_is_answered() -> None:
    io = _io(faults=Faults(lose_commands={"ping": 1}))
    desk = CommandDesk(io)
    desk.register("ping", lambda args: {"uptime_s": 42})
    topic = io.topics.cmd(io.node_id)
    desk.on_command(topic, _command("c-1", "ping"))  # lost on the way
    assert io.on("resp") == [] and desk.lost["ping"] == 1
    desk.on_command(topic, _command("c-1", "ping"))  # the same id again: now it arrives
    desk.on_command(topic, _command("c-2", "ping"))
    answers = [decode(CommandResponse, b) for b in io.on("resp")]
    assert [(r.id, r.status) for r in answers] == [("c-1", "ok"), ("c-2", "ok")] and desk.lost["ping"] == 1


def test_lose_commands_is_bounded() -> None:
    with pytest.raises(ValueError):
        Faults(lose_commands={"play": 1000})
    with pytest.raises(ValueError):
        Faults(lose_commands={"Bad Name": 1})
