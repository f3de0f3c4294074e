"""Units that come and go: ``loaphuong sim --flap SHARE --flap-every N [--flap-mode power|network]``.

A :class:`FlapPlan` picks ``share`` of the fleet's units (which ones depends only on the seed and
the ids) and flaps each of them every ``every_s`` seconds, each at its own phase within the
period (drawn from the seed, so a run can be repeated): the unit goes down for ``down_s``, then
comes back.

* ``power``: mains loss. The TCP link drops without DISCONNECT (the broker publishes the
  last-will), RAM is gone (queue, partial downloads, what plays), flash stays (the verified files
  and the finished memory, docs/protocol.md §3 "what a unit keeps"); then a cold boot, a new
  session.
* ``network``: the 4G link drops, power stays. The last-will goes out, the unit goes on playing
  and holding what it has, and reconnects ``down_s`` later with the same session.

Everything is bounded: a share within 0..1, a period of 1 s .. 1 day, down at most the period
(and at most an hour), and ``times`` flaps per unit at most (0 = until the fleet stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from dataclasses import dataclass
from typing import Literal, Protocol

logger = logging.getLogger(__name__)

FlapMode = Literal["power", "network"]
MODES: tuple[FlapMode, ...] = ("power", "network")


class Flappable(Protocol):
    """What flapping needs of a unit (:class:`firmware_sim.node.SimNode`)."""

    node_id: str

    async def kill(self) -> None: ...

    async def start(self, *, wait: bool = True, wait_s: float = 15.0) -> None: ...

    async def drop_network(self, down_s: float) -> None: ...


@dataclass(frozen=True)
class FlapPlan:
    """Which units flap, how often, how long they stay down (see the module docstring)."""

    share: float
    every_s: float
    mode: FlapMode = "power"
    down_s: float = 3.0
    seed: int = 0
    times: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("flap share must be within 0..1")
        if not 1.0 <= self.every_s <= 86400:
            raise ValueError("flap period must be within 1 s .. 1 day")
        if self.mode not in MODES:
            raise ValueError(f"flap mode must be one of {', '.join(MODES)}")
        if not 0.0 <= self.down_s <= min(self.every_s, 3600):
            raise ValueError("flap down time must be within 0 .. the period (and at most 1 h)")
        if self.times < 0:
            raise ValueError("flap times must be >= 0 (0 = until the fleet stops)")

    def pick(self, node_ids: list[str]) -> list[str]:
        """The units that flap: ``round(share × N)`` of them, the same ones for the same seed."""
        ids = sorted(node_ids)
        count = round(self.share * len(ids))
        return sorted(random.Random(f"flap:{self.seed}").sample(ids, count))

    def phase_s(self, node_id: str) -> float:
        """When in each period this unit goes down (seconds after the flapper starts)."""
        return random.Random(f"flap:{self.seed}:{node_id}").uniform(0, self.every_s)


class Flapper:
    """Runs a :class:`FlapPlan` over some units until stopped (or until each flapped ``times``)."""

    def __init__(self, nodes: list[Flappable], plan: FlapPlan) -> None:
        chosen = set(plan.pick([n.node_id for n in nodes]))
        self.plan = plan
        self.nodes = [n for n in nodes if n.node_id in chosen]
        #: node id → flaps so far
        self.flaps: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._inner: set[asyncio.Task[None]] = set()  # flaps under way (finished before stop returns)

    @property
    def ids(self) -> list[str]:
        return [n.node_id for n in self.nodes]

    def start(self) -> None:
        if self._tasks:
            return
        if self.nodes:
            logger.info("flap: %d units (%s) every %.1f s, down %.1f s (%s)", len(self.nodes),
                        self.plan.mode, self.plan.every_s, self.plan.down_s, ", ".join(self.ids[:10]))
        self._tasks = [asyncio.create_task(self._run(n), name=f"flap-{n.node_id}") for n in self.nodes]

    async def stop(self) -> None:
        """Stop flapping (a unit that is down now comes back first, so the fleet stops cleanly)."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await asyncio.gather(*self._inner, return_exceptions=True)

    async def _run(self, node: Flappable) -> None:
        plan = self.plan
        loop = asyncio.get_running_loop()
        t0 = loop.time() + plan.phase_s(node.node_id)
        n = 0
        while plan.times == 0 or n < plan.times:
            await asyncio.sleep(max(0.0, t0 + n * plan.every_s - loop.time()))
            n += 1
            self.flaps[node.node_id] += 1
            logger.info("%s: flap %d (%s, %.1f s down)", node.node_id, n, plan.mode, plan.down_s)
            inner = asyncio.create_task(self._flap(node), name=f"flap-{node.node_id}-{n}")
            self._inner.add(inner)
            inner.add_done_callback(self._inner.discard)
            await asyncio.shield(inner)  # a stop lets the unit come back first

    async def _flap(self, node: Flappable) -> None:
        try:
            await self._down_and_up(node)
        except Exception:  # one unit's failure must not end the others' flapping
            logger.exception("%s: flap failed", node.node_id)

    async def _down_and_up(self, node: Flappable) -> None:
        if self.plan.mode == "network":
            await node.drop_network(self.plan.down_s)
            return
        await node.kill()
        await asyncio.sleep(self.plan.down_s)
        await node.start(wait=False)
