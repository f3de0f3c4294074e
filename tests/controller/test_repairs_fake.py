"""Coalesced repairs without a broker: RepairDesk (controller/airing/repairs.py) on a FakeUnitBus.

Many units asking for the same chunk get one copy on their group's data topic; a few get their own;
a copy on its way is not sent again; a unit's requests stay within its budget. Every test checks
exactly what went out on the bus.
"""

from __future__ import annotations

import pytest

from controller.airing.active import ActiveBroadcast, NodeDelivery
from controller.airing.audio_out import AudioOut
from controller.airing.models import DeliveryState
from controller.airing.repairs import BUDGET_FACTOR, RepairDesk
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


async def test_a_unit_asking_forever_is_cut_at_its_budget() -> None:
    bus = FakeUnitBus()
    desk = _desk(bus, hold_s=0.0)
    active = _active([p.AudioScope(kind="node", id="solo")])
    nd = active.nodes["solo"]
    answers = [desk.request(active, "solo", nd, [0, 1, 2, 3, 99]) for _ in range(BUDGET_FACTOR + 2)]
    assert answers == [True] * BUDGET_FACTOR + [False, False]  # 99 is no chunk: never counted
    assert nd.repaired_chunks == BUDGET_FACTOR * len(active.frames) and desk.stats.over_budget == 2
    await until(lambda: not desk.gathering(), "the repairs sent")
    assert sorted({i for _, i in _sent(bus)}) == [0, 1, 2, 3] and len(_sent(bus)) == 4  # gathered: once
