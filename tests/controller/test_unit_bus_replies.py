"""Broker-free: each service gets its units' replies from the bus by correlation id, none parses an id.

The shared in-memory :class:`devices.link.UnitBus` of tests/fakes.py (the real ReplyRouter for
the ids) stands in for the MQTT link: commands, air control's ``play``, live ``live_start`` and a
relay's ``play_stream`` are answered as a unit would, and each answer lands where it belongs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from controller.airing.aircontrol import AirControl
from controller.fleet.commands import CommandService
from controller.fleet.presence import Presence
from controller.live.hub import LiveHub
from controller.relays.hub import RelayHub
from devices import protocol as p
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(30)


class Bus(FakeUnitBus):
    """The shared FakeUnitBus (tests/fakes.py), plus the ids of the commands called ``name``."""

    def ids(self, name: str) -> list[str]:
        return [c.id for c in self.sent(name)]


class Writer:
    def __init__(self) -> None:
        self.ops: list[Callable[..., None]] = []

    def submit(self, op: Callable[..., None]) -> None:
        self.ops.append(op)

    def submit_row(self, apply: Callable[..., None], row: object) -> None:  # a bulk row: one op
        self.ops.append(lambda s: apply(s, [row]))


def fleet(*units: tuple[str, list[str]]) -> tuple[Bus, Presence]:
    bus = Bus()
    presence = Presence(bus, Writer())  # type: ignore[arg-type]  # a list of ops, not a database
    for node_id, zones in units:
        presence.provision(node_id, zones)
    return bus, presence


async def test_a_command_gets_its_own_replies_and_a_late_one_still_shows() -> None:
    bus, presence = fleet(("a-1", ["z"]), ("a-2", ["z"]))
    commands = CommandService(bus, presence, Writer())  # type: ignore[arg-type]
    bus.deliver("heartbeat", "a-1", p.Heartbeat(node_id="a-1", session="s1", seq=1))  # a-2 stays silent
    assert presence.is_online("a-1") and not presence.is_online("a-2")
    call = asyncio.create_task(commands.run("power", {"on": False}, zone="z", timeout_s=0.5))
    await until(lambda: bool(bus.ids("power")), "the command sent")
    [sent] = bus.commands
    scopes, cmd_id = list(sent.scopes), sent.id
    assert scopes == [p.AudioScope(kind="group", id="z")]  # one publish on the zone's topic
    bus.answer(cmd_id, "a-1", power=False)
    bus.answer(cmd_id, "a-1", power=False)  # duplicate delivery
    bus.answer("c-never-sent", "a-1")
    outcome = await call
    assert {r.node_id: r.status for r in outcome.results} == {"a-1": "ok", "a-2": "offline"}
    assert outcome.id == cmd_id and commands.stats["duplicate"] == 1
    assert bus.router.stats["unknown_id"] == 1
    assert presence.telemetry_of("a-1") == {"power": False}
    bus.answer(cmd_id, "a-2", power=False)  # it did it after all
    assert commands.stats["late"] == 1 and presence.telemetry_of("a-2") == {"power": False}


async def test_a_refused_play_reaches_the_refusal_listeners() -> None:
    bus, presence = fleet(("p-1", ["z"]))
    air = AirControl(bus, presence.groups_of, margin_ms=0)
    refused: list[tuple[str, str, str]] = []
    air.on_refused(lambda bc, n, why: refused.append((bc, n, why)))
    air.offer("b-1", priority=p.Priority.NORMAL, duration_ms=1000, nodes=["p-1"], play_at=None,
              scopes=[p.AudioScope(kind="group", id="z")], ready=lambda: True)
    [play] = bus.ids("play")
    assert air.airing("b-1") and not air.will_resume("b-1")
    bus.answer(play, "p-1", "error", "audio incomplete")
    bus.answer(play, "p-1", "ok")  # an ok is nobody's business
    assert refused == [("b-1", "p-1", "audio incomplete")]
    air.finished("b-1")
    assert not air.airing("b-1")


async def test_live_and_relay_refusals_land_on_their_own_session() -> None:
    bus, presence = fleet(("l-1", ["z"]), ("l-2", ["z"]))
    air = AirControl(bus, presence.groups_of)
    live = LiveHub(bus, air, presence)
    relays = RelayHub(bus, air, presence, owner="ctl-test")
    scopes = [p.AudioScope(kind="group", id="z")]
    s = live.open(user="op", priority=p.Priority.NORMAL, nodes=["l-1", "l-2"], scopes=scopes,
                  notify=lambda msg: None)
    await until(lambda: bool(bus.ids("live_start")), "live_start sent")
    bus.answer(bus.ids("live_start")[0], "l-2", "error", "power_off")
    bus.answer(bus.ids("live_start")[0], "stranger", "error", "power_off")  # not one of its units
    assert s.refused == {"l-2": "power_off"}
    live.end(s, "stopped")
    r = await relays.create(user="op", url="http://radio.example/a.mp3", mode="node_fetch",
                            priority=p.Priority.NORMAL, nodes=["l-1", "l-2"], scopes=scopes,
                            start_at=None, duration_s=None)
    await until(lambda: bool(bus.ids("play_stream")), "play_stream sent")
    bus.answer(bus.ids("play_stream")[0], "l-1", "error", "power_off")
    assert relays.describe(r)["units_refused"] == {"l-1": "power_off"}
    bus.answer(bus.ids("play_stream")[0], "l-1", "ok")
    assert relays.describe(r)["units_refused"] == {}
    await relays.close()
