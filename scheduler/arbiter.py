"""Per-zone arbitration: what sounds in each zone, in what order, and what an emergency does.

Pure logic with the time passed in, so it can be driven by the controller's loop and by a
hypothesis state machine alike. The rules (Circular 39/2020 classes):

* at most one item sounds in a zone at a time; an item that spans several zones starts only
  when all of them are free, so it sounds everywhere at the same instant;
* waiting items are taken in a global order: emergency, then priority (ưu tiên), then normal
  (thường); arrival order within a class. A waiting item holds back later items on the zones it
  shares with them (no overtaking), but not items on other zones;
* an emergency (khẩn cấp) pre-empts at once whatever non-emergency item sounds in any of its
  zones. The pre-empted item is dropped and reported (default), restarted from the beginning
  after the emergency, or resumed where it stopped — a stated policy;
* an emergency never pre-empts another emergency: it waits first in line and is never lost.

Start instants are ``now + margin``: the play command must reach every unit before the
instant so they can start in step.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

from devices.protocol import PRIORITY_RANK, Priority


class PreemptPolicy(enum.StrEnum):
    DROP = "drop"  # stop it and report it pre-empted (default)
    RESTART = "restart"  # play it again from the start after the emergency
    RESUME = "resume"  # continue from where it stopped after the emergency


@dataclass
class Item:
    id: str
    zones: frozenset[str]
    priority: Priority
    duration_ms: int
    not_before_ms: int = 0
    seq: int = 0
    offset_ms: int = 0  # where to start in the audio (resume)
    at_ms: int | None = None  # start instant while running
    end_ms: int | None = None

    def order(self) -> tuple[int, int]:
        return PRIORITY_RANK[self.priority], self.seq


@dataclass(frozen=True)
class Start:
    """Tell the item's units to start at ``at_ms`` (from ``offset_ms`` into the audio)."""

    item_id: str
    at_ms: int
    offset_ms: int
    zones: frozenset[str]


@dataclass(frozen=True)
class Preempted:
    """The item was stopped by ``by``; ``requeued`` unless the policy dropped it."""

    item_id: str
    by: str
    requeued: bool
    played_ms: int


@dataclass(frozen=True)
class Ended:
    item_id: str
    reason: str  # "finished" | "cancelled" | "cleared"


Action = Start | Preempted | Ended


@dataclass
class ZoneArbiter:
    policy: PreemptPolicy = PreemptPolicy.DROP
    margin_ms: int = 1500
    waiting: dict[str, Item] = field(default_factory=dict)
    running: dict[str, Item] = field(default_factory=dict)
    #: zones on air through another controller (zone → the priority sounding there): they hold
    #: back every waiting item of theirs, except an emergency over a non-emergency
    foreign: dict[str, Priority] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    # ------------------------------------------------------------------ queries

    def sounding(self, zone: str, now_ms: int) -> str | None:
        """The item audible in ``zone`` at ``now_ms`` (None while idle or before a start instant)."""
        for item in self.running.values():
            assert item.at_ms is not None and item.end_ms is not None
            if zone in item.zones and item.at_ms <= now_ms < item.end_ms:
                return item.id
        return None

    def holder(self, zone: str) -> Item | None:
        """The running (or about to start) item that holds ``zone``."""
        return next((i for i in self.running.values() if zone in i.zones), None)

    def known(self, item_id: str) -> bool:
        return item_id in self.waiting or item_id in self.running

    # ------------------------------------------------------------------ operations

    def submit(self, item: Item, now_ms: int) -> list[Action]:
        if self.known(item.id):
            raise ValueError(f"item {item.id} is already queued")
        if not item.zones or item.duration_ms <= 0:
            raise ValueError("an item needs at least one zone and a positive duration")
        item.seq = next(self._seq)
        actions: list[Action] = []
        if item.priority == Priority.EMERGENCY:
            for other in list(self.running.values()):
                if other.priority != Priority.EMERGENCY and other.zones & item.zones:
                    actions.append(self._preempt(other, item.id, now_ms))
        self.waiting[item.id] = item
        return actions + self.tick(now_ms)

    def adopt(self, item: Item, at_ms: int) -> bool:
        """Take back an item that was already sounding since ``at_ms`` (a restarted controller
        rebuilding what is on air): running at once, ending at ``at_ms + duration``; False (nothing
        changed) if one of its zones is held by another running item or it is known already."""
        held = set().union(*(i.zones for i in self.running.values())) if self.running else set()
        if self.known(item.id) or item.zones & held or not item.zones or item.duration_ms <= 0:
            return False
        item.seq = next(self._seq)
        item.at_ms, item.end_ms = at_ms, at_ms + item.duration_ms - item.offset_ms
        self.running[item.id] = item
        return True

    def requeue(self, item_id: str) -> None:
        """A started item could not take its zones after all (another controller has them): it
        waits again, first of its class as before."""
        item = self.running.pop(item_id, None)
        if item is not None:
            item.at_ms = item.end_ms = None
            self.waiting[item_id] = item

    def forget(self, item_id: str) -> None:
        """Drop the item without an action (another controller took its broadcast over)."""
        self.running.pop(item_id, None)
        self.waiting.pop(item_id, None)

    def preempt_by(self, item_id: str, by: str, now_ms: int) -> list[Action]:
        """An emergency of another controller took the item's zones."""
        if item_id not in self.running:
            return []
        return [self._preempt(self.running[item_id], by, now_ms), *self.tick(now_ms)]

    def _foreign_block(self, item: Item) -> frozenset[str]:
        emergency = item.priority == Priority.EMERGENCY
        return frozenset(z for z in item.zones & self.foreign.keys()
                         if not emergency or self.foreign[z] == Priority.EMERGENCY)

    def cancel(self, item_id: str, now_ms: int, reason: str = "cancelled") -> list[Action]:
        item = self.waiting.pop(item_id, None) or self.running.pop(item_id, None)
        if item is None:
            return []
        return [Ended(item_id, reason), *self.tick(now_ms)]

    def done(self, item_id: str, now_ms: int) -> list[Action]:
        """Every unit reported the item finished (or failed) before its planned end."""
        if item_id not in self.running:
            return []
        del self.running[item_id]
        return [Ended(item_id, "finished"), *self.tick(now_ms)]

    def clear(self, zone: str, now_ms: int) -> list[Action]:
        """Staff pressed stop for a zone: whatever holds or waits for it ends."""
        ids = [i.id for i in (*self.running.values(), *self.waiting.values()) if zone in i.zones]
        actions: list[Action] = []
        for item_id in ids:
            self.running.pop(item_id, None)
            self.waiting.pop(item_id, None)
            actions.append(Ended(item_id, "cleared"))
        return actions + self.tick(now_ms)

    def tick(self, now_ms: int) -> list[Action]:
        """Let time pass: end finished items, start waiting items whose turn has come."""
        actions: list[Action] = []
        for item in list(self.running.values()):
            assert item.end_ms is not None
            if item.end_ms <= now_ms:
                del self.running[item.id]
                actions.append(Ended(item.id, "finished"))
        held = set().union(*(i.zones for i in self.running.values())) if self.running else set()
        claimed: set[str] = set()
        for item in sorted(self.waiting.values(), key=Item.order):
            if item.not_before_ms > now_ms + self.margin_ms:
                continue  # not due yet: it holds nothing back
            if item.zones & (held | claimed) or (self.foreign and self._foreign_block(item)):
                claimed |= item.zones
                continue
            at = max(now_ms + self.margin_ms, item.not_before_ms)
            item.at_ms, item.end_ms = at, at + item.duration_ms - item.offset_ms
            del self.waiting[item.id]
            self.running[item.id] = item
            held |= item.zones
            actions.append(Start(item.id, at, item.offset_ms, item.zones))
        return actions

    # ------------------------------------------------------------------ internals

    def _preempt(self, item: Item, by: str, now_ms: int) -> Preempted:
        del self.running[item.id]
        assert item.at_ms is not None
        played = max(0, now_ms - item.at_ms) + item.offset_ms
        item.at_ms = item.end_ms = None
        if self.policy == PreemptPolicy.DROP:
            return Preempted(item.id, by, False, played)
        item.offset_ms = min(played, item.duration_ms - 1) if self.policy == PreemptPolicy.RESUME else 0
        self.waiting[item.id] = item  # keeps its seq: first of its class after the emergency
        return Preempted(item.id, by, True, played)
