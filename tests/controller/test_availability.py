"""Availability per zone from presence events, over a report period."""

from __future__ import annotations

from pathlib import Path

from controller.core.db import Database
from controller.fleet.availability import online_ms, zone_availability
from controller.fleet.models import Node, NodeEvent

H = 3_600_000


def test_online_time_within_a_window() -> None:
    ev = [(0, "online"), (2 * H, "offline"), (3 * H, "online"), (5 * H, "shutdown"), (6 * H, "online")]
    assert online_ms(ev, 0, 8 * H) == 2 * H + 2 * H + 2 * H
    assert online_ms(ev, H, 4 * H) == H + H  # state at the start comes from the event before it
    assert online_ms([], 0, H) == 0  # never heard of: not online
    assert online_ms([(0, "duplicate_id"), (0, "online")], 0, H) == H  # alarms are not states


def test_zone_availability_from_recorded_events(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.migrate()
    with db.session() as s:
        for node, at, kind in (("a-1", 0, "online"), ("a-2", 0, "online"), ("a-2", 5 * H, "offline"),
                               ("b-1", 9 * H, "online"), ("a-1", 20 * H, "online")):
            s.add(NodeEvent(node_id=node, kind=kind, at=at))
        s.commit()
        got = zone_availability(s, {"a-1": ["a"], "a-2": ["a", "all-day"], "b-1": ["b"]}, 0, 10 * H)
    assert got == {"a": 75.0, "all-day": 50.0, "b": 10.0}
    db.dispose()


def test_a_unit_counts_only_from_when_it_was_added(tmp_path: Path) -> None:
    # the finding: a unit added on the last day of a 10-day report pulled its zone down as if it had
    # been offline for the 9 days before it existed
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.migrate()
    with db.session() as s:
        s.add_all([Node(id="old", created_at=0), Node(id="new", created_at=9 * H),
                   Node(id="later", created_at=11 * H)])
        for node, at in (("old", 0), ("new", 9 * H), ("later", 11 * H)):
            s.add(NodeEvent(node_id=node, kind="online", at=at))
        s.commit()
        got = zone_availability(s, {"old": ["z"], "new": ["z", "n"], "later": ["l"]}, 0, 10 * H)
    # z: old online 10 h + new online its 1 h, of 11 unit-hours; "later" did not exist yet: no zone l
    assert got == {"z": 100.0, "n": 100.0}
    db.dispose()
