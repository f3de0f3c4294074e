"""When an item of a broadcast sounds, as air control (controller/airing/aircontrol.py) tells
delivery's reconcile (controller/airing/reconcile.py), and what air control calls back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devices import protocol as p
from scheduler.arbiter import Ended, Preempted, Start

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
    it for good (policy drop), ``stopped_at`` when an emergency last pre-empted it (any policy;
    None once it starts again)."""

    turn: Turn | None
    last: Turn | None
    dropped_at: int | None
    stopped_at: int | None = None


LIVE_HOLD_MS = 24 * 3600 * 1000
"""Arbiter duration of a live session: its zones are held until the session is released."""


@dataclass
class LiveHold:
    """What the arbiter's decisions about a live session call back into."""

    started: Callable[[], None]
    ended: Callable[[str], None]  # reason: preempted | cleared | cancelled


def tell_live(a: Start | Preempted | Ended, hooks: LiveHold) -> bool:
    """Tell a live hold what the arbiter decided for it; True if it was pre-empted but requeued by
    the policy (restart / resume): a live session never resumes, so the arbiter must drop it."""
    if isinstance(a, Start):
        hooks.started()
        return False
    if isinstance(a, Preempted):
        hooks.ended("preempted")
        return a.requeued
    if a.reason != "finished":
        hooks.ended(a.reason)
    return False


@dataclass
class AirItem:
    bc: str
    scopes: list[p.AudioScope]
    nodes: list[str]
    started: bool = False
    turn: Turn | None = None  # its last start (kept after it ended)
    dropped_at: int | None = None  # pre-empted by an emergency and dropped (policy drop)
    stopped_at: int | None = None  # pre-empted (any policy) and not started again since


@dataclass
class Pending:
    bc: str
    priority: p.Priority
    duration_ms: int
    scopes: list[p.AudioScope]
    nodes: list[str]
    play_at: int | None
    deadline: float  # loop time after which we air without waiting for more units
    ready: Callable[[], bool] = field(default=lambda: False)
