"""Air control without a broker: what it tells the units (``play``, ``stop``) on a FakeUnitBus when
broadcasts are offered, units get ready, an emergency comes and live sessions hold zones."""

from __future__ import annotations

import pytest

from controller.airing.aircontrol import AirControl, LiveHold
from controller.fleet.presence import Presence
from devices import protocol as p
from scheduler.arbiter import PreemptPolicy
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(30)

Z = p.AudioScope(kind="group", id="z")
Y = p.AudioScope(kind="group", id="y")


class _NoWriter:
    def submit(self, op: object) -> None:  # presence writes nothing these tests read
        pass

    def submit_row(self, apply: object, row: object) -> None:  # (telemetry is a bulk row)
        pass


def control(policy: PreemptPolicy = PreemptPolicy.DROP,
            ready_wait_s: float = 10.0) -> tuple[FakeUnitBus, AirControl]:
    bus = FakeUnitBus()
    presence = Presence(bus, _NoWriter())  # type: ignore[arg-type]
    for node_id, zone in (("z-1", "z"), ("z-2", "z"), ("y-1", "y")):
        presence.provision(node_id, [zone])
    return bus, AirControl(bus, presence.groups_of, policy=policy, margin_ms=0, ready_wait_s=ready_wait_s,
                           tick_s=0.02)


async def test_a_broadcast_starts_once_its_units_are_ready_on_its_own_scopes() -> None:
    bus, air = control()
    ready = {"z-1": False, "z-2": False}
    air.offer("b-1", priority=p.Priority.NORMAL, duration_ms=5000, scopes=[Z], nodes=["z-1", "z-2"],
              play_at=None, ready=lambda: all(ready.values()))
    assert air.airing("b-1") and bus.sent("play") == []
    ready["z-1"] = True
    air.unit_ready("b-1", "z-1", priority=p.Priority.NORMAL, duration_ms=5000)
    assert bus.sent("play") == []  # z-2 not ready yet
    ready["z-2"] = True
    air.unit_ready("b-1", "z-2", priority=p.Priority.NORMAL, duration_ms=5000)
    [play] = bus.sent("play")
    assert play.scopes == (Z,) and play.args["bc"] == "b-1" and play.args["offset_ms"] == 0
    assert air.on_air(["z-1"]) == ["b-1"] and air.on_air(["y-1"]) == []
    air.finished("b-1")
    assert not air.airing("b-1") and air.on_air(["z-1"]) == []


async def test_units_not_ready_by_the_deadline_do_not_hold_the_others_back() -> None:
    bus, air = control(ready_wait_s=0.2)
    air.start()
    try:
        air.offer("b-1", priority=p.Priority.NORMAL, duration_ms=5000, scopes=[Z], nodes=["z-1", "z-2"],
                  play_at=None, ready=lambda: False)
        await until(lambda: bool(bus.sent("play")), "the play after the ready deadline")
        # a unit that verifies after the start gets a catch-up item of its own, on its own topic
        air.unit_ready("b-1", "z-2", priority=p.Priority.NORMAL, duration_ms=5000)
        await until(lambda: len(bus.sent("play")) == 2, "z-2's catch-up play")
        catch_up = bus.sent("play")[1]
        assert catch_up.scopes == (p.AudioScope(kind="node", id="z-2"),) and catch_up.args["bc"] == "b-1"
    finally:
        await air.stop()


async def test_an_emergency_preempts_its_zone_only_and_the_other_waits_or_resumes() -> None:
    for policy, resumes in ((PreemptPolicy.DROP, False), (PreemptPolicy.RESUME, True)):
        bus, air = control(policy)
        air.offer("normal", priority=p.Priority.NORMAL, duration_ms=60_000, scopes=[Z, Y],
                  nodes=["z-1", "z-2", "y-1"], play_at=None, ready=lambda: True)
        air.offer("urgent", priority=p.Priority.EMERGENCY, duration_ms=5000, scopes=[Z], nodes=["z-1", "z-2"],
                  play_at=None, ready=lambda: True)
        assert [c.args["bc"] for c in bus.sent("play")] == ["normal", "urgent"], policy
        [stop] = bus.sent("stop")  # the interrupted item stops on all its scopes
        assert stop.args == {"bc": "normal", "reason": "preempted"} and set(stop.scopes) == {Z, Y}
        assert air.will_resume("normal") is resumes, policy
        assert air.emergency_on(["z-1"]) and not air.emergency_on(["y-1"])


async def test_a_live_hold_is_started_ended_by_an_emergency_and_released() -> None:
    bus, air = control()
    events: list[str] = []
    air.hold("live-1", ["z-1"], p.Priority.NORMAL,
             LiveHold(started=lambda: events.append("started"), ended=lambda why: events.append(why)))
    assert events == ["started"] and air.on_air(["z-2"]) == ["live-1"]
    air.offer("urgent", priority=p.Priority.EMERGENCY, duration_ms=5000, scopes=[Z], nodes=["z-1"],
              play_at=None, ready=lambda: True)
    assert events == ["started", "preempted"] and [c.args["bc"] for c in bus.sent("play")] == ["urgent"]
    air.release("live-1")  # already ended: nothing more happens
    assert events == ["started", "preempted"]
