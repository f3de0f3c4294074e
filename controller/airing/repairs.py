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
* what is re-sent for one unit is capped at 4 × the chunk count of the broadcast per minute (a
  broken unit cannot make the controller send without end; one whose broker node died and whose
  requests went unanswered while it moved is served again, not left ``receiving``): chunks held
  back as on their way, or still queued, do not count;
* chunks a unit of a group scope asks for *above* the highest one it has may still be queued in
  the broker for it (a unit that saw no chunk for 4 s asks for all, §3): while fewer than half of
  the broadcast's units have verified it, and at most ``queued_s`` (30 s) after the broker
  acknowledged its last chunk, they are not re-sent (``chunks_queued``; the unit asks again after
  its backoff); not for a unit that was offline when they were sent, went off since, or reconnected
  since (a new birth while online: a unit whose broker node died moves to another one before its
  last-will is seen; its clean session lost whatever was queued for it, so nothing can be queued
  for it — held, it waited up to 30 s for a re-send while its zone aired, docs/faults.md). An
  overloaded broker delivering 8-18 s late made 50 of 1,000 units ask for every chunk, and the
  copies to their zone doubled what the broker had to deliver.

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

#: a unit may be re-sent this many times the broadcast's chunks in one budget window
BUDGET_FACTOR = 4
#: the budget window (s): a unit's count starts again this long after its first request of a window
BUDGET_WINDOW_S = 60.0


@dataclass
class RepairStats:
    requests: int = 0
    chunks_asked: int = 0
    chunks_held: int = 0  # asked while a copy to the unit's scope was on its way
    sent_to_groups: int = 0
    sent_to_nodes: int = 0
    over_budget: int = 0
    chunks_queued: int = 0  # asked above the unit's highest chunk while the sending may be queued


@dataclass
class _Pending:
    active: ActiveBroadcast
    wanted: dict[int, set[str]] = field(default_factory=dict)  # chunk index -> units
    handle: asyncio.TimerHandle | None = None


class RepairDesk:
    """Gathers the repair requests of the broadcasts in flight and re-sends each chunk once a scope."""

    def __init__(self, out: AudioOut, groups_of: Callable[[str], list[str]], *, window_s: float = 0.05,
                 hold_s: float = 2.5, few: int = 2, queued_s: float = 30.0) -> None:
        self.out = out
        self.groups_of = groups_of
        self.window_s = window_s
        self.hold_s = hold_s
        self.few = few
        self.queued_s = queued_s
        self.stats = RepairStats()
        self._pending: dict[str, _Pending] = {}
        self._sent: dict[tuple[str, str, int], float] = {}  # (bc, scope topic base, index) -> when

    def request(self, active: ActiveBroadcast, node_id: str, nd: NodeDelivery, indexes: list[int]) -> bool:
        """Unit ``node_id`` lacks chunks ``indexes`` of ``active``; False if over its budget."""
        self.stats.requests += 1
        wanted = self._lost(active, node_id, nd, sorted({i for i in indexes if 0 <= i < len(active.frames)}),
                            truncated=len(indexes) >= p.MAX_REPAIR)
        if not wanted:
            return True
        gathered = self._pending.get(active.id)
        if gathered is not None:  # asked twice in one gathering: counted once
            wanted = [i for i in wanted if node_id not in gathered.wanted.get(i, ())]
            if not wanted:
                return True
        now = time.monotonic()
        if now - nd.repair_window_at >= BUDGET_WINDOW_S:
            nd.repair_window_at, nd.repaired_chunks = now, 0
        budget = BUDGET_FACTOR * len(active.frames) - nd.repaired_chunks
        if budget <= 0:
            self.stats.over_budget += 1
            logger.warning("node %s exhausted its repair budget for %s", node_id, active.id)
            return False
        wanted = wanted[:budget]
        nd.repaired_chunks += len(wanted)
        self.stats.chunks_asked += len(wanted)
        pending = gathered or self._pending.setdefault(active.id, _Pending(active))
        if pending.handle is None:
            pending.handle = asyncio.get_running_loop().call_later(self.window_s, self.flush, active.id)
        for i in wanted:
            pending.wanted.setdefault(i, set()).add(node_id)
        return True

    def _lost(self, active: ActiveBroadcast, node_id: str, nd: NodeDelivery, wanted: list[int], *,
              truncated: bool) -> list[int]:
        """Of ``wanted``, what the unit cannot be waiting for from the broker (see the module
        docstring): all of it, unless the broadcast's chunks may still be queued for its group (it
        was online when they were sent and has not been off since)."""
        at = active.published_at
        if not wanted or at is None or nd.rejoined or time.monotonic() - at >= self.queued_s:
            return wanted
        if self._scope_of(active, node_id).kind == "node" or active.ready_share() >= 0.5:
            return wanted
        if wanted[-1] < len(active.frames) - 1 and not truncated:
            return wanted  # it has the last chunk: everything was sent to it, what it lacks was lost
        asked = set(wanted)
        top = max((i for i in range(wanted[-1]) if i not in asked), default=-1)
        lost = [i for i in wanted if i < top]
        self.stats.chunks_queued += len(wanted) - len(lost)
        return lost

    def forget(self, bc: str) -> None:
        """The broadcast is no longer delivered here (given up): its gathered requests are dropped."""
        pending = self._pending.pop(bc, None)
        if pending is not None and pending.handle is not None:
            pending.handle.cancel()

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
            self._held(active, units)
            return
        if scope.kind != "node" and len(units) > self.few:
            if self.out.resend(active, scope, [index]):
                self._sent[(active.id, self._key(scope), index)] = now
                self.stats.sent_to_groups += 1
            return
        for node_id in units:
            one = p.AudioScope(kind="node", id=node_id)
            if self._on_its_way(active.id, one, index, now):
                self._held(active, [node_id])
            elif self.out.resend(active, one, [index]):
                self._sent[(active.id, self._key(one), index)] = now
                self.stats.sent_to_nodes += 1

    def _held(self, active: ActiveBroadcast, units: list[str]) -> None:
        """A chunk ``units`` asked for is on its way to them already: not sent, so not counted."""
        self.stats.chunks_held += len(units)
        for node_id in units:
            if (nd := active.nodes.get(node_id)) is not None and nd.repaired_chunks > 0:
                nd.repaired_chunks -= 1

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
