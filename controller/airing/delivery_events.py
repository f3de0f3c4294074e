"""Wake-ups for the delivery view's event streams: one ``asyncio.Event`` per open stream.

The delivery service calls :meth:`DeliveryStreams.changed` (a delivery listener) on every change
of a broadcast's deliveries; each open stream of that broadcast is woken and re-reads the
snapshot (controller/ui/delivery_view.py). Built once in controller/services.py.

With several controllers the broadcast may be delivered by another one: its changes come through
the change feed (kind :data:`DELIVERY`, notified after the rows are committed), so a stream on
any controller follows any broadcast.
"""

from __future__ import annotations

import asyncio

DELIVERY = "delivery"  # the change feed's kind (ephemeral): key = the broadcast id


class DeliveryStreams:
    def __init__(self) -> None:
        self._streams: dict[str, set[asyncio.Event]] = {}

    def changed(self, broadcast_id: str) -> None:
        """Wake every stream following ``broadcast_id`` (called in the event loop)."""
        for ev in self._streams.get(broadcast_id, ()):
            ev.set()

    def changed_elsewhere(self, broadcast_ids: frozenset[str] | None) -> None:
        """Another controller changed these broadcasts' deliveries (None: any broadcast)."""
        for bc in list(self._streams) if broadcast_ids is None else broadcast_ids:
            self.changed(bc)

    def open(self, broadcast_id: str) -> asyncio.Event:
        """A new stream of ``broadcast_id``: its event is set on each change."""
        ev = asyncio.Event()
        self._streams.setdefault(broadcast_id, set()).add(ev)
        return ev

    def close(self, broadcast_id: str, ev: asyncio.Event) -> None:
        followers = self._streams.get(broadcast_id)
        if followers is None:
            return
        followers.discard(ev)
        if not followers:
            del self._streams[broadcast_id]

    def following(self, broadcast_id: str) -> int:
        """How many streams follow ``broadcast_id`` (diagnostics, tests)."""
        return len(self._streams.get(broadcast_id, ()))
