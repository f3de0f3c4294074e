"""Command correlation ids (docs/protocol.md §2, D6): 1-64 printable characters, and never the same
twice — also across controller restarts (each process makes its own random ids), so a restarted
controller's commands cannot collide with what a unit's 10-minute dedupe table remembers."""

from __future__ import annotations

import re

from devices import protocol as p
from devices.replies import ReplyRouter


def test_ids_are_random_short_and_differ_between_two_controller_processes() -> None:
    before, after = ReplyRouter(), ReplyRouter()  # a controller, and the same one restarted
    first = [before.open(p.now_ms() + 10_000, None)[0] for _ in range(500)]
    second = [after.open(p.now_ms() + 10_000, None)[0] for _ in range(500)]
    assert all(re.fullmatch(r"c-[0-9a-f]{16}", i) for i in first + second)
    assert len(set(first + second)) == 1000  # none repeats, within a process or after a restart
    cmd = p.Command(id=first[0], name="play", args={"bc": "b-1", "at": 1, "offset_ms": 0})
    assert p.decode(p.Command, p.encode(cmd)).id == first[0] and len(first[0]) <= 64
