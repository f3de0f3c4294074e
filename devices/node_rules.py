"""Node-side rules of the wire contract (docs/protocol.md §2, §3): what every unit does alike.

Written once here and used by the firmware simulator (firmware_sim/) and the serial gateway
(devices/serial/), which answers for its children as a node would: the command dedupe window,
command expiry, the finished-broadcast memory, "at most once" for a repeated ``play`` (and
``play_stream``), the repair cap and backoff, the play order of the priorities and the group
limit of a config. Import through :mod:`devices.protocol`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from devices.messages import MAX_REPAIR, AckState, Command, NodeConfig, Priority, valid_id

#: §2: a request id answered in the last 10 minutes is ignored.
DEDUPE_WINDOW_S = 600.0
#: Request ids remembered at most (the oldest are forgotten first).
DEDUPE_MAX = 4096
#: §3: the ids (and final state) of the last 64 finished broadcasts are kept ("non-volatile").
FINISHED_KEEP = 64
#: §3: no new chunk for this long → ask for the missing ones (default of a node).
REPAIR_IDLE_S = 2.0
#: §3: the wait between repair requests doubles up to this cap.
REPAIR_MAX_WAIT_S = 30.0
#: A config lists at most this many groups (the rest are skipped).
MAX_GROUPS = 64
#: §3 playback order: emergency first, then priority, then normal (each in arrival order).
PRIORITY_RANK = {Priority.EMERGENCY: 0, Priority.PRIORITY: 1, Priority.NORMAL: 2}
#: Ack states after which a broadcast is finished on that node (never played again).
FINAL_STATES = frozenset({AckState.PLAYED, AckState.FAILED})
#: §3: the one final state after which a ``play`` may start a broadcast again: what an emergency
#: pre-empted (the controller's restart / resume policy), from the unit's kept verified file.
RESUMABLE = (AckState.FAILED, "preempted")

K = TypeVar("K", bound=Hashable)


def play_rank(priority: Priority) -> int:
    """Sort key of a priority in the playback order (lower plays first)."""
    return PRIORITY_RANK[priority]


def command_expired(cmd: Command, controller_now_ms: float) -> bool:
    """§2: a command whose ``expires_at`` (controller clock) has passed is dropped unanswered."""
    return cmd.expires_at is not None and cmd.expires_at < controller_now_ms


def config_groups(cfg: NodeConfig) -> list[str]:
    """The groups a node joins for ``cfg``: valid ids only, at most :data:`MAX_GROUPS`."""
    return [g for g in cfg.groups if valid_id(g)][:MAX_GROUPS]


def repair_batch(missing: list[int]) -> list[int]:
    """§3: the indexes one repair request asks for (the first :data:`MAX_REPAIR` missing)."""
    return missing[:MAX_REPAIR]


class RequestDedupe(Generic[K]):
    """§2: the request ids (or (unit, id) pairs) answered in the last :data:`DEDUPE_WINDOW_S`."""

    def __init__(self, *, window_s: float = DEDUPE_WINDOW_S, max_ids: int = DEDUPE_MAX,
                 prune_every_s: float = 0.0) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self.prune_every_s = prune_every_s
        self._seen: OrderedDict[K, float] = OrderedDict()  # key -> monotonic time first seen
        self._next_prune = 0.0

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, key: K, now: float) -> bool:
        """True (and remembered) for a new key; False for one already answered."""
        if key in self._seen:
            return False
        self._seen[key] = now
        while len(self._seen) > self.max_ids:
            self._seen.popitem(last=False)
        return True

    def prune(self, now: float) -> None:
        """Forget keys older than the window (at most every ``prune_every_s``)."""
        if now < self._next_prune:
            return
        self._next_prune = now + self.prune_every_s
        while self._seen and next(iter(self._seen.values())) < now - self.window_s:
            self._seen.popitem(last=False)


class FinishedLog(OrderedDict[str, tuple[AckState, str]]):
    """§3: bc → final (state, reason) of the last :data:`FINISHED_KEEP` finished broadcasts.

    A manifest of a broadcast in here gets its final ack again, never a second playback.
    """

    def finish(self, bc: str, state: AckState, reason: str) -> None:
        self[bc] = (state, reason)
        self.move_to_end(bc)
        while len(self) > FINISHED_KEEP:
            self.popitem(last=False)

    def played(self, bc: str) -> bool:
        return self.get(bc, (None, ""))[0] == AckState.PLAYED


def play_already(bc: str, *, playing: bool, finished: FinishedLog,
                 resumable: bool = True) -> tuple[AckState, str] | None:
    """§3 "at most once": the (state, reason) a ``play`` for ``bc`` is answered with instead of
    starting it, or None (it may start).

    A broadcast the unit plays now (``playing``), or has finished (in its finished memory:
    played, stopped, cancelled, expired, ...), never starts again, whatever the command id: the
    unit answers ``ok`` with :func:`already_answer` and re-sends this state as its ack, so a
    controller that lost track (a restart, a lost ack) learns the truth. The exception is
    :data:`RESUMABLE` (pre-empted), unless the unit cannot play it again (``resumable=False``).
    """
    if playing:
        return AckState.PLAYING, ""
    final = finished.get(bc)
    if final is None or (resumable and final == RESUMABLE):
        return None
    return final


def already_answer(bc: str, state: AckState, reason: str = "") -> dict[str, Any]:
    """The ``ok`` data of a ``play`` that did not start again: ``{"bc", "already"[, "reason"]}``."""
    data: dict[str, Any] = {"bc": bc, "already": state.value}
    if reason:
        data["reason"] = reason
    return data


def stream_already(url: str, relaying: str) -> bool:
    """§2 ``play_stream``: the stream the unit relays now is not restarted (answered ``ok`` with
    ``{"already": "playing"}``; the controller repeats the command after a reconnect)."""
    return bool(relaying) and url == relaying


class RepairBackoff:
    """§3: when to ask for missing chunks: after ``idle_s`` without a new chunk, then with a
    wait doubling up to :data:`REPAIR_MAX_WAIT_S`; a new chunk resets it."""

    def __init__(self, idle_s: float, now: float) -> None:
        self.idle_s = idle_s
        self.wait = idle_s
        self.next_due = now + idle_s

    def progress(self, now: float) -> None:
        """A new chunk arrived: back to the idle wait."""
        self.wait = self.idle_s
        self.next_due = now + self.idle_s

    def sent(self, now: float) -> None:
        """A repair went out (or was due): the next one after the current wait, which doubles."""
        self.next_due = now + self.wait
        self.wait = min(self.wait * 2, REPAIR_MAX_WAIT_S)

    def due(self, now: float) -> bool:
        return now + 0.005 >= self.next_due
