"""Slots due together, prepared ahead of their instant and claimed at it (scheduler/wheel.py).

:func:`prepare_slots` runs a few seconds before the slots' jobs are due: it reads the schedules,
judges each slot as it will be at the instant (``now`` = the instant) and asks the airer to build
what they will make (``SlotAirer.prepare_many``), writing nothing. :func:`fire_prepared` runs at
the instant, in one transaction: the schedules' versions read again (one query), the airer's
``current`` (its inputs unchanged), the lease, then the airer's rows, every run — the UNIQUE
claim, as in :func:`scheduler.firing.air_slots` — and ``last_slot_at``, each with one executemany
of the driver, and one commit. Anything else — a schedule changed, gone or disabled since, a slot
already claimed, the instant passed the slot itself (it would air late: the usual path judges it),
an exception date — returns None with nothing written, and the slots take the usual path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from scheduler.firing import (
    RUNS,
    SCHEDULES,
    FireConfig,
    SlotResult,
    log_batch,
    read_schedules,
    slot_of,
    slot_outcome,
    slot_verdict,
)
from scheduler.models import RunStatus
from scheduler.ports import Prepared, Slot, SlotAirer

_RUN_COLUMNS = ("schedule_id", "slot_at", "version", "status", "late_ms", "reason", "broadcast_ids",
                "fired_by", "created_at", "updated_at")
_CHUNK = 900  # SQLite's bound-parameter limit


@dataclass
class PreparedSlots:
    """(schedule id, version, slot ms) each, in firing order, and what the airer built for them."""

    items: list[tuple[int, int, int]]
    slots: list[Slot]
    made: Prepared
    runs: list[tuple[Any, ...]]  # each run's row as the driver takes it, but its two stamps
    results: list[SlotResult]  # what each slot's outcome will be (air times stamped at the instant)


def prepare_slots(engine: Engine, cfg: FireConfig, airer: SlotAirer, items: list[tuple[int, int, int]],
                  at_ms: int) -> PreparedSlots | None:
    """Build ``items`` (due at ``at_ms``) ahead; None when any of them is not a plain "air then"."""
    with Session(engine, expire_on_commit=False) as s:
        found = read_schedules(s, sorted({sid for sid, _, _ in items}))
        slots: list[Slot] = []
        for sid, version, slot_ms in items:
            sc = found.get(sid)
            if sc is None or sc.deleted or not sc.enabled or sc.version != version or slot_ms <= at_ms:
                return None
            if slot_verdict(sc, slot_ms, at_ms, cfg.grace_ms)[0] is not RunStatus.FIRING:
                return None
            slots.append(slot_of(sc, slot_ms, at_ms))
        made = airer.prepare_many(s, slots)
        s.rollback()  # it wrote nothing; nor may it
    if made is None:
        return None
    results = [slot_outcome(slot, a) for slot, a in zip(slots, made.planned(), strict=True)]
    runs = [(sid, slot_ms, version, res.outcome, 0, res.reason, json.dumps(res.aired().ids), cfg.holder)
            for (sid, version, slot_ms), res in zip(items, results, strict=True)]
    return PreparedSlots(items, slots, made, runs, results)


def fire_prepared(engine: Engine, cfg: FireConfig, p: PreparedSlots, *,
                  may_fire: Callable[[], bool]) -> list[SlotResult] | None:
    """Claim and write ``p`` now, in one transaction; None (nothing written): take the usual path."""
    now = cfg.clock()
    if any(slot_ms <= now for _, _, slot_ms in p.items):
        return None
    with Session(engine, expire_on_commit=False) as s:
        want = {sid: version for sid, version, _ in p.items}
        if _versions(s, sorted(want)) != want or not p.made.current(s) or not may_fire():
            return None
        aired = p.made.write(s, now)
        stamp = (now, now)
        conn = s.connection()
        try:
            conn.exec_driver_sql(_sql(conn, f"INSERT INTO {RUNS.name} ({', '.join(_RUN_COLUMNS)}) VALUES "
                                            f"({', '.join(['?'] * len(_RUN_COLUMNS))})"),
                                 [r + stamp for r in p.runs])
        except IntegrityError:
            s.rollback()
            return None
        conn.exec_driver_sql(_sql(conn, f"UPDATE {SCHEDULES.name} SET last_slot_at = ? WHERE id = ? AND "
                                        "(last_slot_at IS NULL OR last_slot_at < ?)"),
                             [(slot_ms, sid, slot_ms) for sid, _, slot_ms in p.items])
        s.commit()
    results = [SlotResult(r.outcome, a.broadcasts, r.reason, a.relays)
               for r, a in zip(p.results, aired, strict=True)]
    log_batch(p.slots, results)
    return results


def _versions(s: Session, ids: list[int]) -> dict[int, int]:
    """The version of each of ``ids`` still enabled and not deleted."""
    out: dict[int, int] = {}
    c = SCHEDULES.c
    for i in range(0, len(ids), _CHUNK):
        q = (select(c.id, c.version)
             .where(c.id.in_(ids[i:i + _CHUNK]), c.enabled.is_(True), c.deleted.is_(False)))
        out.update((r.id, r.version) for r in s.execute(q))
    return out


def defer_checkpoints(engine: Engine) -> None:
    """SQLite: this engine's commits never run a WAL checkpoint themselves (the burst's commit ran
    one: 35 ms of its 40); :func:`checkpoint` runs it between instants, the controller's other
    connections as they commit."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()


def checkpoint(engine: Engine) -> None:
    """SQLite: copy the write-ahead log into the database now (PASSIVE: waits for nobody)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _sql(conn: Any, sql: str) -> str:
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")  # sqlite3 | psycopg
