"""Broadcasts of slots due together, built ahead of their instant and written at it.

The schedule runner takes a burst's slots a few seconds before they are due (scheduler/wheel.py)
and asks for them to be built then: the bulletins checked with the airing rule (``airable``),
each distinct target resolved, every broadcast row, delivery row and audit entry made
(controller/airing/burst.py ``BroadcastBatch``), nothing written. At the instant, in the
transaction that claims the slots' runs, :meth:`PreparedBroadcasts.current` reads the bulletins
again (one query) and refuses if any changed (the slot is then aired the usual way, with the rule
applied to the bulletin as it is then), and :meth:`PreparedBroadcasts.write` writes the rows with
the driver's own executemany — the broadcasts, the deliveries, their first events (one INSERT …
SELECT) and the audit entries — stamped with the instant. The units of a target are those it had
when the slots were built (at most ``schedule.prepare_s`` before the instant, itself ``lead_s``
before the slot).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlmodel import Session

from controller.accounts.models import AuditEntry
from controller.airing.delivery_rows import raw_insert
from controller.airing.models import Broadcast, Delivery, DeliveryEvent, DeliveryState
from controller.bulletins.models import Bulletin
from scheduler.ports import Aired

_BROADCAST = Broadcast.__table__  # type: ignore[attr-defined]
_BULLETIN = Bulletin.__table__  # type: ignore[attr-defined]
_DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
_EVENT = DeliveryEvent.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
_BC_COLUMNS = ("id", "bulletin_id", "audio_sha256", "priority", "status", "reason", "targets", "scopes",
               "repeat", "expires_at", "sent_at", "finished_at", "created_by", "play_at",
               "air_at", "created_at")  # the last two: stamped at the instant
_JSON = frozenset({"targets", "scopes"})
_DELIVERY_COLUMNS = ("broadcast_id", "node_id", "state", "reason", "updated_at")
_AUDIT_COLUMNS = ("at", "username", "action", "target", "detail")
_CHUNK = 900  # SQLite's bound-parameter limit


def bulletin_rows(s: Session, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """Every column of the bulletins ``ids``: what the airing rule was applied to."""
    out: dict[int, tuple[Any, ...]] = {}
    for i in range(0, len(ids), _CHUNK):
        q = select(_BULLETIN).where(_BULLETIN.c.id.in_(ids[i:i + _CHUNK]))
        out.update((r.id, tuple(r)) for r in s.execute(q))
    return out


class PreparedBroadcasts:
    """Implements ``scheduler.ports.Prepared`` for bulletin slots (see the module docstring): the
    rows as the driver takes them, all but the instant's stamp."""

    def __init__(self, rows: list[dict[str, Any]], nodes: dict[str, list[str]], aired: list[Aired],
                 audit: list[tuple[str, str, str, str]], bulletins: dict[int, tuple[Any, ...]]) -> None:
        self._broadcasts = [tuple(json.dumps(r[c]) if c in _JSON else r[c] for c in _BC_COLUMNS[:-2])
                            for r in rows]
        queued = DeliveryState.QUEUED.value
        self._deliveries = [(b, n, queued, "") for b, units in nodes.items() for n in units]
        self._bids = list(nodes)
        self._aired = aired
        self._audit = audit
        self._bulletins = bulletins

    def planned(self) -> list[Aired]:
        return self._aired

    def current(self, s: Session) -> bool:
        return bulletin_rows(s, sorted(self._bulletins)) == self._bulletins

    def write(self, s: Session, now_ms: int) -> list[Aired]:
        stamp = (now_ms, now_ms)  # air_at, created_at: the broadcasts go out now
        if self._broadcasts:
            raw_insert(s, _BROADCAST, _BC_COLUMNS, [r + stamp for r in self._broadcasts])
        if self._deliveries:
            self._write_deliveries(s, now_ms)
        if self._audit:
            raw_insert(s, _AUDIT, _AUDIT_COLUMNS, [(now_ms, *e) for e in self._audit])
        return [Aired(broadcasts=[(b, now_ms) for b, _ in a.broadcasts], relays=list(a.relays),
                      failure=a.failure) for a in self._aired]

    def _write_deliveries(self, s: Session, now_ms: int) -> None:
        """The delivery rows, then their first events with INSERT … SELECT: on SQLite the rows just
        inserted are those past the highest id before (this transaction holds the only write lock
        since its first INSERT), elsewhere those of these broadcasts."""
        sqlite = s.get_bind().dialect.name == "sqlite"
        before = (s.execute(select(func.max(_DELIVERY.c.id))).scalar() or 0) if sqlite else 0
        raw_insert(s, _DELIVERY, _DELIVERY_COLUMNS, [(*d, now_ms) for d in self._deliveries])
        queued = DeliveryState.QUEUED.value
        bids = self._bids
        which = ([_DELIVERY.c.id > before] if sqlite else
                 [_DELIVERY.c.broadcast_id.in_(bids[i:i + _CHUNK]) for i in range(0, len(bids), _CHUNK)])
        made = 0
        for cond in which:
            first = select(_DELIVERY.c.id, literal(queued), literal(""), literal(now_ms)).where(cond)
            res = s.execute(insert(_EVENT).from_select(["delivery_id", "state", "reason", "at"], first))
            made += res.rowcount  # type: ignore[attr-defined]  # a CursorResult
        if sqlite and made != len(self._deliveries):  # never seen; the firing rolls back, the usual path
            raise RuntimeError(f"{made} first events for {len(self._deliveries)} deliveries")
