"""Availability per zone from presence events, over a report period."""

from __future__ import annotations

from pathlib import Path

from controller.core.db import Database
from controller.fleet.availability import online_ms, zone_availability
from controller.fleet.models import NodeEvent

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
