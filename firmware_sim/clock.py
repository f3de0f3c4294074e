"""Node clock and its offset to the controller (docs/protocol.md §2 "clock sync").

The simulated hardware clock runs at ``real + Faults.clock_offset_ms`` and gains
``Faults.clock_drift_ppm`` per second of uptime. :class:`ClockSync` estimates the offset
``controller − node`` NTP-style: it sends its clock ``t0`` on ``{p}/node/{id}/time``; the
controller answers ``t1``/``t2`` on ``{p}/node/{id}/clock``; at arrival ``t3``

    offset = ((t1 − t0) + (t2 − t3)) / 2      delay = (t3 − t0) − (t2 − t1)

Queueing delay only ever adds to ``delay`` and skews that sample's offset, so only the
recent samples with the lower half of delays are used, and of those the median offset
(:func:`estimate`). A burst of requests at connect gives a first estimate within a second;
one request every ``interval_s`` refines it and keeps up with drift.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from devices.protocol import PayloadError, TimeReply, TimeRequest, decode, encode, now_ms
from firmware_sim.commands import BadArgs, CommandDesk

logger = logging.getLogger(__name__)

BURST = 10
BURST_GAP_S = 0.1
KEEP = 32  # samples considered: the burst, then the last few minutes of periodic ones
SETTLE_S = 120.0  # after this long connected, sample every 3 x interval_s


def estimate(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """(delay, offset) from (delay, offset) samples: the samples of the lower half of delays
    (those least disturbed by queueing), then the median of their offsets (robust to the
    asymmetric ones that remain)."""
    low = sorted(samples)[: max(1, len(samples) // 2)]
    offsets = sorted(o for _, o in low)
    mid = len(offsets) // 2
    offset = offsets[mid] if len(offsets) % 2 else (offsets[mid - 1] + offsets[mid]) / 2
    return low[0][0], offset


class NodeClock:
    """The unit's own (imperfect) clock."""

    def __init__(self, offset_ms: int = 0, drift_ppm: float = 0.0) -> None:
        self.offset_ms = offset_ms
        self.drift_ppm = drift_ppm
        self._t0 = time.time()

    def now_ms(self) -> float:
        real = time.time()
        return real * 1000 + self.offset_ms + (real - self._t0) * self.drift_ppm / 1000.0

    def to_real_delay_s(self, node_ms: float) -> float:
        """Seconds of real time until the node clock shows ``node_ms``."""
        return (node_ms - self.now_ms()) / 1000.0 / (1 + self.drift_ppm / 1e6)


class ClockSync:
    """The node's estimate of the controller's clock (see the module docstring)."""

    def __init__(self, node_id: str, clock: NodeClock, send: Callable[[bytes], bool],
                 later: Callable[[float, Callable[[], None]], object], interval_s: float = 5.0) -> None:
        self.node_id = node_id
        self.clock = clock
        self._send = send
        self._later = later
        self.interval_s = interval_s
        self.samples: deque[tuple[float, float]] = deque(maxlen=KEEP)  # (delay, offset)
        self.offset_ms: float | None = None
        self.delay_ms: float | None = None
        self._next = 0.0
        self._since = 0.0

    def restart(self) -> None:
        """After (re)connecting, or on a ``sync_time`` command: a burst of requests."""
        for i in range(BURST):
            self._later(i * BURST_GAP_S, self.request)
        self._since = time.monotonic()
        self._next = self._since + self.interval_s

    def tick(self, now: float) -> None:
        if now >= self._next:
            # every interval_s for the first minutes after (re)connecting, then 3x slower:
            # keeps the estimate fresh for drift without flooding the controller
            settled = now - self._since > SETTLE_S
            self._next = now + self.interval_s * (3 if settled else 1)
            self.request()

    def request(self) -> None:
        t0 = int(self.clock.now_ms())
        self._send(encode(TimeRequest(ts=t0, node_id=self.node_id, t0=t0)))

    def on_reply(self, payload: bytes) -> bool:
        t3 = self.clock.now_ms()
        try:
            r = decode(TimeReply, payload)
        except PayloadError as exc:
            logger.warning("%s: bad clock reply: %s", self.node_id, exc)
            return False
        delay = (t3 - r.t0) - (r.t2 - r.t1)
        if delay < 0 or delay > 30_000:
            return False  # a reply to a request from before a reboot, or nonsense
        self.samples.append((delay, ((r.t1 - r.t0) + (r.t2 - t3)) / 2))
        self.delay_ms, self.offset_ms = estimate(list(self.samples))
        return True

    def controller_to_node(self, controller_ms: float) -> float:
        """A controller instant on this node's clock (unsynchronised: assume equal clocks)."""
        return controller_ms - (self.offset_ms or 0.0)

    def controller_now(self) -> float:
        return self.clock.now_ms() + (self.offset_ms or 0.0)

    def register(self, desk: CommandDesk) -> None:
        desk.register("sync_time", self.sync_time)

    def sync_time(self, args: dict[str, Any]) -> dict[str, Any]:
        """``sync_time``: start a clock-sync burst now; answer with the offset controller − node as
        known so far (from earlier syncs, else from ``server_ms``, which includes the one-way delay)."""
        server_ms = args.get("server_ms")
        if server_ms is not None and (not isinstance(server_ms, int) or isinstance(server_ms, bool)):
            raise BadArgs("args.server_ms must be an integer (ms)")
        self.restart()
        if self.offset_ms is not None:
            return {"offset_ms": round(self.offset_ms), "delay_ms": round(self.delay_ms or 0),
                    "method": "ntp"}
        if server_ms is None:
            return {"offset_ms": None, "method": "none"}
        return {"offset_ms": server_ms - int(self.clock.now_ms()), "method": "one-way"}


__all__ = ["ClockSync", "NodeClock", "now_ms"]
