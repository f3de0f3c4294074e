"""Command correlation for the controller's link: ids made here, each reply routed to its sender.

Every command the controller sends to units (docs/protocol.md §2) gets a fresh correlation id from
:meth:`ReplyRouter.open`, with the caller's reply handler. A unit's reply (``{p}/node/{id}/resp``)
is handed to the handler of its id, whatever the id looks like: no service parses another's id
prefix. Replies to an id that is not (or no longer) open are counted as ``unknown_id`` and dropped.
A route lives until its sender closes it or until :data:`KEEP_AFTER_EXPIRY_MS` after the command's
own expiry (a late reply may still say what the unit did), and at most :data:`MAX_ROUTES` live at
once (the oldest go first), so a sender that never closes cannot grow the table.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from devices import protocol as p

logger = logging.getLogger(__name__)

ReplyHandler = Callable[[str, p.CommandResponse], None]
"""``handler(node_id, reply)``: a unit's answer to a command this handler's caller sent."""
Remover = Callable[[], None]

#: A route outlives its command's ``expires_at`` by this much (late replies still count).
KEEP_AFTER_EXPIRY_MS = 10 * 60 * 1000
#: Routes kept at once at most (a bound on memory, whatever the senders do).
MAX_ROUTES = 20_000


def _noop() -> None:
    return None


@dataclass
class SentCommand:
    """What :meth:`devices.link.UnitBus.command` did: the id it made and the scopes it missed."""

    id: str
    unsent: dict[str, str] = field(default_factory=dict)  # scope id -> why its publish failed
    close: Remover = _noop  # stop routing replies of this command (idempotent)


@dataclass
class _Route:
    handler: ReplyHandler | None
    keep_until_ms: int


class ReplyRouter:
    """Correlation ids of commands in flight and the handler each reply goes to."""

    def __init__(self, *, clock: Callable[[], int] = p.now_ms) -> None:
        self.stats: Counter[str] = Counter()  # routed, unknown_id, handler_error
        self._clock = clock
        self._routes: OrderedDict[str, _Route] = OrderedDict()

    def open(self, expires_at: int, handler: ReplyHandler | None) -> tuple[str, Remover]:
        """A new correlation id (``c-`` and 16 hex digits) and the function that closes its route."""
        self._prune()
        cmd_id = f"c-{secrets.token_hex(8)}"
        self._routes[cmd_id] = _Route(handler, expires_at + KEEP_AFTER_EXPIRY_MS)
        while len(self._routes) > MAX_ROUTES:
            self._routes.popitem(last=False)

        def close() -> None:
            self._routes.pop(cmd_id, None)

        return cmd_id, close

    def route(self, node_id: str, reply: p.CommandResponse) -> None:
        """Hand ``reply`` to the handler of its id (a wrapped call: a failing handler is counted)."""
        r = self._routes.get(reply.id)
        if r is None or r.keep_until_ms < self._clock():
            self.stats["unknown_id"] += 1
            logger.warning("reply from %s to unknown command id %r ignored", node_id, reply.id[:64])
            return
        self.stats["routed"] += 1
        if r.handler is None:
            return
        try:
            r.handler(node_id, reply)
        except Exception:
            self.stats["handler_error"] += 1
            logger.exception("reply handler %r failed on %s's reply to %s", r.handler, node_id, reply.id)

    def open_count(self) -> int:
        """Routes open right now (diagnostics, tests)."""
        return len(self._routes)

    def _prune(self) -> None:
        """Drop expired routes from the oldest on (expiries come roughly in opening order; a route
        left behind is refused by :meth:`route` anyway)."""
        now = self._clock()
        while self._routes:
            oldest = next(iter(self._routes.values()))
            if oldest.keep_until_ms >= now:
                break
            self._routes.popitem(last=False)
