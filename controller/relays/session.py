"""One relay session (tiếp sóng): what it relays, to whom, when, and its row in the ``relay`` table.

:class:`RelaySession` is the in-memory form the hub (controller/relays/hub.py) runs; ``row`` and
``from_row`` convert it to and from its database row (controller/relays/store.py), so a relay
survives a controller restart and can be taken over by another controller.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controller.relays import store
from controller.relays.models import Relay
from devices import protocol as p


@dataclass
class RelaySession:
    id: str
    user: str
    url: str
    mode: str  # node_fetch | republish
    priority: p.Priority
    nodes: list[str]
    scopes: list[p.AudioScope]
    start_at: datetime | None
    duration_s: float | None
    state: str = "scheduled"  # scheduled | waiting | playing | interrupted | ended
    reason: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # mode-specific figures (republish)
    target: dict[str, Any] = field(default_factory=dict)
    schedule_id: int | None = None
    _saved: tuple[str, str] = ("", "")
    _timers: list[asyncio.TimerHandle] = field(default_factory=list)
    _sent: dict[str, float] = field(default_factory=dict)  # unit → loop time of its last play_stream

    # ------------------------------------------------------------- the hub's bookkeeping

    def add_timer(self, handle: asyncio.TimerHandle) -> None:
        """A start or end timer of this relay (cancelled by :meth:`cancel_timers`)."""
        self._timers.append(handle)

    def cancel_timers(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()

    def mark_saved(self) -> None:
        """Its state and reason as now written to the database."""
        self._saved = (self.state, self.reason)

    def unsaved(self) -> bool:
        """Its state or reason changed since :meth:`mark_saved`."""
        return (self.state, self.reason) != self._saved

    def told(self, nodes: list[str], at: float) -> None:
        """``play_stream`` went to ``nodes`` at loop time ``at``."""
        self._sent.update(dict.fromkeys(nodes, at))

    def last_told(self, node_id: str) -> float:
        """Loop time of the last ``play_stream`` to the unit (0 if never)."""
        return self._sent.get(node_id, 0.0)

    def public(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"id": self.id, "url": self.url, "mode": self.mode, "state": self.state,
                "reason": self.reason, "user": self.user, "priority": self.priority.value,
                "nodes": self.nodes, "start_at": iso(self.start_at), "duration_s": self.duration_s,
                "started_at": iso(self.started_at), "ended_at": iso(self.ended_at),
                "schedule_id": self.schedule_id, **self.detail}

    def end_at(self) -> datetime | None:
        """When the relay ends by itself: its window end, or duration_s after it went on air."""
        if not self.duration_s:
            return None
        base = self.start_at or self.started_at
        return base + timedelta(seconds=self.duration_s) if base else None

    def row(self, owner: str) -> Relay:
        return Relay(id=self.id, url=self.url, mode=self.mode, priority=self.priority.value, nodes=self.nodes,
                     scopes=[x.model_dump(mode="json") for x in self.scopes], target=self.target,
                     start_at=store.ms(self.start_at), duration_s=self.duration_s, state=self.state,
                     reason=self.reason, started_at=store.ms(self.started_at),
                     ended_at=store.ms(self.ended_at),
                     owner=owner, created_by=self.user, schedule_id=self.schedule_id, detail=self.detail)

    @classmethod
    def from_row(cls, row: Relay) -> RelaySession:
        return cls(row.id, row.created_by, row.url, row.mode, p.Priority(row.priority), list(row.nodes),
                   store.scopes_of(row), store.dt(row.start_at), row.duration_s, state=row.state,
                   reason=row.reason, started_at=store.dt(row.started_at), detail=dict(row.detail),
                   target=dict(row.target), schedule_id=row.schedule_id)
