"""Live sessions without a broker: LiveHub on a FakeUnitBus — what reaches the units' topics (the
live_start announce, the framed audio, the last frame and live_stop), and the watchdog ending a
session whose phone went quiet."""

from __future__ import annotations

from typing import Any

import pytest

from controller.airing.aircontrol import AirControl
from controller.fleet.presence import Presence
from controller.live.hub import LiveHub
from controller.live.session import FRAME_BYTES
from devices import protocol as p
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(30)

Z = p.AudioScope(kind="group", id="z")
LOUD = (b"\x00\x40\x00\xc0") * (FRAME_BYTES // 4)  # one frame of a loud square wave


class _NoWriter:
    def submit(self, op: object) -> None:
        pass

    def submit_row(self, apply: object, row: object) -> None:  # (presence changes are bulk rows)
        pass


def hub(**kw: Any) -> tuple[FakeUnitBus, AirControl, LiveHub]:
    bus = FakeUnitBus()
    presence = Presence(bus, _NoWriter())  # type: ignore[arg-type]
    for node_id, zone in (("z-1", "z"), ("z-2", "z"), ("y-1", "y")):
        presence.provision(node_id, [zone])
    air = AirControl(bus, presence.groups_of, margin_ms=0)
    return bus, air, LiveHub(bus, air, presence, **kw)


async def test_audio_is_framed_in_order_on_the_zone_topic_and_stop_ends_it_on_the_units() -> None:
    bus, air, live = hub()
    said: list[dict[str, Any]] = []
    s = live.open(user="op", priority=p.Priority.NORMAL, nodes=["z-1", "z-2"], scopes=[Z], notify=said.append)
    assert s.state == "live" and [m["state"] for m in said if m["type"] == "state"] == ["waiting", "live"]
    [start] = bus.sent("live_start")
    assert start.scopes == (Z,) and start.args["session"] == s.id

    live.feed(s, LOUD * 3 + LOUD[:100])  # three frames and the start of a fourth
    frames = bus.on_topic(f"/bcast/{s.id}/live")
    assert [m.topic for m in frames] == [bus.topics.live(Z, s.id)] * 3 and all(m.qos == 0 for m in frames)
    parsed = [p.parse_live_frame(m.payload) for m in frames]
    assert [f.seq for f in parsed] == [0, 1, 2] and all(f.pcm == LOUD for f in parsed)

    live.end(s, "stopped")
    last = p.parse_live_frame(bus.on_topic(f"/bcast/{s.id}/live")[-1].payload)
    assert last.last and last.seq == 3 and last.pcm == LOUD[:100]  # what was pending goes out
    [stop] = bus.sent("live_stop")
    assert stop.args == {"session": s.id, "reason": "stopped"}
    assert said[-1]["state"] == "ended" and air.on_air(["z-1"]) == []
    live.end(s, "stopped")  # idempotent
    assert len(bus.sent("live_stop")) == 1


async def test_a_second_session_on_a_held_zone_waits_and_a_quiet_phone_is_ended() -> None:
    bus, _, live = hub(no_audio_s=0.3)
    first = live.open(user="a", priority=p.Priority.NORMAL, nodes=["z-1"], scopes=[Z], notify=lambda m: None)
    second = live.open(user="b", priority=p.Priority.NORMAL, nodes=["z-2"], scopes=[Z], notify=lambda m: None)
    assert first.state == "live" and second.state == "waiting"  # one voice per zone
    live.feed(second, LOUD)
    assert bus.on_topic(f"/bcast/{second.id}/live") == [] and second.stats.dropped_waiting == len(LOUD)
    await until(lambda: first.state == "ended", "the quiet session ended by the watchdog")
    assert first.reason == "no_audio"
    await until(lambda: second.state == "live", "the waiting session on air once the zone is free")
