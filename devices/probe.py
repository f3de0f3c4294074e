"""Can the controller still reach its units through the broker? A round trip it measures itself.

A TCP connection to the broker can look alive while nothing passes (a dead route, a black-holed
link): paho notices only after its keepalive (30 s, up to twice that). A controller that believes
it delivers while nothing reaches the broker must give its broadcasts up, so every
:data:`PROBE_S` it publishes a small QoS 0 message on its own topic
(``{p}/controller/probe/{client id}``, :meth:`devices.topics.Topics.controller_probe`), to which it
is subscribed; :meth:`BrokerProbe.silent_s` is how long ago the broker last echoed one (or
accepted the link's connection), counted in the probe's own ticks: an event loop that stalled
for seconds (a busy machine) sent no probe meanwhile, and its stall is not taken for a lost
broker. Units never read that topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

PROBE_S = 0.5  # one probe this often while connected


class BrokerProbe:
    def __init__(self, topic: str, send: Callable[[str, bytes], object],
                 connected: Callable[[], bool]) -> None:
        self.topic = topic
        self._send = send
        self._connected = connected
        self._heard: float | None = None  # the last echo or connection (None: not started yet)
        self._task: asyncio.Task[None] | None = None
        self._ticks = 0  # probe ticks since then (sent, or not sendable: disconnected)
        self.stats = {"sent": 0, "echoed": 0}

    def start(self) -> None:
        self._heard, self._ticks = time.monotonic(), 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name="broker-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def on_connected(self) -> None:
        """A new connection (the broker answered CONNECT): it is reachable now."""
        self._heard, self._ticks = time.monotonic(), 0

    def echoed(self) -> None:
        self.stats["echoed"] += 1
        self._heard, self._ticks = time.monotonic(), 0

    def silent_s(self) -> float:
        """Seconds since the broker last passed a probe back to us (or accepted our connection),
        connected or not: a broker restart of a second or two is not a loss."""
        if self._heard is None:
            return 0.0
        return min(time.monotonic() - self._heard, self._ticks * PROBE_S)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(PROBE_S)
            self._ticks += 1
            if not self._connected():
                continue
            try:
                self._send(self.topic, f"{time.time():.3f}".encode())
                self.stats["sent"] += 1
            except Exception as exc:  # noqa: BLE001 - a publish refused while the link drops
                logger.debug("broker probe not sent: %s", exc)
