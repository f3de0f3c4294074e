"""The one :class:`~firmware_sim.io.NodeIO` of a simulated node: its link, clocks, timers and acks.

:class:`NodeRuntime` is what a :class:`~firmware_sim.node.SimNode` hands its parts. It holds
the current MQTT link (set by the node at boot, cleared at power loss), publishes through it
(after ``Faults.net_delay_ms`` + jitter, in order), sends acks (after ``Faults.ack_delay_s``)
and keeps the finished-broadcast memory, owns the node clock and its sync with the controller
(:mod:`firmware_sim.clock`), and tracks the timers and tasks that power loss cancels.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from devices.mqtt import AsyncMqttClient
from devices.protocol import FINAL_STATES, Ack, AckState, FinishedLog, Topics, encode
from devices.publishing import publish_or_drop
from firmware_sim.clock import ClockSync, NodeClock
from firmware_sim.faults import Faults
from firmware_sim.io import NodeStats

logger = logging.getLogger(__name__)


class _Timer:
    """A timer of :meth:`NodeRuntime.later`; cancelling it also forgets it."""

    def __init__(self, handle: asyncio.TimerHandle, handles: set[asyncio.TimerHandle]) -> None:
        self._handle = handle
        self._handles = handles

    def cancel(self) -> None:
        self._handle.cancel()
        self._handles.discard(self._handle)


class NodeRuntime:
    """Implements :class:`~firmware_sim.io.NodeIO` for one node (see the module docstring)."""

    def __init__(self, node_id: str, topics: Topics, faults: Faults, rng: random.Random,
                 finished: FinishedLog | None = None) -> None:
        self.node_id = node_id
        self.topics = topics
        self.faults = faults
        self.stats = NodeStats()
        self.finished = finished if finished is not None else FinishedLog()
        #: (bc, state) of every ack in send order (for tests).
        self.acks: list[tuple[str, str]] = []
        #: The MQTT link of the current boot; None while powered down.
        self.link: AsyncMqttClient | None = None
        self.clock = NodeClock(faults.clock_offset_ms, faults.clock_drift_ppm)
        self.sync = ClockSync(node_id, self.clock,
                              lambda body: self.publish(topics.time(node_id), body, qos=0), self.later)
        self.on_change: Callable[[], None] = lambda: None  # the node's telemetry sender
        self._rng = rng
        self._boot = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: set[asyncio.TimerHandle] = set()
        self._last_out = 0.0  # delivery time of the last delayed message (keeps order)
        self._tel_pending = False

    # ------------------------------------------------------------------ lifecycle

    def boot(self, link: AsyncMqttClient) -> None:
        self.link = link
        self._boot = time.monotonic()

    def power_down(self) -> AsyncMqttClient | None:
        """Power loss: cancel every timer and task (except the caller's); returns the link."""
        link, self.link = self.link, None
        me = asyncio.current_task()
        for task in list(self._tasks):
            if task is not me:  # e.g. a pending reboot must not restart a stopped node
                task.cancel()
        for h in self._handles:
            h.cancel()
        self._handles.clear()
        return link

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.is_connected

    # ------------------------------------------------------------------ NodeIO

    def clock_ms(self) -> int:
        return int(self.clock.now_ms())

    def controller_ms(self) -> float:
        return self.sync.controller_now()

    def clock_synced(self) -> bool:
        return self.sync.offset_ms is not None

    def uptime_s(self) -> int:
        return int(time.monotonic() - self._boot)

    def up_for(self, now: float) -> float:
        """Seconds since this boot, at monotonic time ``now``."""
        return now - self._boot

    def chance(self, probability: float) -> bool:
        """A draw from the node's seeded rng (fault injection)."""
        return self._rng.random() < probability

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> _Timer:
        return self.at(asyncio.get_running_loop().time() + delay, fn, *args)

    def at(self, when: float, fn: Callable[..., object], *args: object) -> _Timer:
        """``fn(*args)`` at the loop's (monotonic) time ``when``: timers set so run in ``when`` order."""
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def run() -> None:
            self._handles.discard(holder[0])
            fn(*args)

        holder.append(loop.call_at(when, run))
        self._handles.add(holder[0])
        return _Timer(holder[0], self._handles)

    def net_delay(self, last: float) -> float:
        """The loop's time at which a message sent now arrives: delay + jitter, in order (a link
        is one TCP stream). Strictly after ``last``: two timers due at the same instant may run in
        either order (asyncio's heap is not stable), and a chunk handled before its manifest is lost."""
        f = self.faults
        t = asyncio.get_running_loop().time() + (f.net_delay_ms + self._rng.uniform(0, f.jitter_ms)) / 1000.0
        return max(t, last + 1e-6)

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> bool:
        if (self.faults.net_delay_ms or self.faults.jitter_ms) and self.link is not None:
            self._last_out = self.net_delay(self._last_out)
            self.at(self._last_out, self._publish_now, topic, payload, qos, retain)
            return True
        return self._publish_now(topic, payload, qos, retain)

    def _publish_now(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> bool:
        if publish_or_drop(self.link, topic, payload, qos=qos, retain=retain, who=self.node_id):
            return True
        self.stats.publish_dropped += 1
        return False

    def ack(self, bc: str, state: AckState, reason: str = "", have: int | None = None, *,
            attention: str = "", started_at: int | None = None) -> None:
        if state in FINAL_STATES:
            self.finished.finish(bc, state, reason)
        if state not in (AckState.PLAYING, AckState.PLAYED):
            started_at = None  # (a broadcast pre-empted or stopped does not say when it began)
        payload = encode(Ack(ts=self.clock_ms(), node_id=self.node_id, bc=bc, state=state,
                             reason=reason, have=have, attention=attention, started_at=started_at))
        if self.faults.ack_delay_s > 0:
            self.later(self.faults.ack_delay_s, self._send_ack, bc, state, payload)
        else:
            self._send_ack(bc, state, payload)

    def _send_ack(self, bc: str, state: AckState, payload: bytes) -> None:
        self.acks.append((bc, state.value))
        if self.publish(self.topics.ack(self.node_id), payload, qos=1):
            self.stats.acks_sent += 1
        logger.debug("%s: ack %s %s", self.node_id, bc, state.value)

    def bad(self, topic: str, why: object) -> None:
        self.stats.payload_errors += 1
        logger.warning("%s: ignored bad payload on %s: %s", self.node_id, topic, why)

    def changed(self) -> None:
        """Telemetry "on change" (coalesced to one message per loop iteration)."""
        if self._tel_pending or self.link is None:
            return
        self._tel_pending = True

        def flush() -> None:
            self._tel_pending = False
            self.on_change()

        asyncio.get_running_loop().call_soon(flush)
