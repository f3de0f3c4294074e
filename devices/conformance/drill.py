"""The link drill of items `last_will` and `credentials` (docs/protocol.md §1 *Connecting*), run
once for both through the kit's port (:class:`~devices.conformance.link.KitLink`):

1. read the retained state of the connection's owner (the unit; for a gateway's child, the
   gateway, whose connection carries the child, §7.5);
2. cut the connection abruptly (no DISCONNECT) and read the retained state back until the broker
   has published the will;
3. refuse the unit's next :data:`REFUSALS` logins with CONNACK "not authorized", timing each
   retry against the refusal before it;
4. let the next one through and wait for the unit's birth (a child: its state re-published) and
   for the owner's retained state to say `online` again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devices.conformance.harness import Harness
from devices.conformance.link import Attempt, KitLink
from devices.conformance.shape import parse

#: Logins refused in a row after the cut: 4 waits, so 3 ratios between them (jitter, growth).
REFUSALS = 3
#: The longest wait §1 allows (60 s) for each retry of the drill.
RETRY_MAX_S = 60.0


@dataclass
class Drill:
    owner: str  # the client whose connection was cut (the unit, or a child's gateway)
    cut: Attempt | None = None  # the connection cut
    before: dict[str, Any] | None = None  # the owner's retained state before the cut
    cut_at: float = 0.0
    after_cut: dict[str, Any] | None = None  # its retained state once the will fired (None: never)
    attempts: list[Attempt] = field(default_factory=list)  # logins after the cut, in order
    back: dict[str, Any] | None = None  # the owner's retained state once it was let through
    reborn: dict[str, Any] | None = None  # the unit's first `online` after that (a child's: re-published)
    notes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> list[Attempt]:
        return [a for a in self.attempts if a.outcome == "refused"]

    @property
    def through(self) -> Attempt | None:
        """The first login after the refusals that reached the broker."""
        return next((a for a in self.attempts if a.outcome == "forwarded"), None)

    def gaps(self) -> list[float]:
        """Seconds from each failure (the cut, then each refusal) to the unit's next attempt."""
        failures = [self.cut_at] + [a.answered_at or a.ended_at for a in self.attempts]
        return [round(a.at - f, 3) for f, a in zip(failures, self.attempts, strict=False)]


def current(link: KitLink) -> Attempt | None:
    """The forwarded connection open now (the broker accepted it), the latest if several."""
    open_ = [a for a in link.attempts if a.outcome == "forwarded" and a.broker_code == 0 and not a.ended_at]
    return open_[-1] if open_ else None


async def _retained_until(h: Harness, topic: str, want: Callable[[dict[str, Any]], bool],
                          within: float) -> dict[str, Any] | None:
    """Read ``topic``'s retained copy (fresh subscriptions) until ``want`` holds, or None."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        obj = parse(await h.retained(topic, within=1.0) or b"")
        if obj is not None and want(obj):
            return obj
        await asyncio.sleep(0.2)
    return None


async def run_drill(h: Harness, link: KitLink, owner: str) -> Drill:
    d = Drill(owner)
    topic = h.t.state(owner)
    d.cut = await h.wait(lambda: current(link))
    if d.cut is None:
        d.notes.append(f"no connection of the unit through the kit's port {link.host}:{link.port}")
        return d
    d.before = parse(await h.retained(topic) or b"")
    link.refuse(REFUSALS)
    d.cut_at = time.monotonic()
    link.cut()
    d.after_cut = await _retained_until(h, topic, lambda o: o.get("status") != "online",
                                        within=min(5.0, h.timeout_s))
    got = await h.wait(lambda: [a for a in link.since(d.cut_at) if a.outcome not in ("open", "held")
                                and (a.outcome != "forwarded" or a.broker_code is not None)][REFUSALS:],
                       within=(REFUSALS + 1) * RETRY_MAX_S + h.timeout_s)
    d.attempts = link.since(d.cut_at)
    through = d.through
    if got is None or through is None:
        d.notes.append(f"after the cut: {[a.outcome for a in d.attempts]}, not back through the kit")
        return d
    link.refuse(0)
    d.back = await _retained_until(h, topic, lambda o: o.get("status") == "online", within=h.timeout_s)
    seen = await h.wait(lambda: h.objs("state", through.at, status="online"))
    d.reborn = seen[0] if seen else None
    return d
