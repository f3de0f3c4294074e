"""Units changed by another controller, applied here (controller/fleet/sync.py) without a broker:
two controllers' fleet parts (presence on a fake bus, unit list, change feed) on one SQLite file.

After: a unit written by A is known to B with its zones and name, shows online at once if B had
already heard its heartbeat (an id not provisioned yet), takes the volume A set and drops the
alarm A cleared; a retired unit is forgotten by B, which ends its deliveries (the callback); a
reload of everything (after a long cut-off) reads every unit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session

from controller.core.db import Database
from controller.core.feed import ChangeFeed
from controller.core.writer import DbWriter
from controller.fleet.directory import NodeDirectory
from controller.fleet.models import RETIRED, Node, NodeSetting, NodeZone, Zone
from controller.fleet.presence import Presence
from controller.fleet.registry import UNIT, UNIT_ALARM, UNIT_SETTING
from controller.fleet.sync import FleetSync
from tests.fakes import FakeUnitBus, until


@dataclass
class Side:
    db: Database
    bus: FakeUnitBus
    presence: Presence
    directory: NodeDirectory
    feed: ChangeFeed
    retired: list[str] = field(default_factory=list)
    sync: FleetSync | None = None


@asynccontextmanager
async def side(url: str, name: str) -> AsyncIterator[Side]:
    db = Database(url)
    db.migrate()
    writer = DbWriter(db, interval=0.05)
    bus = FakeUnitBus()
    presence = Presence(bus, writer)
    feed = ChangeFeed(db, writer, name, poll_s=60)
    out = Side(db, bus, presence, NodeDirectory(), feed)
    out.sync = sync = FleetSync(db, presence, out.directory, on_retired=out.retired.append)
    feed.on(UNIT, sync.units)
    feed.on(UNIT_SETTING, sync.units)
    feed.on(UNIT_ALARM, sync.alarms)
    feed.mark()
    with db.session() as s:
        presence.load(s)
    await feed.start()
    writer.start()
    try:
        yield out
    finally:
        await writer.stop()
        await feed.stop()
        db.dispose()


def write(a: Side, kind: str, node_id: str, *rows: object) -> None:
    with Session(a.db.engine) as s:
        for row in rows:
            s.merge(row)
        s.flush()
        a.feed.emit(s, kind, node_id)
        s.commit()


async def test_units_written_by_a_reach_b(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with side(url, "a") as a, side(url, "b") as b:
        b.bus.heartbeat("u1")  # already on the air: B hears it before anyone provisioned it
        assert not b.presence.knows("u1") and b.presence.unknown_count() == 1
        write(a, UNIT, "u1", Zone(id="z1", name="Tổ 1"), Node(id="u1", name="Loa 1"),
              NodeZone(node_id="u1", zone_id="z1"))
        await until(lambda: b.presence.knows("u1"), "u1 known to B", 10)
        assert b.presence.groups_of("u1") == ["all", "z1"] and b.presence.status("u1") == "online"
        with b.db.session() as s:
            assert [r.name for r in b.directory.rows(s)] == ["Loa 1"]

        write(a, UNIT, "u1", Node(id="u1", name="Loa chợ"))  # a rename: the row count stays
        await until(lambda: b.feed.stats["notified"] == 2, "the rename at B", 10)
        with b.db.session() as s:
            await until(lambda: [r.name for r in b.directory.rows(s)] == ["Loa chợ"], "renamed", 10)

        write(a, UNIT_SETTING, "u1", NodeSetting(node_id="u1", volume=30))
        await until(lambda: b.presence.desired_volume("u1") == 30, "the volume at B", 10)

        with Session(b.db.engine) as s:  # B raised the alarm before a restart, say
            node = s.get(Node, "u1")
            assert node is not None
            node.alarm = "duplicate_id"
            s.add(node)
            s.commit()
            b.presence.load(s)
        assert b.presence.view("u1").alarm == "duplicate_id"  # type: ignore[union-attr]
        write(a, UNIT_ALARM, "u1", Node(id="u1", name="Loa chợ", alarm=""))
        await until(lambda: b.presence.view("u1").alarm == "", "the alarm dropped at B", 10)  # type: ignore[union-attr]

        write(a, UNIT, "u1", Node(id="u1", name="Loa chợ", status=RETIRED))
        await until(lambda: not b.presence.knows("u1"), "u1 forgotten by B", 10)
        assert b.retired == ["u1"] and a.retired == []  # A's own route ends its deliveries itself


async def test_a_reload_of_everything_reads_every_unit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with side(url, "b") as b:
        with Session(b.db.engine) as s:  # written by nobody who told anyone
            s.add(Zone(id="z1", name="Tổ 1"))
            s.flush()
            s.add_all([Node(id=f"u{i}") for i in range(80)])
            s.flush()
            s.add_all([NodeZone(node_id=f"u{i}", zone_id="z1") for i in range(80)])
            s.commit()
        assert b.sync is not None and not b.presence.knows("u0")
        await b.sync.units(None)  # what the feed hands over after a gap longer than its log
        assert len(b.presence.members("z1")) == 80 and b.sync.applied == 80
