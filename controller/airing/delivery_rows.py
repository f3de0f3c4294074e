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

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session

from controller.airing.models import Delivery, DeliveryEvent, DeliveryState

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
    s.execute(insert(_DELIVERY), [{"broadcast_id": broadcast_id, "node_id": n, "state": queued,
                                   "reason": "", "updated_at": at} for n in node_ids])
    ids: dict[str, int] = {n: i for i, n in s.execute(
        select(_DELIVERY.c.id, _DELIVERY.c.node_id).where(_DELIVERY.c.broadcast_id == broadcast_id)).all()}
    s.execute(insert(_EVENT), [{"delivery_id": ids[n], "state": queued, "reason": "", "at": at}
                               for n in node_ids])
    return ids
