"""When an item of a broadcast sounds, as air control (controller/airing/aircontrol.py) tells
delivery's reconcile (controller/airing/reconcile.py)."""

from __future__ import annotations

from dataclasses import dataclass


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
