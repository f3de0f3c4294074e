"""A fleet that misbehaves like a real one: a mix of faults spread over its units.

``loaphuong sim --count 1000 --faults crash:0.02,drop:0.05,clock:0.1,liar:0.001`` gives 2 % of the
units a crash-and-reconnect loop, 5 % a lossy link, 10 % a wrong and drifting clock, and so on.
Which units draw which fault (and the random parameters) depend only on ``seed`` and the ids, so a
run can be repeated. A unit that draws several kinds gets all of them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from firmware_sim.faults import Faults

Draw = Callable[[random.Random, list[str]], dict[str, Any]]

#: kind -> (what it simulates, how its parameters are drawn)
KINDS: dict[str, tuple[str, Draw]] = {
    "drop": ("lossy link: 5 % of incoming messages lost", lambda r, ids: {"drop_rate": 0.05}),
    "delay": ("slow 4G: 150-400 ms one way, 0-300 ms jitter",
              lambda r, ids: {"net_delay_ms": r.uniform(150, 400), "jitter_ms": r.uniform(0, 300)}),
    "clock": ("wrong clock: ±60 s off, drifting ±100 ppm",
              lambda r, ids: {"clock_offset_ms": r.randint(-60_000, 60_000),
                              "clock_drift_ppm": r.uniform(-100, 100)}),
    "crash": ("crash-and-reconnect loop every 1-5 min, 1-10 s down",
              lambda r, ids: {"crash_every_s": r.uniform(60, 300), "crash_down_s": r.uniform(1, 10)}),
    "power": ("mains power loss every 10-30 min for 1-3 min (last-will, then a cold boot)",
              lambda r, ids: {"crash_every_s": r.uniform(600, 1800), "crash_down_s": r.uniform(60, 180)}),
    "disk": ("full flash: every broadcast fails with storage_full", lambda r, ids: {"storage_full": True}),
    "mute": ("never answers commands", lambda r, ids: {"ignore_commands": True}),
    "amp": ("broken amplifier reported in telemetry", lambda r, ids: {"hw_faults": ["amplifier"]}),
    "liar": ("claims to be another unit of the fleet", lambda r, others: {"claim_id": r.choice(others)}),
}


def parse_mix(spec: str) -> dict[str, float]:
    """``"crash:0.02,drop:0.05"`` -> {"crash": 0.02, "drop": 0.05}; ValueError says what is wrong."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, _, share = part.partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
        try:
            value = float(share)
        except ValueError:
            raise ValueError(f"fault {kind}: share {share!r} is not a number") from None
        if not 0 <= value <= 1:
            raise ValueError(f"fault {kind}: share must be within 0..1")
        out[kind] = value
    return out


def fault_mix(spec: str, node_ids: list[str], seed: int = 0) -> dict[str, Faults]:
    """The faulty units of a fleet and their faults (healthy units are absent)."""
    mix = parse_mix(spec)
    out: dict[str, Faults] = {}
    for node_id in node_ids:
        rng = random.Random(f"mix:{seed}:{node_id}")
        kwargs: dict[str, Any] = {}
        for kind, share in mix.items():
            if rng.random() < share:
                others = [n for n in node_ids if n != node_id] or [node_id] if kind == "liar" else []
                kwargs.update(KINDS[kind][1](rng, others))
        if kwargs:
            out[node_id] = Faults(seed=seed, **kwargs)
    return out
