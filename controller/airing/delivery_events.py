"""Wake-ups for the delivery view's event streams: one ``asyncio.Event`` per open stream.

The delivery service calls :meth:`DeliveryStreams.changed` (a delivery listener) on every change
of a broadcast's deliveries; each open stream of that broadcast is woken and re-reads the
snapshot (controller/ui/delivery_view.py). Built once in controller/services.py.
"""

from __future__ import annotations

import asyncio


class DeliveryStreams:
    def __init__(self) -> None:
        self._streams: dict[str, set[asyncio.Event]] = {}

    def changed(self, broadcast_id: str) -> None:
        """Wake every stream following ``broadcast_id`` (called in the event loop)."""
        for ev in self._streams.get(broadcast_id, ()):
            ev.set()

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
