"""When an item of a broadcast sounds, as air control (controller/airing/aircontrol.py) tells
delivery's reconcile (controller/airing/reconcile.py), and what air control calls back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devices import protocol as p

Refusal = Callable[[str, str, str], None]
"""``fn(broadcast_id, node_id, why)``: a unit refused to start the broadcast."""
Answer = Callable[[str, str, str, p.CommandResponse], None]
"""``fn(broadcast_id, node_id, command_name, reply)``: a unit answered a play or stop."""

#: A play or stop expires this long after it is sent (or after the start instant it names).
COMMAND_TTL_MS = 10_000


@dataclass(frozen=True)
class Turn:
    """When an item of a broadcast sounds: from ``at_ms`` (controller clock), ``offset_ms`` into
    the audio, until ``end_ms``."""

    at_ms: int
    offset_ms: int
    end_ms: int


@dataclass(frozen=True)
class Standing:
    """Where a unit's item of a broadcast stands: ``turn`` while it holds its zones (None before its
    start and after its end), ``last`` its last start, ``dropped_at`` when an emergency pre-empted
    it for good (policy drop)."""

    turn: Turn | None
    last: Turn | None
    dropped_at: int | None
