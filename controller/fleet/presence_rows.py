"""Presence changes written many at a time (births, wills, timeouts, alarms of a whole fleet).

A fleet that comes up (or a broker restart) is a thousand births within seconds; written one ORM
row at a time (an event, then get the unit's row, set its fields) each cost ~1 ms and held the
database while emergency writes waited. :func:`write_changes` writes a batch as one INSERT of the
events and, per run of changes that set the same fields, one ``executemany`` UPDATE of the units
(a retired unit stays retired); order is kept, so the last change of a unit wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session

from controller.fleet.models import RETIRED, Node, NodeEvent

_NODE = Node.__table__  # type: ignore[attr-defined]
_EVENT = NodeEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """Unit ``node_id``: event ``kind`` at ``at``; its row gets ``fields`` (None values skipped)."""

    node_id: str
    kind: str
    detail: str
    at: int
    fields: tuple[tuple[str, Any], ...]


def write_changes(s: Session, rows: list[PresenceChange]) -> None:
    s.execute(insert(_EVENT), [{"node_id": r.node_id, "kind": r.kind, "detail": r.detail[:500], "at": r.at}
                               for r in rows])
    run: list[dict[str, Any]] = []
    keys: tuple[str, ...] = ()
    for r in rows:
        values = {k: v for k, v in r.fields if v is not None}
        if run and tuple(values) != keys:
            _update(s, keys, run)
            run = []
        keys = tuple(values)
        run.append({"b_id": r.node_id, "b_seen": r.at, **{f"b_{k}": v for k, v in values.items()}})
    if run:
        _update(s, keys, run)


def _update(s: Session, keys: tuple[str, ...], params: list[dict[str, Any]]) -> None:
    stmt = (update(_NODE).where(_NODE.c.id == bindparam("b_id"), _NODE.c.status != RETIRED)
            .values(last_seen=bindparam("b_seen"), **{k: bindparam(f"b_{k}") for k in keys}))
    s.execute(stmt, params)
