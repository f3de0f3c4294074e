"""Delivery rows written many at a time: the per-unit state changes of the batched writer, and
the rows of a new broadcast.

A thousand units acking one broadcast are a thousand state changes within a second; written one
ORM row at a time (get, update, flush) they cost ~1 ms of CPU each and held the database (and the
GIL) long enough to delay the acks behind them. :func:`apply_changes` writes a batch of changes
with one ``executemany`` UPDATE (the last change of each delivery) and one INSERT of every event;
:func:`insert_deliveries` writes a new broadcast's rows the same way (the emergency POST must not
spend 0.74 ms per unit on the event loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session
from sqlmodel import select as sqlselect

from controller.airing.models import Broadcast, BroadcastStatus, Delivery, DeliveryEvent, DeliveryState
from devices.protocol import now_ms

_DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
_EVENT = DeliveryEvent.__table__  # type: ignore[attr-defined]
_UPDATE = (update(_DELIVERY).where(_DELIVERY.c.id == bindparam("b_id"))
           .values(state=bindparam("b_state"), reason=bindparam("b_reason"), updated_at=bindparam("b_at")))


@dataclass(frozen=True, slots=True)
class DeliveryChange:
    """Delivery ``delivery_id`` entered ``state`` (with ``reason``) at ``at`` (ms)."""

    delivery_id: int
    state: str
    reason: str
    at: int


def apply_changes(s: Session, rows: list[DeliveryChange]) -> None:
    """Write ``rows`` (in order): each delivery gets its last state, every change its event.
    Changes of a delivery that no longer exists (its broadcast was deleted) are skipped."""
    ids = {r.delivery_id for r in rows}
    known: set[int] = set()
    id_list = list(ids)
    for i in range(0, len(id_list), 900):  # SQLite's bound-parameter limit
        part = id_list[i:i + 900]
        known.update(s.execute(select(_DELIVERY.c.id).where(_DELIVERY.c.id.in_(part))).scalars())
    last: dict[int, DeliveryChange] = {}
    events: list[dict[str, Any]] = []
    for r in rows:
        if r.delivery_id in known:
            last[r.delivery_id] = r
            events.append({"delivery_id": r.delivery_id, "state": r.state, "reason": r.reason, "at": r.at})
    if not last:
        return
    s.execute(_UPDATE, [{"b_id": r.delivery_id, "b_state": r.state, "b_reason": r.reason, "b_at": r.at}
                        for r in last.values()])
    s.execute(insert(_EVENT), events)


def insert_deliveries(s: Session, broadcast_id: str, node_ids: list[str], at: int) -> dict[str, int]:
    """The ``queued`` rows of a new broadcast and their first events, in bulk; node id → delivery id."""
    if not node_ids:
        return {}
    queued = DeliveryState.QUEUED.value
    raw_insert(s, _DELIVERY, _DELIVERY_COLUMNS, [(broadcast_id, n, queued, "", at) for n in node_ids])
    ids: dict[str, int] = {n: i for i, n, _, _ in delivery_states(s, broadcast_id)}
    raw_insert(s, _EVENT, _EVENT_COLUMNS, [(ids[n], queued, "", at) for n in node_ids])
    return ids


def insert_many_deliveries(s: Session, nodes_of: dict[str, list[str]], at: int) -> None:
    """The ``queued`` rows of many new broadcasts (broadcast id → its unit ids) and their first
    events: one INSERT of every row, the ids read back by broadcast, one INSERT of every event."""
    queued = DeliveryState.QUEUED.value
    rows = [(b, n, queued, "", at) for b, nodes in nodes_of.items() for n in nodes]
    if not rows:
        return
    raw_insert(s, _DELIVERY, _DELIVERY_COLUMNS, rows)
    bids = list(nodes_of)
    ids: list[int] = []
    for i in range(0, len(bids), 900):  # SQLite's bound-parameter limit
        part = bids[i:i + 900]
        ids += s.execute(select(_DELIVERY.c.id).where(_DELIVERY.c.broadcast_id.in_(part))).scalars()
    raw_insert(s, _EVENT, _EVENT_COLUMNS, [(i, queued, "", at) for i in ids])


_DELIVERY_COLUMNS = ("broadcast_id", "node_id", "state", "reason", "updated_at")
_EVENT_COLUMNS = ("delivery_id", "state", "reason", "at")


def delivery_states(s: Session, broadcast_id: str) -> list[tuple[int, str, str, str]]:
    """(id, node id, state, reason) of every delivery of ``broadcast_id``, read with the driver's
    own cursor: through SQLAlchemy's result processing 1,000 rows cost ~10 ms of the emergency's
    way to the wire (read twice on it: its ids at the POST, its states at the claim)."""
    conn = s.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"  # sqlite3 | psycopg
    sql = f"SELECT id, node_id, state, reason FROM {_DELIVERY.name} WHERE broadcast_id = {mark}"
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in conn.exec_driver_sql(sql, (broadcast_id,))]


def raw_insert(s: Session, table: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """``rows`` (plain values: strings and integers, no type to process) inserted with the driver's
    own executemany, in the session's transaction: SQLAlchemy's per-row parameter handling cost
    ~40 µs a row here (a 1,000-unit broadcast's rows and events: ~0.1 s of the emergency POST)."""
    conn = s.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"  # sqlite3 | psycopg
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    conn.exec_driver_sql(sql, rows)


def cancel_queued(node_id: str, on_air: set[str], reason: str) -> Callable[[Session], None]:
    """The writer's op that ends a retired unit's deliveries still ``queued`` (their broadcast not on
    air here: waiting for its air time)."""
    at, queued, cancelled = now_ms(), DeliveryState.QUEUED.value, DeliveryState.CANCELLED.value

    def op(s: Session) -> None:
        q = sqlselect(Delivery).where(Delivery.node_id == node_id, Delivery.state == queued)
        for d in s.exec(q).all():
            if d.broadcast_id not in on_air and d.id is not None:
                d.state, d.reason, d.updated_at = cancelled, reason, at
                s.add(d)
                s.add(DeliveryEvent(delivery_id=d.id, state=cancelled, reason=reason, at=at))
    return op


def mark_sent(broadcast_id: str, sent_at: int) -> Callable[[Session], None]:
    """The writer's op: a broadcast still ``sending`` is ``active`` from ``sent_at`` (all published)."""
    def op(s: Session) -> None:
        bc = s.get(Broadcast, broadcast_id)
        if bc is not None and bc.status == BroadcastStatus.SENDING.value:
            bc.status, bc.sent_at = BroadcastStatus.ACTIVE.value, sent_at
            s.add(bc)
    return op
