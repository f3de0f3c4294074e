"""Clock sync responder: answers each node's NTP-style request with the controller's clock.

The node sends ``t0`` (its clock); ``t1`` is noted as the request is handed over by the link
(synchronously from the socket read: no queue in between) and ``t2`` just before the reply is
written to the socket, at once (``UnitBus.reply_now``: not queued behind the loop's other work),
so the controller's own busy time stays out of both stamps' error. The node intersects the
offset intervals ``[t2 − t3, t1 − t0]`` of its samples (devices/clock_filter.py) and converts the
controller instants of ``play`` commands into its own clock (docs/protocol.md §1, §3).

Every reply carries ``poll_ms``, the shortest wait before the unit asks again: the units heard
from in the last :data:`ACTIVE_WINDOW_S`, or the units online if more (counted every
:data:`_PRUNE_EVERY_S`), share :data:`BUDGET_PER_S` answers a second, so a small ward syncs fast
(every :data:`MIN_POLL_MS`) and 5,000 units cost the controller as much as :data:`BUDGET_PER_S`
requests a second. Counting the units online matters when a whole fleet connects at once: counted
only as they asked, the first thousand replies told units to poll every 250 ms while the rest were
still connecting, and 1,000 units then sent 1,300-1,800 requests a second for seconds on end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from devices import protocol as p
from devices.link import UnitBus
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)

#: Time requests answered per second across the fleet, at most (each costs ~0.1 ms of CPU).
BUDGET_PER_S = 200
#: The fastest a unit is asked to poll (a small ward: 4 requests a second while it syncs).
MIN_POLL_MS = 250
#: A unit counts as polling for this long after its last request.
ACTIVE_WINDOW_S = 60.0
_PRUNE_EVERY_S = 5.0


class TimeResponder:
    def __init__(self, link: UnitBus, *, budget_per_s: int = BUDGET_PER_S,
                 online: Callable[[], int] = lambda: 0) -> None:
        self.link = link
        self.budget_per_s = budget_per_s
        self._online = online  # how many units are online (presence)
        self._fleet = 0
        self.answered = 0
        self._last: dict[str, float] = {}  # node id -> monotonic time of its last request
        self._pruned = 0.0
        link.on("time", self._on_time)

    def poll_ms(self, now: float) -> int:
        """The wait each unit is asked to keep between requests, for the units polling now."""
        if now - self._pruned > _PRUNE_EVERY_S:
            self._pruned = now
            old = now - ACTIVE_WINDOW_S
            for node_id in [n for n, t in self._last.items() if t < old]:
                del self._last[node_id]
            self._fleet = self._online()
        return max(MIN_POLL_MS, max(len(self._last), self._fleet) * 1000 // self.budget_per_s)

    def _on_time(self, node_id: str, req: p.TimeRequest) -> None:
        t1 = p.now_ms()
        now = time.monotonic()
        self._last[node_id] = now
        poll = self.poll_ms(now)
        reply = p.TimeReply(node_id=node_id, t0=req.t0, t1=t1, t2=p.now_ms(), poll_ms=poll)
        try:
            self.link.reply_now(self.link.topics.clock(node_id), p.encode(reply))
            self.answered += 1
        except MqttError:
            logger.debug("time reply to %s not sent (no broker link)", node_id)
