"""How far ahead a ``play`` names its start instant: derived from the fleet's measured latency.

A ``play`` names an instant ``at`` on the controller's clock; it must reach the units before ``at``
for them to start together from the top (a unit it reaches late still joins in step, further into
the audio: docs/protocol.md §3 *starting in step*). A fixed 1.5 s margin was alone more than an
emergency's 1 s goal, and most of it was idle on a healthy network. So the margin is the 99th
percentile of how long recent ``play`` commands took to reach their units (:func:`reach_ms`: sent →
handled by the unit, from its answer; at most the round trip), plus ``headroom_ms`` for the
controller's own work, kept within ``[floor_ms, cap_ms]``: the floor so that a lucky run of fast
answers does not leave no time at all, the cap (``delivery.start_margin_ms``) so that a congested
moment cannot push starts far out. Before any answer has been measured the margin is ``initial_ms``
(capped).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from controller.core.metrics import Histogram
from devices import protocol as p

#: Round trips kept (the most recent; older ones describe a network that may have changed).
WINDOW = 512
#: Fewer samples than this: the percentile is the largest one seen.
MIN_SAMPLES = 20


def reach_ms(args: Mapping[str, object], resp: p.CommandResponse, sent_ms: int, rtt_ms: float) -> float:
    """How long a ``play`` took to reach a unit and be handled there: its answer's ``ts`` (the
    unit's clock) moved to the controller's clock by the offset its ``at_local`` reveals
    (``at − at_local``), minus the send instant — the controller's own queueing of a thousand
    answers is not in it. Without ``at_local`` (an ``already`` answer, an error) the round trip."""
    at, local = args.get("at"), resp.data.get("at_local")
    if not isinstance(at, int | float) or not isinstance(local, int | float) or isinstance(local, bool):
        return rtt_ms
    return max(0.0, min(rtt_ms, resp.ts + (at - local) - sent_ms))


class StartMargin:
    """The start margin (ms) from the recent ``play`` round trips (see the module docstring)."""

    def __init__(self, *, floor_ms: int = 250, cap_ms: int = 1500, initial_ms: int = 1000,
                 headroom_ms: int = 100, window: int = WINDOW) -> None:
        self.cap_ms = max(0, cap_ms)
        self.floor_ms = min(max(0, floor_ms), self.cap_ms)
        self.initial_ms = initial_ms
        self.headroom_ms = headroom_ms
        self._rtts: deque[float] = deque(maxlen=window)
        #: every measured reach since the start, in seconds (``GET /metrics``)
        self.histogram = Histogram()

    def observe(self, rtt_ms: float) -> None:
        """One ``play`` answered ``rtt_ms`` after it was sent."""
        if rtt_ms >= 0:
            self._rtts.append(rtt_ms)
            self.histogram.observe(rtt_ms / 1000)

    @property
    def samples(self) -> int:
        return len(self._rtts)

    def p99_ms(self) -> float | None:
        """The 99th percentile of the kept round trips (the largest, with few), None without any."""
        if not self._rtts:
            return None
        ordered = sorted(self._rtts)
        if len(ordered) < MIN_SAMPLES:
            return ordered[-1]
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def current_ms(self) -> int:
        """The margin to name now: p99 + headroom within [floor, cap]; ``initial_ms`` (capped) first."""
        p99 = self.p99_ms()
        want = self.initial_ms if p99 is None else p99 + self.headroom_ms
        return int(min(self.cap_ms, max(self.floor_ms, want)))
