"""Relays (tiếp sóng) without a broker: RelayHub in node_fetch mode on a FakeUnitBus — play_stream
to the zone when the relay goes on air, stop when it ends (by staff, its duration, an emergency),
play_stream again after a reconnect, and the units' own relay states in the API's view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.airing.aircontrol import AirControl
from controller.fleet.presence import Presence
from controller.relays.hub import RelayHub
from controller.relays.session import RelaySession
from devices import protocol as p
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(30)

Z = p.AudioScope(kind="group", id="z")
URL = "http://radio.example/vov1.mp3"


class _NoWriter:
    def submit(self, op: object) -> None:
        pass

    def submit_row(self, apply: object, row: object) -> None:  # (telemetry is a bulk row)
        pass


def hub() -> tuple[FakeUnitBus, Presence, AirControl, RelayHub]:
    bus = FakeUnitBus()
    presence = Presence(bus, _NoWriter())  # type: ignore[arg-type]
    for node_id in ("z-1", "z-2"):
        presence.provision(node_id, ["z"])
        bus.heartbeat(node_id)
    air = AirControl(bus, presence.groups_of, margin_ms=0)
    return bus, presence, air, RelayHub(bus, air, presence, owner="ctl-test")


async def relay(relays: RelayHub, **kw: object) -> RelaySession:
    args: dict[str, object] = {"user": "op", "url": URL, "mode": "node_fetch", "priority": p.Priority.NORMAL,
                               "nodes": ["z-1", "z-2"], "scopes": [Z], "start_at": None, "duration_s": None}
    return await relays.create(**{**args, **kw})  # type: ignore[arg-type]


async def test_on_air_at_once_then_stopped_by_staff_frees_the_zone() -> None:
    bus, presence, air, relays = hub()
    s = await relay(relays)
    [play] = bus.sent("play_stream")
    assert play.scopes == (Z,) and play.args == {"url": URL}
    assert s.state == "playing" and air.on_air(["z-1"]) == [s.id]
    bus.deliver("telemetry", "z-1", p.Telemetry(node_id="z-1", relay="playing", playing=URL))
    view = relays.describe(s)
    assert view["units_playing"] == ["z-1"] and view["owner"] == "ctl-test"
    relays.end(s, "stopped by staff")
    [stop] = bus.sent("stop")
    assert stop.scopes == (Z,) and air.on_air(["z-1"]) == []
    relays.end(s, "again")
    assert len(bus.sent("stop")) == 1
    await relays.close()


async def test_a_relay_ends_after_its_duration_and_an_emergency_ends_it_at_once() -> None:
    bus, _, air, relays = hub()
    short = await relay(relays, duration_s=0.2)
    await until(lambda: short.state == "ended", "the relay's duration over")
    assert short.reason == "finished" and len(bus.sent("stop")) == 1

    long = await relay(relays)
    air.offer("urgent", priority=p.Priority.EMERGENCY, duration_ms=5000, scopes=[Z], nodes=["z-1", "z-2"],
              play_at=None, ready=lambda: True)
    assert long.state == "ended" and long.reason == "preempted"
    assert len(bus.sent("stop")) == 2 and [c.args["bc"] for c in bus.sent("play")] == ["urgent"]
    await relays.close()


async def test_play_stream_is_repeated_after_a_reconnect_and_a_window_waits_for_its_start() -> None:
    bus, _, _, relays = hub()
    later = datetime.now(tz=UTC) + timedelta(hours=1)
    waiting = await relay(relays, start_at=later, duration_s=600)
    assert waiting.state == "scheduled" and bus.sent("play_stream") == []
    now = await relay(relays, nodes=["z-1"], scopes=[p.AudioScope(kind="node", id="z-1")])
    assert len(bus.sent("play_stream")) == 1
    bus.disconnect()
    await bus.connect()  # commands sent while the broker was away are lost: told again
    again = bus.sent("play_stream")
    assert len(again) == 2 and again[1].scopes == (p.AudioScope(kind="node", id="z-1"),)
    assert now.state == "playing"
    await relays.close()
