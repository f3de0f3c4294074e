"""The static half of the unit list (name, zones, position, last stored values), cached.

``GET /api/nodes`` is what the UI polls. Loading every Node and NodeZone row as ORM objects
and validating a pydantic model per unit took ~0.5 s per request at 5,000 units (bench/fleet.py).
The static part changes only when units or zone memberships are added or removed, so it is
rebuilt only when a cheap signature (row counts, newest ``created_at``) changes; the live part
(status, telemetry, alarm, last seen) comes from the presence registry at every request.

Each unit's JSON is cached too (:meth:`NodeDirectory.row_json`), keyed by everything it is made
of (the static row and the live values, compared by identity first): a page of units that did
not change since the last request is a join of cached bytes, and one that did is re-serialised
alone (a heartbeat changes ``last_seen``: 5,000 units at one per 15 s re-serialise ~330 a second
of the rows asked for, not all of them at every request).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from controller.fleet.models import RETIRED, Node, NodeZone


@dataclass(frozen=True)
class NodeRow:
    id: str
    name: str
    zones: list[str]
    lat: float | None
    lon: float | None
    telemetry: dict[str, Any]  # as last stored: shown until the unit reports again
    alarm: str
    last_seen: int | None
    board: tuple[str, str] = ("", "")  # (hw, fw) as last stored


class NodeDirectory:
    def __init__(self) -> None:
        self._sig: tuple[Any, ...] | None = None
        self._rows: list[NodeRow] = []
        self._lock = threading.Lock()  # sync routes run in a thread pool
        self.rebuilds = 0
        self._json: dict[str, tuple[tuple[Any, ...], bytes]] = {}  # id -> (what it was made of, JSON)
        self.serialised = 0

    def row_json(self, row: NodeRow, status: str, alarm: str, last_seen: int | None,
                 telemetry: Mapping[str, Any], fmt_time: Callable[[int | None], str | None],
                 board: tuple[str, str] = ("", "")) -> bytes:
        """The unit's JSON object (``NodePublic``'s fields), from the cache when nothing changed;
        ``board`` is the (hw, fw) of its birth since start, else the stored one."""
        hw, fw = board if any(board) else row.board
        key = (row, status, alarm, last_seen, telemetry, hw, fw)
        hit = self._json.get(row.id)
        if hit is not None and hit[0] == key:
            return hit[1]
        body = json.dumps({
            "id": row.id, "name": row.name, "zones": row.zones, "status": status, "alarm": alarm,
            "last_seen": fmt_time(last_seen), "telemetry": telemetry, "lat": row.lat, "lon": row.lon,
            "hw": hw, "fw": fw,
        }, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        if len(self._json) > 4 * max(1, len(self._rows)):  # units retired meanwhile: start afresh
            self._json.clear()
        self._json[row.id] = (key, body)
        self.serialised += 1
        return body

    def changed(self) -> None:
        """A unit was renamed, moved or re-zoned (which the signature does not see): reload."""
        with self._lock:
            self._sig = None

    def rows(self, s: Session) -> list[NodeRow]:
        nodes = s.exec(select(func.count(), func.max(Node.created_at)).select_from(Node)
                       .where(col(Node.status) != RETIRED)).one()  # retiring one changes the count
        memberships = s.exec(select(func.count()).select_from(NodeZone)).one()
        sig = (*nodes, memberships)
        with self._lock:
            if sig != self._sig:
                self._rows = self._load(s)
                self._sig = sig
                self.rebuilds += 1
            return self._rows

    @staticmethod
    def _load(s: Session) -> list[NodeRow]:
        conn = s.connection()  # plain rows: no ORM objects for thousands of units
        zones: dict[str, list[str]] = {}
        for node_id, zone_id in conn.execute(sa_select(col(NodeZone.node_id), col(NodeZone.zone_id))
                                             .order_by(col(NodeZone.zone_id))):
            zones.setdefault(node_id, []).append(zone_id)
        fields = (Node.id, Node.name, Node.lat, Node.lon, Node.telemetry, Node.alarm, Node.last_seen,
                  Node.hw, Node.fw)
        cols = sa_select(*(col(c) for c in fields))
        rows = conn.execute(cols.where(col(Node.status) != RETIRED).order_by(col(Node.id)))
        return [NodeRow(i, name, zones.get(i, []), lat, lon, tel or {}, alarm, seen, (hw, fw))
                for i, name, lat, lon, tel, alarm, seen, hw, fw in rows]
