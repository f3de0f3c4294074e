"""Node clock and its offset to the controller (docs/protocol.md §1 "clock sync").

The simulated hardware clock runs at ``real + Faults.clock_offset_ms`` and gains
``Faults.clock_drift_ppm`` per second of uptime. :class:`ClockSync` estimates the offset
``controller − node`` NTP-style: it sends its clock ``t0`` on ``{p}/node/{id}/time``; the
controller answers ``t1``/``t2`` (and a ``poll_ms`` hint) on ``{p}/node/{id}/clock``; with
``t3`` at arrival the exchange goes to the wire contract's filter
(:class:`devices.protocol.ClockFilter`: intersection of the offset intervals, drift tracked) and
the next request is due when :class:`devices.protocol.PollPlan` says (fast after a connect until
the estimate stops improving, then every ``interval_s``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from devices.protocol import (
    ClockFilter,
    PayloadError,
    PollPlan,
    TimeReply,
    TimeRequest,
    decode,
    encode,
    now_ms,
)
from firmware_sim.commands import BadArgs, CommandDesk

logger = logging.getLogger(__name__)


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
        self.filter = ClockFilter()
        self.plan = PollPlan(interval_s)
        self._next = 0.0
        self._chain = 0  # generation of the fast-polling timer chain

    @property
    def samples(self) -> list[tuple[float, float, float]]:
        """(t3, low, high) of the samples kept."""
        return list(self.filter.samples)

    @property
    def offset_ms(self) -> float | None:
        return self.filter.offset_ms

    @property
    def delay_ms(self) -> float | None:
        """The least round trip seen (the filter's interval width)."""
        return self.filter.width_ms

    def restart(self) -> None:
        """After (re)connecting, or on a ``sync_time`` command: fast polling, starting now."""
        now = time.monotonic()
        self.plan.connected(now)
        self._chain += 1
        self._fast_step(self._chain)

    def _fast_step(self, chain: int) -> None:
        if chain != self._chain or not self.plan.fast:
            return
        now = time.monotonic()
        if self.plan.may_ask(now):
            self.request()
        wait = self.plan.wait_s(now)
        self._next = now + wait
        self._later(wait, lambda: self._fast_step(chain))

    def tick(self, now: float) -> None:
        if now >= self._next and not self.plan.fast and self.plan.may_ask(now):
            self._next = now + self.plan.wait_s(now)
            self.request()

    def request(self) -> None:
        self.plan.asked(time.monotonic())
        t0 = int(self.clock.now_ms())
        self._send(encode(TimeRequest(ts=t0, node_id=self.node_id, t0=t0)))

    def on_reply(self, payload: bytes) -> bool:
        t3 = self.clock.now_ms()
        try:
            r = decode(TimeReply, payload)
        except PayloadError as exc:
            logger.warning("%s: bad clock reply: %s", self.node_id, exc)
            return False
        # a reply to a request from before a reboot, or 30 s late, is no sample (add says False)
        self.filter.add(r.t0, r.t1, r.t2, t3)
        self.plan.answered(self.filter.width_ms, r.poll_ms)  # the hint counts whatever the sample
        return True

    def controller_to_node(self, controller_ms: float) -> float:
        """A controller instant on this node's clock (unsynchronised: assume equal clocks)."""
        guess = controller_ms - (self.offset_ms or 0.0)
        return controller_ms - (self.filter.offset_at(guess) or 0.0)

    def controller_now(self) -> float:
        now = self.clock.now_ms()
        return now + (self.filter.offset_at(now) or 0.0)

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
