"""The retained config a unit gets (docs/protocol.md §1 *config*), without a broker: Presence on a
FakeUnitBus, SQLite in tmp_path. Issue 13, D7: the config's ``name`` is the unit's name as staff
gave it, and follows a rename."""

from __future__ import annotations

from pathlib import Path

from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet.models import Node, NodeZone, Zone
from controller.fleet.presence import Presence
from devices import protocol as p
from tests.fakes import FakeUnitBus


def configs(bus: FakeUnitBus) -> dict[str, p.NodeConfig]:
    """The last retained config published per topic."""
    out = {}
    for m in bus.published:
        if m.topic.endswith("/config"):
            assert m.retain and m.qos == 1
            out[m.topic] = p.decode(p.NodeConfig, m.payload)
    return out


async def test_config_carries_the_units_name_and_follows_a_rename(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ward.db'}")
    db.migrate()
    try:
        with db.session() as s:
            s.add(Zone(id="tdp1", name="Tổ dân phố 1"))
            s.add(Node(id="tdp1-01", name="TDP1 loa 1"))
            s.add(Node(id="tdp1-02"))  # no name given: "" on the wire
            s.commit()
            s.add(NodeZone(node_id="tdp1-01", zone_id="tdp1"))
            s.commit()
        bus = FakeUnitBus()
        presence = Presence(bus, DbWriter(db))
        with db.session() as s:
            presence.load(s)
        await presence.publish_configs()
        got = configs(bus)
        first = got[bus.topics.config("tdp1-01")]
        assert (first.node_id, first.name, first.groups) == ("tdp1-01", "TDP1 loa 1", ["all", "tdp1"])
        assert got[bus.topics.config("tdp1-02")].name == ""

        with db.session() as s:  # PATCH /api/nodes/tdp1-01 {"name": ...} does this, then publishes
            node = s.get(Node, "tdp1-01")
            assert node is not None
            node.name = "Tổ dân phố 1 – loa 1"
            s.add(node)
            s.commit()
            presence.load(s)
        await presence.publish_configs(["tdp1-01"])
        assert configs(bus)[bus.topics.config("tdp1-01")].name == "Tổ dân phố 1 – loa 1"
    finally:
        db.dispose()
