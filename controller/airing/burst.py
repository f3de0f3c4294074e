"""Many broadcasts made in one transaction: a burst of schedule slots due on one second.

``create_broadcast`` makes one broadcast through the ORM: the bulletin read and checked, the
target resolved (a query per zone), the row flushed, its deliveries written — ~3 ms of CPU each
here, so the last of 1,000 slots on a round time fired seconds late. ``BroadcastBatch`` applies
the same checks (``airable``: the airing rule, the bound audio) once per (bulletin, priority),
resolves each distinct target once, and at ``write`` inserts every broadcast, every delivery row
and every first event with one statement per table. It does not commit: the slot firing commits
the slots' runs with them (scheduler/firing.py ``air_slots``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from controller.airing.broadcasts import airable, id_stamp, new_broadcast_id
from controller.airing.delivery_rows import insert_many_deliveries
from controller.airing.models import Broadcast, BroadcastStatus
from controller.bulletins.models import Bulletin
from controller.core.errors import ServiceError
from controller.fleet.targets import Resolved, resolve_targets
from devices import protocol as p

logger = logging.getLogger(__name__)

_BROADCAST = Broadcast.__table__  # type: ignore[attr-defined]


class BroadcastBatch:
    """Broadcasts added one by one (each checked as ``create_broadcast`` checks it), written together."""

    def __init__(self, s: Session) -> None:
        self._s = s
        self._now = p.now_ms()
        self._stamp = id_stamp()
        self._airable: dict[tuple[int, str | None], Bulletin | ServiceError] = {}
        self._held: dict[int, Bulletin | None] = {}  # kept: the session's identity map is weak
        self._targets: dict[tuple[bool, tuple[str, ...], tuple[str, ...]], Resolved | ServiceError] = {}
        self._rows: list[dict[str, Any]] = []
        self._nodes: dict[str, list[str]] = {}

    def bulletin(self, bulletin_id: int) -> Bulletin | None:
        """The bulletin row (read once per batch), None if it does not exist."""
        if bulletin_id not in self._held:
            self._held[bulletin_id] = self._s.get(Bulletin, bulletin_id)
        return self._held[bulletin_id]

    def add(self, *, bulletin_id: int, all_nodes: bool, zones: list[str], nodes: list[str],
            priority: str | None, play_at: int | None, valid_s: int, repeat: int,
            created_by: str) -> tuple[str, int]:
        """One broadcast airing now (``play_at``: when the units start, None on arrival); its id and
        air time. A ``ServiceError`` says why it may not air (nothing added)."""
        bulletin = self._checked(bulletin_id, priority)
        target = self._target(all_nodes, zones, nodes)
        bc_id = new_broadcast_id(self._stamp)
        while bc_id in self._nodes:  # 32 random bits: a repeat within one batch is rare, never kept
            bc_id = new_broadcast_id(self._stamp)
        start = self._now
        self._rows.append({
            "id": bc_id, "bulletin_id": bulletin_id, "audio_sha256": bulletin.audio_sha256,
            "priority": priority or bulletin.priority, "status": BroadcastStatus.SCHEDULED.value,
            "reason": "", "targets": {"all": all_nodes, "zones": zones, "nodes": nodes},
            "scopes": [sc.model_dump() for sc in target.scopes], "repeat": repeat, "air_at": start,
            "expires_at": max(start, play_at or start) + valid_s * 1000, "sent_at": None,
            "finished_at": None, "created_by": created_by, "created_at": self._now, "play_at": play_at})
        self._nodes[bc_id] = target.nodes
        return bc_id, start

    def write(self) -> None:
        """Insert every broadcast added, its deliveries and their first events (no commit)."""
        if not self._rows:
            return
        self._s.execute(insert(_BROADCAST), self._rows)
        insert_many_deliveries(self._s, self._nodes, self._now)
        logger.info("%d broadcast(s) for %d delivery row(s) written together", len(self._rows),
                    sum(len(n) for n in self._nodes.values()))
        self._rows, self._nodes = [], {}

    def taken(self) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
        """The rows added, and each broadcast's units, handed over (controller/airing/prepared.py)
        instead of written here; the batch is empty afterwards."""
        out = (self._rows, self._nodes)
        self._rows, self._nodes = [], {}
        return out

    def bulletin_ids(self) -> list[int]:
        return sorted(self._held)

    def _checked(self, bulletin_id: int, priority: str | None) -> Bulletin:
        key = (bulletin_id, priority)
        if key not in self._airable:
            try:
                self._airable[key] = airable(self._s, bulletin_id, priority)
            except ServiceError as exc:
                self._airable[key] = exc
        got = self._airable[key]
        if isinstance(got, ServiceError):
            raise got
        return got

    def _target(self, all_nodes: bool, zones: list[str], nodes: list[str]) -> Resolved:
        key = (all_nodes, tuple(zones), tuple(nodes))
        if key not in self._targets:
            try:
                self._targets[key] = resolve_targets(self._s, all_nodes=all_nodes, zones=zones, nodes=nodes)
            except ServiceError as exc:
                self._targets[key] = exc
        got = self._targets[key]
        if isinstance(got, ServiceError):
            raise got
        return got
