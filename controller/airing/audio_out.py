"""Sending a broadcast to its units: manifests, chunks, repairs and the cancel command.

Everything delivery publishes goes through :class:`AudioOut` and a :class:`devices.link.UnitBus`:
the retained manifest and the chunks once per scope (a group topic fans out in the broker), the
chunks units ask for again (to a unit or a group: controller/airing/repairs.py decides), a
manifest re-offered to a silent unit, the manifest withdrawn (an empty retained message) when the
broadcast is over. What the units say back is delivery's business (controller/airing/delivery.py).
"""

from __future__ import annotations

import asyncio
import logging

from controller.airing.active import ActiveBroadcast
from devices import protocol as p
from devices.link import ReplyHandler, UnitBus
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)

#: Chunks of a non-emergency broadcast in the link's queue at a time (an emergency's are not paced).
WINDOW = 8


class AudioOut:
    def __init__(self, link: UnitBus) -> None:
        self.link = link
        self._urgent = 0  # emergencies being sent now
        self._clear = asyncio.Event()  # set while none is
        self._clear.set()

    @property
    def connected(self) -> bool:
        return self.link.connected

    async def publish(self, active: ActiveBroadcast) -> None:
        """Every scope's manifest (retained), then every chunk to every scope, acknowledged (raises
        MqttError). An emergency goes before everything else: its manifests first (each is the
        units' alarm: their attention tone sounds on it, docs/protocol.md §3), then all its chunks at
        once; other broadcasts' chunks go :data:`WINDOW` at a time and wait between windows while an
        emergency is being sent, so it is queued behind at most one window of theirs."""
        if active.manifest.priority != p.Priority.EMERGENCY:
            await self._send(active, WINDOW)
            return
        self._urgent += 1
        self._clear.clear()  # other broadcasts wait between their windows
        try:
            await self._send(active, len(active.frames))
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._clear.set()

    async def _send(self, active: ActiveBroadcast, window: int) -> None:
        urgent = window >= len(active.frames)
        manifest = p.encode(active.manifest)
        topics = self.link.topics
        if not urgent:
            await self._clear.wait()
        manifests = [self.link.publish(topics.manifest(scope, active.id), manifest, retain=True)
                     for scope in active.scopes]
        if urgent:  # one connection keeps the order: every manifest reaches the broker before any chunk
            await asyncio.gather(*manifests, *(self.link.publish(topics.data(scope, active.id), f)
                                               for scope in active.scopes for f in active.frames))
            return
        await asyncio.gather(*manifests)
        for scope in active.scopes:
            data_topic = topics.data(scope, active.id)
            for i in range(0, len(active.frames), max(1, window)):
                if not urgent:
                    await self._clear.wait()  # an emergency being sent goes first
                if active.gone:  # given up meanwhile (controller/airing/custody.py): its owner sends
                    return
                await asyncio.gather(*(self.link.publish(data_topic, f) for f in active.frames[i:i + window]))

    def republish_manifests(self, active: ActiveBroadcast) -> None:
        """After a reconnect: the retained manifests again (a restarted broker may have lost them)."""
        manifest = p.encode(active.manifest)
        for scope in active.scopes:
            self.link.publish_nowait(self.link.topics.manifest(scope, active.id), manifest, retain=True)

    def withdraw(self, active: ActiveBroadcast) -> None:
        """Clear the retained manifests of a finished broadcast (best effort)."""
        if not active.published or not self.link.connected:
            return
        for scope in active.scopes:
            try:
                self.link.publish_nowait(self.link.topics.manifest(scope, active.id), b"", retain=True)
            except MqttError:
                pass

    def resend(self, active: ActiveBroadcast, scope: p.AudioScope, indexes: list[int]) -> bool:
        """Chunks ``indexes`` again, to one scope (a unit, or a group: controller/airing/repairs.py
        chooses); False if they could not be sent."""
        topic = self.link.topics.data(scope, active.id)
        try:
            for i in indexes:
                self.link.publish_nowait(topic, active.frames[i])
        except MqttError as exc:
            logger.warning("repair for %s/%s not sent: %s", scope.id, active.id, exc)
            return False
        return True

    def reoffer(self, active: ActiveBroadcast, node_id: str) -> bool:
        """The manifest to one silent unit (it answers with its state or a repair request)."""
        topic = self.link.topics.manifest(p.AudioScope(kind="node", id=node_id), active.id)
        try:
            self.link.publish_nowait(topic, p.encode(active.manifest))
        except MqttError:
            return False
        return True

    def cancel(self, active: ActiveBroadcast) -> None:
        """Tell every scope to drop the broadcast (best effort: it also expires on the units)."""
        self.cancel_scopes(active.id, active.scopes, None)

    def cancel_scopes(self, bc: str, scopes: list[p.AudioScope], on_reply: ReplyHandler | None) -> None:
        """``cancel`` of ``bc`` to ``scopes``; each unit's answer to ``on_reply`` (reconcile asks
        again those that do not answer: controller/airing/reconcile.py)."""
        if self.link.connected and scopes:
            self.link.command(scopes, "cancel", {"bc": bc}, expires_at=p.now_ms() + 10_000, on_reply=on_reply)
