"""Coalesced repairs without a broker: RepairDesk (controller/airing/repairs.py) on a FakeUnitBus.

Many units asking for the same chunk get one copy on their group's data topic; a few get their own;
a copy on its way is not sent again; a unit's requests stay within its budget. Every test checks
exactly what went out on the bus.
"""

from __future__ import annotations

import time

import pytest

from controller.airing.active import ActiveBroadcast, NodeDelivery
from controller.airing.audio_out import AudioOut
from controller.airing.models import DeliveryState
from controller.airing.repairs import BUDGET_FACTOR, BUDGET_WINDOW_S, RepairDesk
from devices import protocol as p
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(30)

AUDIO = bytes(range(256)) * 64  # 16 KiB: 4 chunks of 4 KiB
ZONES = {f"a-{i}": "za" for i in range(50)} | {f"b-{i}": "zb" for i in range(50)} | {"solo": ""}


def _active(scopes: list[p.AudioScope]) -> ActiveBroadcast:
    info, frames = p.chunk_audio(AUDIO, duration_ms=2000, chunk_size=4096)
    manifest = p.Manifest(bc="b-1", audio=info, expires_at=p.now_ms() + 60_000)
    nodes = {n: NodeDelivery(delivery_id=i, state=DeliveryState.RECEIVING) for i, n in enumerate(ZONES)}
    return ActiveBroadcast(id="b-1", manifest=manifest, frames=frames, scopes=scopes, nodes=nodes,
                           published=True)


def _desk(bus: FakeUnitBus, **kw: float) -> RepairDesk:
    return RepairDesk(AudioOut(bus), lambda n: ["all", ZONES[n]] if ZONES.get(n) else ["all"], **kw)


def _sent(bus: FakeUnitBus) -> list[tuple[str, int]]:
    return [(m.topic, p.parse_chunk(m.payload).index) for m in bus.on_topic("/data")]


def _ask(desk: RepairDesk, active: ActiveBroadcast, units: list[str], indexes: list[int]) -> None:
    for n in units:
        assert desk.request(active, n, active.nodes[n], indexes)


async def test_many_units_lacking_a_chunk_get_one_copy_per_zone() -> None:
    bus = FakeUnitBus()
    desk = _desk(bus)
    za, zb = p.AudioScope(kind="group", id="za"), p.AudioScope(kind="group", id="zb")
    active = _active([za, zb, p.AudioScope(kind="node", id="solo")])
    _ask(desk, active, [f"a-{i}" for i in range(50)], [1, 2])  # a whole zone lost 1 and 2
    _ask(desk, active, ["b-0", "b-1"], [2])  # two units of zone b: their own copies
    _ask(desk, active, ["solo"], [2, 3])  # a unit targeted on its own
    await until(lambda: not desk.gathering(), "the gathered repairs sent")
    t = bus.topics
    assert _sent(bus) == [
        (t.data(za, "b-1"), 1),
        (t.data(za, "b-1"), 2),
        (t.data(p.AudioScope(kind="node", id="b-0"), "b-1"), 2),
        (t.data(p.AudioScope(kind="node", id="b-1"), "b-1"), 2),
        (t.data(p.AudioScope(kind="node", id="solo"), "b-1"), 2),
        (t.data(p.AudioScope(kind="node", id="solo"), "b-1"), 3),
    ]
    assert (desk.stats.sent_to_groups, desk.stats.sent_to_nodes, desk.stats.requests) == (2, 4, 53)


async def test_a_copy_on_its_way_is_not_sent_again_until_the_hold_passes() -> None:
    bus = FakeUnitBus()
    desk = _desk(bus, hold_s=0.3)
    scope = p.AudioScope(kind="group", id="all")
    active = _active([scope])
    everyone = [n for n in ZONES]
    _ask(desk, active, everyone, [0])
    await until(lambda: not desk.gathering(), "the first repair sent")
    _ask(desk, active, everyone[:10], [0])  # asked again at once: the copy is on its way
    await until(lambda: not desk.gathering(), "the second round handled")
    assert _sent(bus) == [(bus.topics.data(scope, "b-1"), 0)] and desk.stats.chunks_held == 10
    await until(lambda: _sent_after_hold(desk, active, bus), "a copy after the hold", timeout_s=5)
    assert _sent(bus) == [(bus.topics.data(scope, "b-1"), 0)] * 2


def _sent_after_hold(desk: RepairDesk, active: ActiveBroadcast, bus: FakeUnitBus) -> bool:
    """Ask again (three units) once nothing is gathered; true when a second copy went out."""
    if not desk.gathering() and len(bus.on_topic("/data")) < 2:
        _ask(desk, active, ["a-1", "a-2", "a-3"], [0])
    return len(bus.on_topic("/data")) >= 2


async def test_egress_stays_bounded_whatever_the_number_of_units() -> None:
    bus = FakeUnitBus()
    desk = _desk(bus)
    active = _active([p.AudioScope(kind="group", id="za"), p.AudioScope(kind="group", id="zb")])
    for _ in range(3):  # every unit of both zones asks for everything, three times over
        _ask(desk, active, [n for n in ZONES if n != "solo"], [0, 1, 2, 3])
    await until(lambda: not desk.gathering(), "the repairs sent")
    sent = bus.on_topic("/data")
    assert len(sent) == 2 * len(active.frames)  # one copy of each chunk per zone: not 100 per chunk
    assert sum(len(m.payload) for m in sent) <= 2.1 * len(AUDIO)


async def test_a_unit_asking_forever_is_cut_at_its_budget_and_served_again_in_the_next_window() -> None:
    """What is re-sent to one unit is capped at BUDGET_FACTOR × the chunks per budget window: asks
    gathered in one window count once, the rest are refused; a new window serves it again (a unit
    that moved brokers while its requests went unanswered is not left ``receiving`` for good)."""
    bus = FakeUnitBus()
    desk = _desk(bus, hold_s=0.0)
    active = _active([p.AudioScope(kind="node", id="solo")])
    nd = active.nodes["solo"]
    answers = []
    for _ in range(BUDGET_FACTOR + 2):  # every request answered in full, then asked for again
        answers.append(desk.request(active, "solo", nd, [0, 1, 2, 3, 99]))
        again = desk.request(active, "solo", nd, [0, 1, 2, 3])  # the same again in the same 50 ms
        assert again == answers[-1]  # within the budget: counted once; over it: refused too
        await until(lambda: not desk.gathering(), "the repairs sent")
    assert answers == [True] * BUDGET_FACTOR + [False, False]  # 99 is no chunk: never counted
    assert nd.repaired_chunks == BUDGET_FACTOR * len(active.frames) and desk.stats.over_budget == 2 * 2
    assert len(_sent(bus)) == BUDGET_FACTOR * len(active.frames)  # a doubled ask went out once
    nd.repair_window_at -= BUDGET_WINDOW_S  # a minute later
    assert desk.request(active, "solo", nd, [2])
    await until(lambda: not desk.gathering(), "the repair of the next window sent")
    assert _sent(bus)[-1][1] == 2 and nd.repaired_chunks == 1


async def test_a_chunk_held_back_as_on_its_way_costs_the_unit_no_budget() -> None:
    bus = FakeUnitBus()
    desk = _desk(bus, hold_s=30.0)
    active = _active([p.AudioScope(kind="node", id="solo")])
    nd = active.nodes["solo"]
    for _ in range(3):  # asked three times while the first copy is on its way: sent once, counted once
        assert desk.request(active, "solo", nd, [1])
        await until(lambda: not desk.gathering(), "the repair handled")
    assert len(_sent(bus)) == 1 and desk.stats.chunks_held == 2 and nd.repaired_chunks == 1


def _just_published(active: ActiveBroadcast) -> ActiveBroadcast:
    """As if the broker acknowledged its last chunk a moment ago (it may still be queued)."""
    active.published_at = time.monotonic()
    return active


async def test_chunks_maybe_still_queued_in_the_broker_are_not_sent_again() -> None:
    """Just after the sending, a zone of units that has nothing yet asks for everything (4 s without
    a chunk: an overloaded broker, not a loss): nothing goes out, the requests count as queued;
    a chunk lost below what a unit has is sent at once; a lone unit's own scope is not held."""
    bus = FakeUnitBus()
    desk = _desk(bus)
    za, solo = p.AudioScope(kind="group", id="za"), p.AudioScope(kind="node", id="solo")
    active = _just_published(_active([za, solo]))
    _ask(desk, active, [f"a-{i}" for i in range(40)], [0, 1, 2, 3])  # nothing yet: may be queued
    _ask(desk, active, ["a-40", "a-41", "a-42"], [1, 3])  # has 0 and 2: 1 was lost, 3 may come
    _ask(desk, active, ["solo"], [0, 1, 2, 3])  # its own topic: no zone copy to fear
    await until(lambda: not desk.gathering(), "the gathered repairs sent")
    t = bus.topics
    own = [(t.data(solo, "b-1"), i) for i in range(4)]
    assert sorted(_sent(bus)) == sorted([(t.data(za, "b-1"), 1), *own])
    assert desk.stats.chunks_queued == 40 * 4 + 3
    assert active.nodes["a-0"].repaired_chunks == 0  # a held request costs no budget


async def test_a_unit_that_lost_the_last_chunk_is_answered_once_half_the_units_verified() -> None:
    bus = FakeUnitBus()
    desk = _desk(bus)
    za = p.AudioScope(kind="group", id="za")
    active = _just_published(_active([za]))
    _ask(desk, active, ["a-0", "a-1", "a-2"], [3])  # the last one: may still be queued for them
    await until(lambda: not desk.gathering(), "the first round handled")
    assert _sent(bus) == [] and desk.stats.chunks_queued == 3
    for nd in list(active.nodes.values())[: len(active.nodes) // 2 + 1]:
        nd.state = DeliveryState.VERIFIED  # most units have it all: the broker has delivered
    await until(lambda: active.ready_share() >= 0.5, "the share recounted", timeout_s=5)
    _ask(desk, active, ["a-0", "a-1", "a-2"], [3])
    await until(lambda: not desk.gathering(), "the second round handled")
    assert _sent(bus) == [(bus.topics.data(za, "b-1"), 3)]


async def test_the_hold_on_queued_chunks_ends_after_queued_s() -> None:
    bus = FakeUnitBus()
    desk = _desk(bus, queued_s=0.0)
    za = p.AudioScope(kind="group", id="za")
    active = _just_published(_active([za]))
    _ask(desk, active, ["a-0", "a-1", "a-2"], [0, 1, 2, 3])
    await until(lambda: not desk.gathering(), "the repairs sent")
    assert sorted(i for _, i in _sent(bus)) == [0, 1, 2, 3] and desk.stats.chunks_queued == 0


async def test_a_unit_back_online_after_the_sending_is_answered_at_once() -> None:
    """Offline when the chunks went out (or off since): nothing is queued for it, so what it asks
    for goes out even while the rest of the zone may still be receiving the first copy."""
    bus = FakeUnitBus()
    desk = _desk(bus)
    za = p.AudioScope(kind="group", id="za")
    active = _just_published(_active([za]))
    for n in ("a-0", "a-1", "a-2"):
        active.nodes[n].rejoined = True
    _ask(desk, active, ["a-0", "a-1", "a-2"], [0, 1, 2, 3])
    await until(lambda: not desk.gathering(), "the repairs sent")
    assert sorted(i for _, i in _sent(bus)) == [0, 1, 2, 3] and desk.stats.chunks_queued == 0
