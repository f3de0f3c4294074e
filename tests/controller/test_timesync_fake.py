"""The controller's time responder on a fake bus: t1 ≤ t2 on the controller's clock, the reply
written at once (UnitBus.reply_now, QoS 0), and a poll hint that keeps the fleet within budget."""

from __future__ import annotations

from controller.fleet.timesync import BUDGET_PER_S, MIN_POLL_MS, TimeResponder
from devices import protocol as p
from tests.fakes import FakeUnitBus


def _replies(bus: FakeUnitBus) -> list[p.TimeReply]:
    return [p.decode(p.TimeReply, m.payload) for m in bus.published if m.topic.endswith("/clock")]


def test_a_request_is_answered_at_once_with_t1_t2_and_a_poll_hint() -> None:
    bus = FakeUnitBus()
    responder = TimeResponder(bus)
    before = p.now_ms()
    bus.deliver("time", "n-1", p.TimeRequest(node_id="n-1", t0=123))
    [reply] = _replies(bus)
    assert (reply.node_id, reply.t0) == ("n-1", 123)
    assert before <= reply.t1 <= reply.t2 <= p.now_ms()
    assert reply.poll_ms == MIN_POLL_MS and responder.answered == 1  # a small ward syncs fast
    assert bus.published[-1].qos == 0 and bus.published[-1].topic == bus.topics.clock("n-1")


def test_a_large_fleet_is_asked_to_poll_within_the_budget() -> None:
    bus = FakeUnitBus()
    TimeResponder(bus)
    units = [f"u-{i}" for i in range(5000)]
    for u in units:
        bus.deliver("time", u, p.TimeRequest(node_id=u, t0=1))
    last = _replies(bus)[-1]
    assert last.poll_ms == 5000 * 1000 // BUDGET_PER_S  # 5,000 units x 1/25 s = the budget


def test_the_first_units_of_a_fleet_connecting_are_told_the_whole_fleets_pace() -> None:
    """1,000 units online, the first one asks: it is told the pace of 1,000 (not of the one unit
    heard so far), so early units do not poll 4 times a second while the rest connect."""
    bus = FakeUnitBus()
    TimeResponder(bus, online=lambda: 1000)
    bus.deliver("time", "u-0", p.TimeRequest(node_id="u-0", t0=1))
    [reply] = _replies(bus)
    assert reply.poll_ms == 1000 * 1000 // BUDGET_PER_S
