"""The batched writer's bulk rows (controller/core/writer.py, controller/airing/delivery_rows.py),
broker-free on SQLite in tmp_path: 5,000 acknowledgements of 1,000 units reach the database in one
batch, an unavailable database loses none of them (kept, retried), a plain operation sees the rows
submitted before it, and a new broadcast's rows are written in bulk."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from controller.airing.broadcasts import create_broadcast
from controller.airing.delivery_rows import DeliveryChange, apply_changes
from controller.airing.models import Delivery, DeliveryEvent
from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet.models import RETIRED, Node, NodeEvent
from controller.fleet.presence import write_telemetry
from controller.fleet.presence_rows import PresenceChange, write_changes
from tests.controller.test_delivery_fake import seed

pytestmark = pytest.mark.timeout(120)
logger = logging.getLogger(__name__)

UNITS = 1000
ACKS = ("sent", "receiving", "verified", "playing", "played")  # 5 changes per unit: 5,000 rows


def ward(tmp_path: Path, *, busy_timeout_ms: int = 5000) -> tuple[Database, str, dict[str, int]]:
    """A migrated database with 1,000 units in zone ``z`` and one broadcast to them; its id and
    node id → delivery id."""
    path = tmp_path / "w.db"
    db = Database(f"sqlite:///{path}", busy_timeout_ms=busy_timeout_ms)
    db.migrate()
    bulletin_id = seed(db, tmp_path / "audio", {f"u-{i:04d}": "z" for i in range(UNITS)})
    with db.session() as s:
        bc = create_broadcast(s, bulletin_id=bulletin_id, all_nodes=False, zones=["z"], nodes=[],
                              priority="emergency", air_at=None, valid_s=600, repeat=1, created_by="t")
        ids = {d.node_id: d.id for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bc.id))}
    assert len(ids) == UNITS and all(isinstance(i, int) for i in ids.values())
    return db, bc.id, {n: i for n, i in ids.items() if i is not None}


def submit_acks(writer: DbWriter, ids: dict[str, int]) -> None:
    for state in ACKS:  # as they arrive: every unit's receiving, then every unit's verified ...
        for did in ids.values():
            change = DeliveryChange(did, state, f"r-{state}", 1000 + ACKS.index(state))
            writer.submit_row(apply_changes, change)


def counts(db: Database) -> tuple[dict[str, int], int]:
    with Session(db.engine) as s:
        states: dict[str, int] = {}
        for d in s.exec(select(Delivery)).all():
            states[d.state] = states.get(d.state, 0) + 1
        events = s.exec(select(func.count()).select_from(DeliveryEvent)).one()
    return states, int(events)


def test_new_broadcast_rows_are_written_in_bulk(tmp_path: Path) -> None:
    db, _bid, ids = ward(tmp_path)
    states, events = counts(db)
    assert states == {"queued": UNITS} and events == UNITS  # one queued row and one event per unit
    with Session(db.engine) as s:
        first = s.exec(select(DeliveryEvent).where(DeliveryEvent.delivery_id == ids["u-0007"])).one()
    assert first.state == "queued"
    db.dispose()


async def test_5000_acks_reach_the_database_in_one_batch(tmp_path: Path) -> None:
    db, _bid, ids = ward(tmp_path)
    writer = DbWriter(db)
    submit_acks(writer, ids)
    assert writer.backlog == 5 * UNITS
    t0, cpu0 = time.perf_counter(), time.process_time()
    assert await writer.flush() is True
    logger.info("5,000 delivery changes: %.3f s wall, %.3f s CPU", time.perf_counter() - t0,
                time.process_time() - cpu0)  # measured; the bound lives in bench/emergency.py
    assert writer.backlog == 0 and writer.batches == 1 and writer.failed_ops == 0
    states, events = counts(db)
    assert states == {"played": UNITS}  # each delivery has its last state ...
    assert events == UNITS + 5 * UNITS  # ... and every change its event, in order
    with Session(db.engine) as s:
        d = s.get(Delivery, ids["u-0042"])
        assert d is not None and (d.reason, d.updated_at) == ("r-played", 1004)
        history = s.exec(select(DeliveryEvent.state).where(DeliveryEvent.delivery_id == ids["u-0042"])
                         .order_by(DeliveryEvent.id)).all()  # type: ignore[arg-type]
    assert list(history) == ["queued", *ACKS]
    db.dispose()


async def test_an_unavailable_database_loses_no_ack(tmp_path: Path) -> None:
    db, _bid, ids = ward(tmp_path, busy_timeout_ms=100)
    writer = DbWriter(db)
    submit_acks(writer, ids)
    locker = sqlite3.connect(tmp_path / "w.db", timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    assert await writer.flush() is False
    assert writer.backlog == 5 * UNITS and writer.db_errors == 1  # kept for the next round
    submit_acks(writer, {"u-0001": ids["u-0001"]})  # more arrive meanwhile
    locker.rollback()
    locker.close()
    assert await writer.flush() is True
    assert writer.backlog == 0 and writer.last_error == ""
    states, events = counts(db)
    assert states == {"played": UNITS}
    assert events == UNITS + 5 * UNITS + 5  # nothing lost, nothing doubled
    db.dispose()


async def test_a_plain_write_sees_the_rows_submitted_before_it(tmp_path: Path) -> None:
    db, _bid, ids = ward(tmp_path)
    writer = DbWriter(db)
    seen: list[str] = []
    did = ids["u-0003"]
    writer.submit_row(apply_changes, DeliveryChange(did, "verified", "", 5))

    def look(s: Session) -> None:
        d = s.get(Delivery, did)
        assert d is not None
        seen.append(d.state)

    writer.submit(look)
    writer.submit_row(apply_changes, DeliveryChange(did, "playing", "", 6))
    writer.submit(look)
    assert await writer.flush() is True
    assert seen == ["verified", "playing"]
    db.dispose()


async def test_changes_of_a_deleted_delivery_are_skipped_not_fatal(tmp_path: Path) -> None:
    db, _bid, ids = ward(tmp_path)
    writer = DbWriter(db)
    writer.submit_row(apply_changes, DeliveryChange(10**9, "played", "", 7))  # no such delivery
    writer.submit_row(apply_changes, DeliveryChange(ids["u-0009"], "played", "", 7))
    assert await writer.flush() is True
    assert writer.failed_ops == 0
    states, events = counts(db)
    assert states == {"queued": UNITS - 1, "played": 1} and events == UNITS + 1
    db.dispose()


async def test_telemetry_of_a_batch_is_one_update_latest_wins(tmp_path: Path) -> None:
    db, _bid, _ids = ward(tmp_path)
    writer = DbWriter(db)
    for round_ in range(3):  # three telemetry messages of every unit within one batch
        for i in range(UNITS):
            row = (f"u-{i:04d}", {"volume": round_, "power": True}, 100 + round_)
            writer.submit_row(write_telemetry, row)
    assert await writer.flush() is True and writer.batches == 1
    with Session(db.engine) as s:
        nodes = s.exec(select(Node).where(col(Node.id).like("u-%"))).all()
    assert len(nodes) == UNITS
    assert all(n.telemetry == {"volume": 2, "power": True} and n.last_seen == 102 for n in nodes)
    db.dispose()


async def test_presence_changes_are_bulk_rows_in_order_a_retired_unit_stays_retired(tmp_path: Path) -> None:
    db, _bid, _ids = ward(tmp_path)
    with db.session() as s:
        retired = s.get(Node, "u-0005")
        assert retired is not None
        retired.status = RETIRED
        s.add(retired)
        s.commit()
    writer = DbWriter(db)
    for i in range(UNITS):  # a fleet comes up: every unit's birth
        row = PresenceChange(f"u-{i:04d}", "online", "birth", 200, (("status", "online"), ("session", "s1"),
                                                                    ("fw", "1.0")))
        writer.submit_row(write_changes, row)
    writer.submit_row(write_changes, PresenceChange("u-0001", "offline", "will", 300,
                                                    (("status", "offline"), ("session", "s1"), ("fw", None))))
    writer.submit_row(write_changes, PresenceChange("u-0001", "online", "birth", 400,
                                                    (("status", "online"), ("session", "s2"), ("fw", "1.1"))))
    assert await writer.flush() is True and writer.batches == 1
    with Session(db.engine) as s:
        nodes = {n.id: n for n in s.exec(select(Node).where(col(Node.id).like("u-%"))).all()}
        events = s.exec(select(func.count()).select_from(NodeEvent)).one()
    assert events == UNITS + 2
    assert (nodes["u-0001"].status, nodes["u-0001"].session, nodes["u-0001"].fw) == ("online", "s2", "1.1")
    assert nodes["u-0001"].last_seen == 400  # the last change of a unit wins
    assert nodes["u-0005"].status == RETIRED  # retired meanwhile: stays retired
    assert sum(n.status == "online" and n.last_seen == 200 for n in nodes.values()) == UNITS - 2
    db.dispose()
