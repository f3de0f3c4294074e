"""Repairs of the broadcasts in flight: many units lacking one chunk get one re-send, not one each.

A unit asks only for the chunks it lost (docs/protocol.md §3 repair, devices.protocol.RepairPlan),
but when the broker drops a chunk under load, hundreds of units lose the same one. Re-sending it
on each unit's own topic makes the controller's egress grow with the fleet (it reached 1,900–2,600×
the audio at 2,000 units), so :class:`RepairDesk` coalesces:

* requests for a broadcast are gathered for ``window_s`` (50 ms), then sent together;
* a chunk wanted by more than ``few`` units (2) of one group scope of the broadcast (a zone, or
  ``all``) goes out once on that group's data topic; otherwise on each unit's node topic
  (a unit targeted on its own, or a lone unit of a big zone, does not cost the zone a copy);
* a chunk re-sent to a scope is not re-sent there again for ``hold_s`` (2.5 s, longer than a unit's
  shortest wait between two requests): the copy is on its way;
* a unit's requests are capped at 4 × the chunk count of the broadcast (a broken unit cannot
  make the controller send forever).

The controller's repair egress for one chunk in one hold period is so bounded by the number of
the broadcast's scopes plus ``few`` per scope, whatever the number of units.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.airing.active import ActiveBroadcast, NodeDelivery
from controller.airing.audio_out import AudioOut
from devices import protocol as p

logger = logging.getLogger(__name__)

#: a unit may ask for this many times the broadcast's chunks in all
BUDGET_FACTOR = 4


@dataclass
class RepairStats:
    requests: int = 0
    chunks_asked: int = 0
    chunks_held: int = 0  # asked while a copy to the unit's scope was on its way
    sent_to_groups: int = 0
    sent_to_nodes: int = 0
    over_budget: int = 0


@dataclass
class _Pending:
    active: ActiveBroadcast
    wanted: dict[int, set[str]] = field(default_factory=dict)  # chunk index -> units
    handle: asyncio.TimerHandle | None = None


class RepairDesk:
    """Gathers the repair requests of the broadcasts in flight and re-sends each chunk once a scope."""

    def __init__(self, out: AudioOut, groups_of: Callable[[str], list[str]], *, window_s: float = 0.05,
                 hold_s: float = 2.5, few: int = 2) -> None:
        self.out = out
        self.groups_of = groups_of
        self.window_s = window_s
        self.hold_s = hold_s
        self.few = few
        self.stats = RepairStats()
        self._pending: dict[str, _Pending] = {}
        self._sent: dict[tuple[str, str, int], float] = {}  # (bc, scope topic base, index) -> when

    def request(self, active: ActiveBroadcast, node_id: str, nd: NodeDelivery, indexes: list[int]) -> bool:
        """Unit ``node_id`` lacks chunks ``indexes`` of ``active``; False if over its budget."""
        self.stats.requests += 1
        wanted = sorted({i for i in indexes if 0 <= i < len(active.frames)})
        budget = BUDGET_FACTOR * len(active.frames) - nd.repaired_chunks
        if budget <= 0:
            self.stats.over_budget += 1
            logger.warning("node %s exhausted its repair budget for %s", node_id, active.id)
            return False
        wanted = wanted[:budget]
        nd.repaired_chunks += len(wanted)
        self.stats.chunks_asked += len(wanted)
        pending = self._pending.get(active.id)
        if pending is None:
            pending = self._pending[active.id] = _Pending(active)
            pending.handle = asyncio.get_running_loop().call_later(self.window_s, self.flush, active.id)
        for i in wanted:
            pending.wanted.setdefault(i, set()).add(node_id)
        return True

    def gathering(self) -> int:
        """How many broadcasts have requests gathered, not yet sent."""
        return len(self._pending)

    def flush(self, bc: str) -> None:
        """Send what was gathered for ``bc`` now (called ``window_s`` after its first request)."""
        pending = self._pending.pop(bc, None)
        if pending is None:
            return
        if pending.handle is not None:
            pending.handle.cancel()
        active, now = pending.active, time.monotonic()
        self._prune(now)
        for index in sorted(pending.wanted):
            by_scope: dict[p.AudioScope, list[str]] = {}
            for node_id in sorted(pending.wanted[index]):
                by_scope.setdefault(self._scope_of(active, node_id), []).append(node_id)
            for scope, units in by_scope.items():
                self._resend(active, index, scope, units, now)

    def _resend(self, active: ActiveBroadcast, index: int, scope: p.AudioScope, units: list[str],
                now: float) -> None:
        if self._on_its_way(active.id, scope, index, now):
            self.stats.chunks_held += len(units)
            return
        if scope.kind != "node" and len(units) > self.few:
            if self.out.resend(active, scope, [index]):
                self._sent[(active.id, self._key(scope), index)] = now
                self.stats.sent_to_groups += 1
            return
        for node_id in units:
            one = p.AudioScope(kind="node", id=node_id)
            if self._on_its_way(active.id, one, index, now):
                self.stats.chunks_held += 1
            elif self.out.resend(active, one, [index]):
                self._sent[(active.id, self._key(one), index)] = now
                self.stats.sent_to_nodes += 1

    def _on_its_way(self, bc: str, scope: p.AudioScope, index: int, now: float) -> bool:
        at = self._sent.get((bc, self._key(scope), index))
        return at is not None and now - at < self.hold_s

    def _scope_of(self, active: ActiveBroadcast, node_id: str) -> p.AudioScope:
        """The group scope of ``active`` that reaches ``node_id`` (its zone, or ``all``), else its own."""
        groups = self.groups_of(node_id)
        for scope in active.scopes:
            if scope.kind == "group" and scope.id in groups:
                return scope
        return p.AudioScope(kind="node", id=node_id)

    @staticmethod
    def _key(scope: p.AudioScope) -> str:
        return f"{scope.kind}:{scope.id}"

    def _prune(self, now: float) -> None:
        for key in [k for k, at in self._sent.items() if now - at >= self.hold_s]:
            del self._sent[key]
