"""Database: migrations on SQLite and PostgreSQL, batched writes surviving an unavailable database,
and a controller restart in the middle of a broadcast."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, select

from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet.models import NodeEvent, Zone
from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, states, wait_broadcast, wait_for, wait_online

TABLES = {"zone", "node", "nodezone", "nodeevent", "audioasset", "bulletin", "broadcast", "delivery",
          "deliveryevent", "user", "alembic_version"}


def test_sqlite_migrates_to_head_twice_and_uses_wal(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    db.migrate()  # idempotent
    assert TABLES <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.dispose()


@pytest.mark.postgres
def test_postgresql_migrates_and_stores(pg_url: str) -> None:
    db = Database(pg_url)
    db.migrate()
    db.migrate()
    assert TABLES <= set(inspect(db.engine).get_table_names())
    with db.session() as s:
        s.add(Zone(id="tdp1", name="Tổ dân phố 1"))
        s.commit()
    with db.session() as s:
        assert s.exec(select(Zone.name)).one() == "Tổ dân phố 1"
    db.dispose()


async def test_writer_keeps_writes_while_database_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    db = Database(f"sqlite:///{path}", busy_timeout_ms=100)
    db.migrate()
    writer = DbWriter(db, interval=0.05)
    locker = sqlite3.connect(path, timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the database: writes must wait
    for i in range(50):
        writer.submit(lambda s, i=i: s.add(NodeEvent(node_id=f"n{i}", kind="online")))
    assert await writer.flush() is False
    assert writer.backlog == 50 and writer.db_errors == 1 and "locked" in writer.last_error
    locker.rollback()
    locker.close()
    assert await writer.flush() is True
    assert writer.backlog == 0 and writer.last_error == ""
    with Session(db.engine) as s:
        assert len(s.exec(select(NodeEvent)).all()) == 50  # nothing lost, nothing doubled
    db.dispose()


async def test_a_bad_write_does_not_take_the_batch_with_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    db.migrate()
    writer = DbWriter(db)
    writer.submit(lambda s: s.add(Zone(id="a", name="A")))
    writer.submit(lambda s: s.add(Zone(id="a", name="duplicate key")))
    writer.submit(lambda s: s.add(Zone(id="b", name="B")))
    assert await writer.flush() is True
    assert writer.failed_ops == 1
    with db.session() as s:
        assert sorted(s.exec(select(Zone.id)).all()) == ["a", "b"]
    db.dispose()


@pytest.mark.broker
@pytest.mark.timeout(120)
@pytest.mark.parametrize("stop_at", ["aired", "playing"])
async def test_controller_restart_mid_broadcast_resumes(mosquitto: BrokerProcess, tmp_path: Path,
                                                        stop_at: str) -> None:
    """The controller stops right after airing (``aired``), or just after its ``play`` went out and
    the units started (``playing``: their acks may die with it); a new one picks the broadcast up
    from the database, asks the units short of ``playing`` again, and each unit plays it once."""
    settings = make_settings(tmp_path, mosquitto.port)
    ids = ["c-1", "c-2", "c-3"]
    # ``playing``: c-1 and c-2 send each ack (and answer) 1 s late, so their `playing` reaches no
    # controller: the new one finds them `verified` in the database and asks them to play again
    late = Faults(ack_delay_s=1.0) if stop_at == "playing" else None
    nodes = [sim(n, mosquitto.port, late if n != "c-3" else None) for n in ids]
    async with running_controller(settings) as (_, client):
        await provision(client, {"z": ids})
        b = await bulletin(client)
        await asyncio.gather(*(n.start() for n in nodes[:2]))  # c-3 is off for now
        await wait_online(client, ids[:2])
        bid = await air(client, b["id"], {"zones": ["z"]})
        if stop_at == "playing":
            await wait_for(lambda: all(n.player.started == [bid] for n in nodes[:2]), 30, "c-1, c-2 playing")
        else:
            await asyncio.sleep(0.5)
    try:
        await nodes[2].start()  # comes up while no controller runs
        async with running_controller(settings) as (_, client):
            bc = await wait_broadcast(client, bid, 60)
            assert states(bc) == {n: "played" for n in ids}
            # each exactly once: one playback start, one end, and no second copy waiting to play
            # (a unit whose `playing` ack died with the old controller is asked again: it answers)
            assert [n.played for n in nodes] == [[bid]] * 3
            assert [n.player.started for n in nodes] == [[bid]] * 3
            assert [n.player.state_of(bid) for n in nodes] == [None] * 3
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
