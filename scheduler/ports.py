"""What the scheduler asks of the controller: ports declared here, implemented by the controller.

The scheduler knows *when* (slots, leases, misfires); the controller knows *what airs* (bulletins,
broadcasts, relays, units, the airing rule). A schedule's slot crosses over as a ``Slot``; the
controller's ``SlotAirer`` turns it into broadcasts or a relay and says so in an ``Aired``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlmodel import Session

AirCallback = Callable[[str], Awaitable[None]]  # broadcast id → air it now (AirScheduler)
MissedCallback = Callable[[str, str], None]  # (broadcast id, why) → record it missed (AirScheduler)
Progress = Callable[[list[str]], None]  # the ids made so far, recorded on the slot's run


@dataclass(frozen=True)
class Slot:
    """One slot of a schedule to air now: what the schedule row says, and when."""

    schedule_id: int
    slot_ms: int  # the slot (epoch ms)
    now_ms: int  # when it is handled: after ``slot_ms`` when the slot is late
    bulletin_id: int | None  # None: a relay slot
    relay: Mapping[str, Any] | None  # {url, mode, duration_s} of a relay slot
    targets: Mapping[str, Any]  # {all, zones, nodes}
    priority: str | None  # None: the bulletin's class
    repeat: int
    interval_s: int  # 0: the repeats play back to back (one broadcast)
    valid_for_s: int | None  # None: the controller's default
    created_by: str

    @property
    def spaced(self) -> bool:
        """Repeats with a gap between them: one broadcast per repeat."""
        return self.interval_s > 0 and self.repeat > 1

    def plays(self) -> list[int]:
        """When each broadcast of the slot plays (epoch ms)."""
        if not self.spaced:
            return [self.slot_ms]
        return [self.slot_ms + k * self.interval_s * 1000 for k in range(self.repeat)]

    @property
    def late_ms(self) -> int:
        return max(0, self.now_ms - self.slot_ms)


@dataclass
class Aired:
    """What airing a slot made, and why it stopped if it did not all air."""

    broadcasts: list[tuple[str, int]] = field(default_factory=list)  # (broadcast id, air_at ms)
    relays: list[str] = field(default_factory=list)  # relay ids
    failure: str = ""  # "" : aired; else why (the rest of) the slot does not air

    @property
    def ids(self) -> list[str]:
        return [b for b, _ in self.broadcasts] + self.relays


class Prepared(Protocol):
    """What slots due together will make, built ahead of their instant (scheduler/wheel.py): at
    the instant only ``current`` and ``write`` run, in the transaction that claims the slots."""

    def planned(self) -> list[Aired]:
        """What each slot will make, in order (its broadcasts' air times are stamped at ``write``)."""
        ...

    def current(self, s: Session) -> bool:
        """Is what it was built from (the bulletins: the airing rule's inputs) unchanged?"""
        ...

    def write(self, s: Session, now_ms: int) -> list[Aired]:
        """Write every row (no commit), stamped ``now_ms``; one ``Aired`` per slot, in order."""
        ...


class SlotAirer(Protocol):
    """Air a schedule's slot (the controller: bulletin slots as broadcasts, relay slots as relays)."""

    def air(self, s: Session, slot: Slot, progress: Progress) -> Aired:
        """Make what ``slot`` airs in ``s``, the transaction that claims the slot's run (blocking, a
        worker thread). It may commit ``s`` (the claim then commits with the first broadcast);
        after each broadcast it calls ``progress`` with the ids made so far. A refusal (bulletin
        rejected, no units, ...) is returned as ``Aired.failure``, not raised."""
        ...

    def air_many(self, s: Session, slots: list[Slot]) -> list[Aired]:
        """Make what each of ``slots`` (due together) airs in ``s`` (blocking, a worker thread),
        without committing: the firing commits every slot's run with them, in one transaction.
        One ``Aired`` per slot, in order; each slot's refusal is its own ``Aired.failure``."""
        ...

    def prepare_many(self, s: Session, slots: list[Slot]) -> Prepared | None:
        """Build what ``slots`` (due together, ``now_ms`` = their planned instant) will make, writing
        nothing; None: these slots cannot be built ahead (a relay, an emergency bypass): they are
        aired at their instant by ``air_many``."""
        ...

    def handoff(self, aired: Aired) -> None:
        """On the event loop, once the slot's transaction committed: start what it made."""
        ...
