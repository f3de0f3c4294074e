"""Per-zone arbitration: unit cases and a hypothesis state machine over
schedule / cancel / emergency / clear / time passing, for every pre-emption policy."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from devices.protocol import Priority
from scheduler.arbiter import Ended, Item, Preempted, PreemptPolicy, Start, ZoneArbiter

ZONES = ("a", "b", "c")
M = 1000  # margin


def item(i: str, zones: str, prio: Priority = Priority.NORMAL, dur: int = 10_000, nb: int = 0) -> Item:
    return Item(i, frozenset(zones), prio, dur, nb)


def test_normal_items_queue_per_zone_and_priority_goes_first() -> None:
    arb = ZoneArbiter(margin_ms=M)
    assert arb.submit(item("n1", "a"), 0) == [Start("n1", M, 0, frozenset("a"))]
    assert arb.submit(item("n2", "a"), 0) == []
    assert arb.submit(item("p1", "a", Priority.PRIORITY), 0) == []
    assert arb.submit(item("other", "b"), 0) == [Start("other", M, 0, frozenset("b"))]  # other zone: free
    actions = arb.tick(M + 10_000)
    assert Ended("n1", "finished") in actions and Start("p1", M + 10_000 + M, 0, frozenset("a")) in actions
    assert arb.sounding("a", M + 10_000 + M) == "p1"


def test_multi_zone_item_waits_for_all_its_zones_and_is_not_overtaken() -> None:
    arb = ZoneArbiter(margin_ms=M)
    arb.submit(item("long-a", "a", dur=50_000), 0)
    arb.submit(item("ab", "ab"), 0)  # needs a and b: waits for a
    assert arb.submit(item("b-later", "b"), 0) == []  # may not overtake ab on zone b
    assert arb.submit(item("c", "c"), 0) == [Start("c", M, 0, frozenset("c"))]
    actions = arb.tick(M + 50_000)
    starts = [a for a in actions if isinstance(a, Start)]
    assert [s.item_id for s in starts] == ["ab"]


@pytest.mark.parametrize(("policy", "requeued", "offset"), [
    (PreemptPolicy.DROP, False, None), (PreemptPolicy.RESTART, True, 0), (PreemptPolicy.RESUME, True, 4000)])
def test_emergency_preempts_with_the_stated_policy(policy: PreemptPolicy, requeued: bool,
                                                   offset: int | None) -> None:
    arb = ZoneArbiter(policy=policy, margin_ms=M)
    arb.submit(item("n1", "ab"), 0)  # sounds from 1000
    actions = arb.submit(item("e1", "b", Priority.EMERGENCY, dur=5000), 5000)
    assert actions[0] == Preempted("n1", "e1", requeued, 4000)
    assert Start("e1", 6000, 0, frozenset("b")) in actions
    assert arb.sounding("a", 6000) is None and arb.sounding("b", 6000) == "e1"
    after = arb.tick(11_000)
    restarted = [a for a in after if isinstance(a, Start) and a.item_id == "n1"]
    if offset is None:
        assert restarted == [] and not arb.known("n1")
    else:
        assert restarted == [Start("n1", 12_000, offset, frozenset("ab"))]
        assert arb.running["n1"].end_ms == 12_000 + 10_000 - offset


def test_second_emergency_waits_and_is_not_lost() -> None:
    arb = ZoneArbiter(margin_ms=M)
    arb.submit(item("e1", "a", Priority.EMERGENCY, dur=5000), 0)
    assert arb.submit(item("e2", "a", Priority.EMERGENCY, dur=5000), 100) == []
    arb.submit(item("p", "a", Priority.PRIORITY), 200)
    actions = arb.tick(6000)
    assert [a.item_id for a in actions if isinstance(a, Start)] == ["e2"]


def test_scheduled_slot_is_not_started_early_and_does_not_block_others() -> None:
    arb = ZoneArbiter(margin_ms=M)
    assert arb.submit(item("slot", "a", nb=60_000), 0) == []
    assert arb.submit(item("now", "a", dur=5000), 0) == [Start("now", M, 0, frozenset("a"))]
    assert [a for a in arb.tick(58_000) if isinstance(a, Start)] == []
    assert [a for a in arb.tick(59_000) if isinstance(a, Start)] == [Start("slot", 60_000, 0, frozenset("a"))]


def test_bad_items_are_refused() -> None:
    arb = ZoneArbiter()
    with pytest.raises(ValueError):
        arb.submit(item("x", ""), 0)
    with pytest.raises(ValueError):
        arb.submit(item("x", "a", dur=0), 0)
    arb.submit(item("x", "a"), 0)
    with pytest.raises(ValueError):
        arb.submit(item("x", "a"), 0)
    assert arb.cancel("unknown", 0) == []


class ArbiterMachine(RuleBasedStateMachine):
    """At most one item sounds per zone at a time, and an emergency always wins."""

    @initialize(policy=st.sampled_from(list(PreemptPolicy)))
    def setup(self, policy: PreemptPolicy) -> None:
        self.arb = ZoneArbiter(policy=policy, margin_ms=M)
        self.now = 0
        self.n = 0
        self.emergencies: set[str] = set()
        self.ended: set[str] = set()
        self.dropped: set[str] = set()

    def _apply(self, actions: list[object]) -> None:
        for a in actions:
            if isinstance(a, Ended):
                self.ended.add(a.item_id)
            elif isinstance(a, Preempted):
                assert a.item_id not in self.emergencies, "an emergency was pre-empted"
                if not a.requeued:
                    self.dropped.add(a.item_id)

    @rule(zones=st.sets(st.sampled_from(ZONES), min_size=1), prio=st.sampled_from([
        Priority.NORMAL, Priority.PRIORITY]), dur=st.integers(1, 20_000), delay=st.integers(0, 30_000))
    def schedule(self, zones: set[str], prio: Priority, dur: int, delay: int) -> None:
        self.n += 1
        self._apply(self.arb.submit(Item(f"i{self.n}", frozenset(zones), prio, dur, self.now + delay),
                                    self.now))

    @rule(zones=st.sets(st.sampled_from(ZONES), min_size=1), dur=st.integers(1, 20_000))
    def emergency(self, zones: set[str], dur: int) -> None:
        self.n += 1
        eid = f"e{self.n}"
        self.emergencies.add(eid)
        earlier = [i for i in (*self.arb.running.values(), *self.arb.waiting.values())
                   if i.priority == Priority.EMERGENCY and i.zones & zones]
        self._apply(self.arb.submit(Item(eid, frozenset(zones), Priority.EMERGENCY, dur), self.now))
        # it sounds at once, unless an earlier emergency holds or waits for one of its zones
        if not earlier:
            assert eid in self.arb.running and self.arb.running[eid].at_ms == self.now + M

    @precondition(lambda self: self.arb.waiting or self.arb.running)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        ids = sorted([*self.arb.waiting, *self.arb.running])
        self._apply(self.arb.cancel(data.draw(st.sampled_from(ids)), self.now))

    @rule(zone=st.sampled_from(ZONES))
    def clear(self, zone: str) -> None:
        self._apply(self.arb.clear(zone, self.now))

    @rule(dt=st.integers(1, 15_000))
    def advance(self, dt: int) -> None:
        self.now += dt
        self._apply(self.arb.tick(self.now))

    @invariant()
    def one_item_per_zone(self) -> None:
        if not hasattr(self, "arb"):
            return
        running = list(self.arb.running.values())
        for i, a in enumerate(running):
            for b in running[i + 1:]:
                assert not (a.zones & b.zones), f"{a.id} and {b.id} share a zone"
        for z in ZONES:
            sounding = [i for i in running if z in i.zones and i.at_ms <= self.now < i.end_ms]  # type: ignore[operator]
            assert len(sounding) <= 1

    @invariant()
    def emergency_wins_and_is_never_lost(self) -> None:
        if not hasattr(self, "arb"):
            return
        for eid in self.emergencies:
            assert eid not in self.dropped
            assert eid in self.ended or self.arb.known(eid)
            if eid in self.arb.waiting:  # only another emergency may hold its zones
                for z in self.arb.waiting[eid].zones:
                    holder = self.arb.holder(z)
                    assert holder is None or holder.priority == Priority.EMERGENCY


TestArbiterMachine = ArbiterMachine.TestCase
TestArbiterMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
