"""Bad input to a unit, one rule for the simulator and the serial gateway (docs/protocol.md §2/§6,
issue 13 D16): a request whose envelope is bad is ignored — no answer, counted — and a
well-formed request with wrong arguments is answered ``error`` ``bad arguments: <why>``
(:func:`devices.protocol.bad_arguments`). No broker: the parts on their fake IOs."""

from __future__ import annotations

import pytest

from devices import protocol as p
from devices.serial.commands import GatewayCommands
from firmware_sim.commands import CommandDesk
from tests.devices.test_serial_parts import FakeBoards, FakeGatewayIO, _config, _parts, until
from tests.firmware_sim.test_parts import _command, _io, _playback, _responses

pytestmark = [pytest.mark.timeout(60)]

#: envelopes a unit must not answer: not JSON, not an object, no/another v, wrong types
BAD_ENVELOPES = [
    b"{not json",
    b"[1, 2]",
    b'{"id": "e1", "name": "ping", "args": {}}',
    b'{"v": 2, "id": "e2", "name": "ping", "args": {}}',
    b'{"v": "1", "id": "e3", "name": "ping", "args": {}}',
    b'{"v": 1, "id": 4, "name": "ping", "args": {}}',
    b'{"v": 1, "id": "e5", "name": "ping", "args": [1]}',
    b'{"v": 1, "id": "e6", "name": "ping", "args": {}, "expires_at": "soon"}',
    b'{"v": 1, "id": "", "name": "ping"}',
]

#: well-formed requests with wrong arguments, and the reason each must give after "bad arguments: "
BAD_ARGS = [
    ("b1", "volume", {"level": "60"}, "args.level must be an integer 0..100"),
    ("b2", "volume", {"level": 101}, "args.level must be an integer 0..100"),
    ("b3", "power", {"on": "true"}, "args.on must be a boolean"),
    ("b4", "cancel", {"bc": "Not An Id"}, "args.bc must be a broadcast id"),
    ("b5", "play", {"bc": 7, "at": 0}, "args.bc must be a broadcast id"),
    ("b6", "stop", {"reason": "because"}, "args.reason must be 'stopped' or 'preempted'"),
]


def test_the_rule_is_one_text() -> None:
    assert p.bad_arguments("args.x is wrong") == "bad arguments: args.x is wrong"
    assert p.BAD_ARGUMENTS == "bad arguments"


async def test_simulated_unit_ignores_bad_envelopes_and_answers_bad_arguments() -> None:
    io = _io()
    cmds, *_ = _playback(io)
    desk = CommandDesk(io)
    cmds.register(desk)
    desk.register("ping", lambda _args: {"uptime_s": 1})
    topic = io.topics.cmd(io.node_id)
    for payload in BAD_ENVELOPES:
        desk.on_command(topic, payload)
    assert _responses(io) == [] and io.stats.payload_errors == len(BAD_ENVELOPES)
    for cid, name, args, _ in BAD_ARGS:
        desk.on_command(topic, _command(cid, name, args))
    got = [(r.id, r.status, r.error, r.data) for r in _responses(io)]
    assert got == [(cid, "error", f"bad arguments: {why}", {}) for cid, _, _, why in BAD_ARGS]


async def test_serial_gateway_answers_for_its_child_by_the_same_rule() -> None:
    io, boards = FakeGatewayIO(_config()), FakeBoards()
    dl, line = _parts(io, boards)
    cmds = GatewayCommands(io, boards=boards, line=line, downloads=dl)
    child = io.children()[:1]
    topic = io.topics.cmd(child[0].node_id)
    for payload in BAD_ENVELOPES:
        cmds.on_command(child, topic, payload)
    assert io.sent == [] and io.bad_payloads == len(BAD_ENVELOPES)
    for cid, name, args, _ in BAD_ARGS:
        cmds.on_command(child, topic, p.encode(p.Command(id=cid, name=name, args=args)))
    await until(lambda: cmds.handled == len(BAD_ARGS), what="every bad-argument request answered")
    got = sorted((r.id, r.status, r.error) for r in
                 (p.decode(p.CommandResponse, b) for t, b in io.sent if t.endswith("/resp")))
    assert got == [(cid, "error", f"bad arguments: {why}") for cid, _, _, why in BAD_ARGS]
    assert boards.requests == []  # nothing reached the line


async def test_expires_at_null_or_absent_means_no_expiry() -> None:
    # D5: `"expires_at": null` (or no key) is a well-formed request that never expires: answered.
    io = _io()
    desk = CommandDesk(io)
    desk.register("ping", lambda _args: {"uptime_s": 1})
    topic = io.topics.cmd(io.node_id)
    desk.on_command(topic, b'{"v": 1, "id": "n1", "name": "ping", "args": {}, "expires_at": null}')
    desk.on_command(topic, b'{"v": 1, "id": "n2", "name": "ping"}')
    assert [(r.id, r.status) for r in _responses(io)] == [("n1", "ok"), ("n2", "ok")]
