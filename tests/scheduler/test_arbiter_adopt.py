"""ZoneArbiter.adopt: a restarted controller takes back an item that was sounding since an instant
in the past; it holds its zones until its planned end, and it is refused where a zone is taken."""

from __future__ import annotations

from devices.protocol import Priority
from scheduler.arbiter import Ended, Item, Start, ZoneArbiter


def test_an_adopted_item_holds_its_zones_until_its_planned_end() -> None:
    arb = ZoneArbiter(margin_ms=100)
    assert arb.adopt(Item("b-1", frozenset({"z"}), Priority.NORMAL, 10_000), at_ms=1_000)
    assert arb.sounding("z", 5_000) == "b-1" and arb.running["b-1"].end_ms == 11_000
    assert arb.submit(Item("b-2", frozenset({"z"}), Priority.NORMAL, 1_000), now_ms=5_000) == []  # waits
    assert not arb.adopt(Item("b-3", frozenset({"z", "y"}), Priority.NORMAL, 1_000), at_ms=4_000)  # z taken
    assert not arb.adopt(Item("b-1", frozenset({"y"}), Priority.NORMAL, 1_000), at_ms=4_000)  # known
    assert arb.tick(11_000) == [Ended("b-1", "finished"), Start("b-2", 11_100, 0, frozenset({"z"}))]
