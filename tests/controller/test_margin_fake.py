"""The start margin from the fleet's measured latency (controller/airing/margin.py) and the
emergency's bounded wait (controller/airing/aircontrol.py), broker-free on a FakeUnitBus."""

from __future__ import annotations

import asyncio

import pytest

from controller.airing.aircontrol import AirControl
from controller.airing.margin import StartMargin, reach_ms
from controller.fleet.presence import Presence
from devices import protocol as p
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(60)

Z = p.AudioScope(kind="group", id="z")


class _NoWriter:
    def submit(self, op: object) -> None:
        pass

    def submit_row(self, apply: object, row: object) -> None:
        pass


def test_the_margin_is_the_p99_round_trip_plus_headroom_within_floor_and_cap() -> None:
    m = StartMargin(floor_ms=250, cap_ms=1500, initial_ms=1000, headroom_ms=100)
    assert m.current_ms() == 1000  # nothing measured yet
    for _ in range(200):
        m.observe(20.0)  # a healthy network: 20 ms round trips
    assert m.current_ms() == 250  # 20 + 100 is under the floor
    for _ in range(5):
        m.observe(700.0)  # a few slow units: p99 of 205 samples is one of them
    assert m.current_ms() == 800
    for _ in range(300):
        m.observe(5000.0)  # a congested moment cannot push starts beyond the cap
    assert m.current_ms() == 1500
    assert StartMargin(floor_ms=250, cap_ms=0).current_ms() == 0  # the floor never exceeds the cap


def test_a_plays_reach_comes_from_the_units_answer_not_the_controllers_queue() -> None:
    def resp(ts: int, **data: object) -> p.CommandResponse:
        return p.CommandResponse(id="c", node_id="u", status="ok", ts=ts, data=data)

    # a unit 20 s fast handled the play 80 ms after it was sent; its answer was handled 900 ms after
    args = {"bc": "b-1", "at": 3000, "offset_ms": 0}
    assert reach_ms(args, resp(21_080, bc="b-1", at_local=23_000), 1000, 900.0) == 80
    assert reach_ms(args, resp(21_080, bc="b-1", already="played"), 1000, 900.0) == 900  # no at_local
    assert reach_ms(args, resp(0, at_local=23_000), 1000, 900.0) == 0  # a clock estimate off: not < 0
    assert reach_ms(args, resp(99_999, at_local=23_000), 1000, 900.0) == 900  # never beyond the round trip


def control(**kw: object) -> tuple[FakeUnitBus, AirControl]:
    bus = FakeUnitBus()
    presence = Presence(bus, _NoWriter())  # type: ignore[arg-type]
    for node_id in ("z-1", "z-2"):
        presence.provision(node_id, ["z"])
    return bus, AirControl(bus, presence.groups_of, tick_s=0.02, **kw)  # type: ignore[arg-type]


async def test_play_instants_follow_the_measured_round_trips() -> None:
    bus, air = control(margin_ms=1500, margin_floor_ms=200)
    t0 = p.now_ms()
    air.offer("b-1", priority=p.Priority.NORMAL, duration_ms=1000, scopes=[Z], nodes=["z-1", "z-2"],
              play_at=None, ready=lambda: True)
    [first] = bus.sent("play")
    assert 1000 <= first.args["at"] - t0 <= 1000 + 500  # initial margin: nothing measured yet
    for _ in range(30):
        bus.answer(first.id, "z-1", bc="b-1", at_local=0)  # answered within a few ms here
    air.finished("b-1")
    t1 = p.now_ms()
    air.offer("b-2", priority=p.Priority.NORMAL, duration_ms=1000, scopes=[Z], nodes=["z-1", "z-2"],
              play_at=None, ready=lambda: True)
    second = bus.sent("play")[-1]
    assert air.margin.samples == 30
    assert 200 <= second.args["at"] - t1 < 1000  # the floor plus what was measured, not 1.5 s


async def test_an_emergency_waits_for_no_straggler_beyond_its_bound() -> None:
    bus, air = control(margin_ms=0, ready_wait_s=60, emergency_ready_wait_s=0.3)
    air.start()
    try:
        air.offer("b-n", priority=p.Priority.NORMAL, duration_ms=1000, scopes=[Z], nodes=["z-1"],
                  play_at=None, ready=lambda: False)  # a normal one waits up to 60 s for its units
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        air.offer("b-e", priority=p.Priority.EMERGENCY, duration_ms=1000, scopes=[Z], nodes=["z-1", "z-2"],
                  play_at=None, ready=lambda: False)  # z-2 never verifies
        await until(lambda: any(c.args.get("bc") == "b-e" for c in bus.sent("play")), "the emergency's play",
                    timeout_s=30)
        assert loop.time() - t0 >= 0.3  # it waited its bound (and no more than the test's deadline)
        assert not any(c.args.get("bc") == "b-n" for c in bus.sent("play"))  # the normal one still waits
    finally:
        await air.stop()
