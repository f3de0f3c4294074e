"""A simulated link delays and jitters messages but keeps their order, as the one TCP stream of a
real unit does (docs/protocol.md §3 relies on it: chunks follow their manifest). Two messages
must never fall due at the same instant: asyncio runs timers due together in any order, and a
chunk handled before its manifest is dropped (the skewed-clock e2e test lost 3 of 5 units so)."""

from __future__ import annotations

import asyncio
import random

from devices.protocol import Topics
from firmware_sim.faults import Faults
from firmware_sim.runtime import NodeRuntime


async def test_jittered_messages_arrive_in_the_order_they_were_sent() -> None:
    rt = NodeRuntime("n-1", Topics(), Faults(net_delay_ms=5, jitter_ms=30), random.Random(7))
    got: list[int] = []
    last = 0.0
    for i in range(200):  # jitter much larger than the gap: most would overtake without the rule
        last = rt.net_delay(last)
        rt.at(last, got.append, i)
    deadline = asyncio.get_running_loop().time() + 10
    while len(got) < 200 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert got == list(range(200))
