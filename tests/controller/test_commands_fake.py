"""Commands to units without a broker: CommandService on a FakeUnitBus — one publish per scope,
each unit's reply (ok, error, silence, never heard of) in the outcome, requests refused before
anything is sent, and the outcome recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from controller.core.errors import ServiceError
from controller.fleet.commands import CommandService
from controller.fleet.presence import Presence
from devices import protocol as p
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(30)


class Ops:
    """A writer that keeps the database operations it is given (none is run here)."""

    def __init__(self) -> None:
        self.ops: list[Callable[..., Any]] = []

    def submit(self, op: Callable[..., Any]) -> None:
        self.ops.append(op)

    def submit_row(self, apply: Callable[..., Any], row: object) -> None:  # a bulk row: one op
        self.ops.append(lambda s: apply(s, [row]))


def service() -> tuple[FakeUnitBus, Presence, CommandService, Ops]:
    bus, ops = FakeUnitBus(), Ops()
    presence = Presence(bus, ops)  # type: ignore[arg-type]
    for node_id in ("u-1", "u-2", "u-3", "u-4"):
        presence.provision(node_id, ["z"])
    for node_id in ("u-1", "u-2", "u-3"):  # u-4 is never heard of
        bus.heartbeat(node_id)
    return bus, presence, CommandService(bus, presence, ops), ops  # type: ignore[arg-type]


async def test_each_unit_answers_for_itself_in_the_outcome() -> None:
    bus, presence, commands, ops = service()
    call = asyncio.create_task(commands.run("volume", {"level": 40}, nodes=["u-4", "u-3", "u-2", "u-1"],
                                            timeout_s=0.5, by="op"))
    await until(lambda: bool(bus.sent("volume")), "the command sent")
    [sent] = bus.sent("volume")
    assert sent.scopes == tuple(p.AudioScope(kind="node", id=n) for n in ("u-1", "u-2", "u-3", "u-4"))
    assert sent.args == {"level": 40}
    bus.answer(sent.id, "u-1", volume=40)
    bus.answer(sent.id, "u-2", "error", "amplifier fault")
    outcome = await call  # u-3 stays silent until the timeout
    assert outcome.id == sent.id
    assert [(r.node_id, r.status, r.error) for r in outcome.results] == [
        ("u-1", "ok", ""), ("u-2", "error", "amplifier fault"), ("u-3", "timeout", ""),
        ("u-4", "offline", "")]
    assert presence.telemetry_of("u-1") == {"volume": 40}  # only an ok reply changes what is shown
    assert presence.telemetry_of("u-2") == {}
    assert len(ops.ops) >= 1  # the outcome is recorded


async def test_a_zone_command_returns_as_soon_as_every_online_unit_answered() -> None:
    bus, _, commands, _ = service()
    call = asyncio.create_task(commands.run("power", {"on": False}, zone="z", timeout_s=20))
    await until(lambda: bool(bus.sent("power")), "the command sent")
    [sent] = bus.sent("power")
    assert sent.scopes == (p.AudioScope(kind="group", id="z"),)
    for n in ("u-1", "u-2", "u-3"):
        bus.answer(sent.id, n, power=False)
    outcome = await asyncio.wait_for(call, 5)  # not the 20 s timeout: u-4 is offline, nobody to wait for
    assert {r.node_id: r.status for r in outcome.results} == {"u-1": "ok", "u-2": "ok", "u-3": "ok",
                                                               "u-4": "offline"}


async def test_bad_requests_are_refused_before_anything_is_sent() -> None:
    bus, _, commands, _ = service()
    cases: list[tuple[dict[str, Any], int]] = [
        ({"name": "volume", "args": {"level": 101}, "nodes": ["u-1"]}, 422),
        ({"name": "volume", "args": {"level": 50}, "nodes": ["nobody"]}, 404),
        ({"name": "volume", "args": {"level": 50}, "zone": "empty"}, 409),
        ({"name": "volume", "args": {"level": 50}, "nodes": ["u-1"], "zone": "z"}, 422),
        ({"name": "volume", "args": {"level": 50}, "nodes": ["u-1"], "timeout_s": 0}, 422),
    ]
    for kw, status in cases:
        with pytest.raises(ServiceError) as err:
            await commands.run(**kw)
        assert err.value.status == status, kw
    bus.disconnect()
    with pytest.raises(ServiceError) as err:
        await commands.run("volume", {"level": 50}, nodes=["u-1"])
    assert err.value.status == 503
    assert bus.commands == []
