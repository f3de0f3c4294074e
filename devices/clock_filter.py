"""The unit's clock-sync filter (docs/protocol.md §1 *clock sync*): one rule for every firmware.

Each NTP-style exchange (``t0`` node send, ``t1`` controller receipt, ``t2`` controller reply,
``t3`` node receipt) bounds the offset θ = controller − node whatever the delays were::

    t2 − t3  ≤  θ  ≤  t1 − t0          (the reply and the request each took ≥ 0 ms)

Queueing, jitter and a busy controller only widen one sample's interval; they never move the
truth out of it. So the filter intersects the intervals of its samples (the tightest lower bound
comes from the reply that travelled fastest, the tightest upper one from the fastest request, in
whichever samples they happen to be) and takes the middle: on a link whose two directions have
the same least delay the error is half the difference of the two least jitters, which shrinks as
1/N with N samples (a median of offsets shrinks as 1/√N). Drift is tracked from the same
lowest-delay samples: the upper convex hull of the lower bounds and the lower convex hull of the
upper bounds (their vertices are the samples whose reply, or request, travelled fastest) each
have an edge over the samples' mean instant, whose slope is the rate, as in Moon, Skelly and
Towsley's linear-programming skew estimate; the two are averaged, and believed only once both
edges span :data:`DRIFT_SPAN_MS` (shorter ones are noise: 1 ms over 10 s is 100 ppm). Older
samples are moved along the rate and widened by :data:`PHI` per ms of age for what it may still
be off. Intervals that no longer intersect with the rate are tried without it, then mean the
clock stepped: the filter starts again from the newest sample.

:class:`PollPlan` says when to ask: fast (:data:`FAST_POLL_S`, :data:`FAST_MAX` requests) after
every connect unless the interval is already narrower than :data:`FINE_MS`, then every
``interval_s`` (3× that once settled), never more often than the controller's ``poll_ms`` hint
(which keeps a large fleet's requests within its budget: fast polling costs it nothing more).
Requests given up unanswered (:data:`REPLY_WAIT_S`) double the wait, from :data:`REPLY_WAIT_S` up
to :data:`MAX_POLL_S`, until a reply comes: a controller (or a link) too busy to answer is not
asked faster than it answers — a fleet connecting at once otherwise kept sending 1 request per
unit a second to a starved controller whose late replies were refused.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

#: Replies with a round trip (minus the controller's time) outside 0..this are discarded.
MAX_DELAY_MS = 30_000.0
#: Samples kept (the newest), and forgotten after this age (node ms).
KEEP = 256
MAX_AGE_MS = 900_000.0
#: What the rate may still be off by: an old sample is widened by this per ms of its age
#: (15 ppm, as NTP's PHI).
PHI = 15e-6
#: Rates beyond this are not believed (cheap crystals are within ±100 ppm).
MAX_DRIFT = 500e-6
#: The rate is believed once both hull edges it comes from span this long.
DRIFT_SPAN_MS = 120_000.0
#: Fast polling after a connect: one request per this, FAST_MAX of them, unless the interval is
#: already narrower than FINE_MS (the error is at most half the width: a LAN, loopback).
FAST_POLL_S = 0.25
FAST_MAX = 200
FINE_MS = 4.0
#: The slowest poll a controller hint may ask for.
MAX_POLL_S = 300.0
#: At most this many requests in flight: another waits for a reply, or REPLY_WAIT_S without one
#: (a slow controller or link slows the polling down instead of piling requests up).
IN_FLIGHT = 2
REPLY_WAIT_S = 2.0


class ClockFilter:
    """Offset controller − node (ms) from exchanges (see the module docstring)."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float, float]] = deque(maxlen=KEEP)  # (t3, low, high)
        self.offset_ms: float | None = None
        #: the width (ms) of the intersection: least request + least reply delay
        self.width_ms: float | None = None
        #: rate of the offset (ms per node ms); 0 until the samples' hull edges span DRIFT_SPAN_MS
        self.drift = 0.0
        self.ref_ms = 0.0  # node instant of offset_ms

    def add(self, t0: float, t1: float, t2: float, t3: float) -> bool:
        """One exchange; False (and ignored) if its delay is negative or absurd."""
        delay = (t3 - t0) - (t2 - t1)
        if not 0 <= delay <= MAX_DELAY_MS:
            return False
        self.samples.append((t3, t2 - t3, t1 - t0))
        while self.samples and t3 - self.samples[0][0] > MAX_AGE_MS:
            self.samples.popleft()
        drift = self._rate()
        low, high = self._bounds(t3, drift)
        if low > high and drift:  # the rate is off (the clock's changed): without it first
            drift = 0.0
            low, high = self._bounds(t3, drift)
        if low > high:  # no common offset: the clock stepped (or drifted beyond belief)
            newest = self.samples[-1]
            self.samples.clear()
            self.samples.append(newest)
            low, high = newest[1], newest[2]
        self.offset_ms, self.width_ms, self.ref_ms, self.drift = (low + high) / 2, high - low, t3, drift
        return True

    def offset_at(self, node_ms: float) -> float | None:
        """The offset at node instant ``node_ms`` (None before the first sample)."""
        if self.offset_ms is None:
            return None
        return self.offset_ms + self.drift * (node_ms - self.ref_ms)

    def _bounds(self, now: float, drift: float) -> tuple[float, float]:
        low, high = -math.inf, math.inf
        for t3, lo, hi in self.samples:
            age = now - t3
            shift, slack = drift * age, PHI * abs(age)
            low = max(low, lo + shift - slack)
            high = min(high, hi + shift + slack)
        return low, high

    def _rate(self) -> float:
        """The drift from the hulls of the samples' bounds (see the module docstring); 0 if unknown."""
        s = sorted(self.samples)
        if len(s) < 8 or s[-1][0] - s[0][0] < DRIFT_SPAN_MS:
            return 0.0
        base = s[0][0]
        mean = sum(t for t, _, _ in s) / len(s) - base
        lows = _edge(_hull([(t - base, lo) for t, lo, _ in s], upper=True), mean)
        highs = _edge(_hull([(t - base, hi) for t, _, hi in s], upper=False), mean)
        if lows is None or highs is None or min(lows[1], highs[1]) < DRIFT_SPAN_MS:
            return 0.0
        return max(-MAX_DRIFT, min(MAX_DRIFT, (lows[0] + highs[0]) / 2))


def _hull(points: list[tuple[float, float]], *, upper: bool) -> list[tuple[float, float]]:
    """The upper (or lower) convex hull of ``points`` sorted by x (Andrew's monotone chain)."""
    h: list[tuple[float, float]] = []
    for x, y in points:
        while len(h) >= 2:
            (x1, y1), (x2, y2) = h[-2], h[-1]
            cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
            if (cross >= 0) if upper else (cross <= 0):
                h.pop()
            else:
                break
        h.append((x, y))
    return h


def _edge(hull: list[tuple[float, float]], x: float) -> tuple[float, float] | None:
    """The slope of the hull's edge over ``x``, and the edge's length in x; None if none."""
    for (x1, y1), (x2, y2) in itertools.pairwise(hull):
        if x1 <= x <= x2 and x2 > x1:
            return (y2 - y1) / (x2 - x1), x2 - x1
    return None


class PollPlan:
    """When a unit asks for the time (see the module docstring); times are monotonic seconds."""

    def __init__(self, interval_s: float = 5.0, settle_s: float = 120.0) -> None:
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.hint_s = 0.0  # the controller's poll_ms hint
        self._since = 0.0
        self._fast_left = 0
        self._width: float | None = None
        self._in_flight: list[float] = []  # when the requests not yet answered went (monotonic s)
        self._unanswered = 0  # requests given up without a reply since the last reply

    def connected(self, now: float) -> None:
        """After a (re)connect or a ``sync_time``: fast polling again."""
        self._since = now
        self._fast_left = FAST_MAX

    @property
    def fast(self) -> bool:
        return self._fast_left > 0 and (self._width is None or self._width > FINE_MS)

    def may_ask(self, now: float) -> bool:
        """Fewer than IN_FLIGHT requests unanswered (overdue ones given up): one may go out now."""
        kept = [t for t in self._in_flight if now - t < REPLY_WAIT_S]
        self._unanswered += len(self._in_flight) - len(kept)
        self._in_flight = kept
        return len(self._in_flight) < IN_FLIGHT

    def asked(self, now: float = 0.0) -> None:
        self._in_flight.append(now)
        if self._fast_left > 0:
            self._fast_left -= 1

    def answered(self, width_ms: float | None, poll_ms: int | None) -> None:
        """A reply came (its sample kept or not): the filter's width now, the controller's hint."""
        if self._in_flight:
            self._in_flight.pop(0)
        self._unanswered = 0
        if poll_ms is not None:
            self.hint_s = min(MAX_POLL_S, max(0.0, poll_ms / 1000.0))
        if width_ms is not None:
            self._width = width_ms

    def wait_s(self, now: float) -> float:
        """Seconds until the next request."""
        if self.fast:
            base = FAST_POLL_S
        else:
            base = self.interval_s * (3 if now - self._since > self.settle_s else 1)
        if self._unanswered:
            base = max(base, min(MAX_POLL_S, REPLY_WAIT_S * 2 ** min(self._unanswered - 1, 16)))
        return max(base, self.hint_s)
