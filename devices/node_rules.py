"""Node-side rules of the wire contract (docs/protocol.md §2, §3): what every unit does alike.

Written once here and used by the firmware simulator (firmware_sim/) and the serial gateway
(devices/serial/), which answers for its children as a node would: the command dedupe window,
command expiry, the finished-broadcast memory, "at most once" for a repeated ``play`` (and
``play_stream``), ``stop``'s arguments (:func:`stop_args`, :func:`stop_applies`), the repair
rule (what is asked for and when: :class:`RepairPlan`), the play order of the priorities and
the group limit of a config, the attention tone of an emergency (:func:`attention_due`,
:func:`tone_check`). Import through :mod:`devices.protocol`.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Container, Hashable
from typing import Any, Generic, TypeVar

from devices.messages import (
    MAX_REPAIR,
    AckState,
    AttentionTone,
    Command,
    Manifest,
    NodeConfig,
    Priority,
    valid_id,
)

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
#: §3: the final states after which a ``play`` may start a broadcast again, from the unit's kept
#: verified file: what an emergency pre-empted (the controller's restart / resume policy), and what
#: came too late to join its zone in step (the controller's catch-up, from the start).
RESUMABLE = frozenset({(AckState.FAILED, "preempted"), (AckState.FAILED, "too_late")})

#: §2: commands never dropped for expiry: ``sync_time`` is how a wrong clock gets right (it
#: starts a sync burst and reports the offset; answering a late one harms nothing), so judging it
#: on that same clock would lock a unit out of sync exactly when its clock is wrong.
NEVER_EXPIRE = frozenset({"sync_time"})
#: §2: commands not dropped for expiry before the unit's first clock-sync sample: those that act
#: on no instant and only report (``ping``: is the unit reachable), besides :data:`NEVER_EXPIRE`.
#: Every other command (``play``, ``stop``, ``volume`` ...) is checked also before the first
#: sample; a unit has one within a second or so of connecting (its burst at connect).
UNSYNCED_NO_EXPIRY = frozenset({"ping"}) | NEVER_EXPIRE

K = TypeVar("K", bound=Hashable)


def play_rank(priority: Priority) -> int:
    """Sort key of a priority in the playback order (lower plays first)."""
    return PRIORITY_RANK[priority]


def command_expired(cmd: Command, controller_now_ms: float, *, synced: bool) -> bool:
    """§2: a command whose ``expires_at`` (controller clock, as the unit estimates it) has passed
    is dropped unanswered — except :data:`NEVER_EXPIRE` always, and :data:`UNSYNCED_NO_EXPIRY`
    while the unit has no clock-sync sample yet (``synced`` False): its estimate is then its own
    clock, which may be any amount off (D4: a unit 20 s fast dropped ``sync_time`` itself)."""
    if cmd.expires_at is None or cmd.name in NEVER_EXPIRE:
        return False
    if not synced and cmd.name in UNSYNCED_NO_EXPIRY:
        return False
    return cmd.expires_at < controller_now_ms


#: §2/§6: the error of a well-formed request whose arguments are wrong (``bad arguments: <why>``).
BAD_ARGUMENTS = "bad arguments"


def bad_arguments(why: str) -> str:
    """§2/§6 bad input, one rule for every unit: a request whose *envelope* is bad (not JSON, a
    wrong ``v``, a wrong type of ``id``/``name``/``args``/``expires_at``) is ignored, unanswered —
    there is no trustworthy id to answer; a well-formed request whose *arguments* are wrong is
    answered ``error`` with this text."""
    return f"{BAD_ARGUMENTS}: {why}"


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
    :data:`RESUMABLE` (pre-empted, too late), unless the unit cannot play it again
    (``resumable=False``: it keeps no file).
    """
    if playing:
        return AckState.PLAYING, ""
    final = finished.get(bc)
    if final is None or (resumable and final in RESUMABLE):
        return None
    return final


def already_answer(bc: str, state: AckState, reason: str = "") -> dict[str, Any]:
    """The ``ok`` data of a ``play`` that did not start again: ``{"bc", "already"[, "reason"]}``."""
    data: dict[str, Any] = {"bc": bc, "already": state.value}
    if reason:
        data["reason"] = reason
    return data


#: §2 ``stop``: the reasons a stop may carry; the unit reports what it stopped ``failed``/<reason>.
STOP_REASONS = ("stopped", "preempted")


def stop_args(args: dict[str, Any]) -> tuple[str | None, str]:
    """§2 ``stop``'s arguments: ``bc`` (optional: stop only that broadcast) and ``reason``
    (``stopped`` by default, ``preempted`` when an emergency takes the zone). ValueError if bad."""
    bc, reason = args.get("bc"), args.get("reason", "stopped")
    if bc is not None and (not isinstance(bc, str) or not valid_id(bc)):
        raise ValueError("args.bc must be a broadcast id")
    if reason not in STOP_REASONS:
        raise ValueError("args.reason must be 'stopped' or 'preempted'")
    return bc, reason


def stop_applies(bc: str | None, playing: str) -> bool:
    """§2 ``stop``: a stop naming ``bc`` stops only that broadcast while it plays (a stop without
    ``bc`` stops whatever plays). A stop for a broadcast the unit holds but has not started drops
    it (``failed``/<reason>); one for a broadcast it does not hold does nothing (``stopped: ""``)."""
    return bc is None or bc == playing


def stream_already(url: str, relaying: str) -> bool:
    """§2 ``play_stream``: the stream the unit relays now is not restarted (answered ``ok`` with
    ``{"already": "playing"}``; the controller repeats the command after a reconnect)."""
    return bool(relaying) and url == relaying


class RepairBackoff:
    """§3: when a unit checks for missing chunks: ``idle_s`` after the last new chunk, then after
    waits doubling up to :data:`REPAIR_MAX_WAIT_S`; a new chunk resets it (see :class:`RepairPlan`)."""

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


class RepairPlan:
    """§3 repair: which missing chunks one unit asks for, and when. One per download.

    Chunks of a broadcast go out in index order on one topic, and MQTT keeps that order, so a
    missing index below the highest one received (:attr:`top`) was lost on the way, while one
    above it may still be queued at the broker. The rule:

    * a unit asks only when a check is due: ``idle_s`` (2 s) after the last *new* chunk, then
      after waits of ``idle_s``, 2×, 4× … capped at :data:`REPAIR_MAX_WAIT_S` (checks at 2, 4, 8,
      16, 32, 62 … s of quiet); every new chunk (first copy or a repair) restarts the count;
    * it asks for the lost chunks (below :attr:`top`) only, until the sending is known to be over:
      the last chunk (index ``total - 1``) arrived, or no new chunk for ``2 × idle_s`` (4 s); from
      then on every missing chunk is asked for (a unit that has none asks for all of them);
    * the last chunk arriving, or the last outstanding request being answered in full, makes a
      check due at once (so more than 256 missing are asked for batch after batch, never all at
      once); at most :data:`MAX_REPAIR` indexes per request, lowest first;
    * a request that could not go out (the unit is disconnected) is not counted: no backoff step,
      a new check ``idle_s`` later;
    * a (re)connect of the unit's link (to the same broker or the next of its ring) starts the
      count again (:meth:`reconnected`): its session is clean, so what was sent while it was away,
      and its requests then in flight, are lost, not queued; a unit whose waits had doubled to
      30 s asks again ``idle_s`` after it is back, for everything once ``2 × idle_s`` pass quiet.
    """

    def __init__(self, total: int, idle_s: float, now: float) -> None:
        self.total = total
        self.idle_s = idle_s
        self.backoff = RepairBackoff(idle_s, now)
        #: the highest chunk index received (-1: none yet)
        self.top = -1
        #: when the last new chunk arrived (or the download began)
        self.quiet_since = now
        #: the indexes of the last request not yet received
        self.requested: set[int] = set()

    @property
    def next_due(self) -> float:
        return self.backoff.next_due

    def due(self, now: float) -> bool:
        return self.backoff.due(now)

    def received(self, index: int, now: float) -> None:
        """A new chunk (not a duplicate) arrived and was kept."""
        self.top = max(self.top, index)
        self.quiet_since = now
        self.backoff.progress(now)
        answered = bool(self.requested)
        self.requested.discard(index)
        if index == self.total - 1 or (answered and not self.requested):
            self.backoff.next_due = now  # the sending is over / the request answered: check now

    def batch(self, missing: list[int], now: float) -> list[int]:
        """What a request due now asks for (``missing`` ascending): at most :data:`MAX_REPAIR`."""
        over = self.top >= self.total - 1 or now - self.quiet_since + 0.005 >= 2 * self.idle_s
        wanted = missing if over else [i for i in missing if i < self.top]
        return repair_batch(wanted)

    def sent(self, batch: list[int], now: float) -> None:
        """The due check is done: ``batch`` went out (or nothing was to be asked): backoff steps."""
        self.requested = set(batch)
        self.backoff.sent(now)

    def unsent(self, now: float) -> None:
        """The request could not go out (disconnected): check again ``idle_s`` later, no step."""
        self.backoff.next_due = now + self.idle_s

    def reconnected(self, now: float) -> None:
        """The link is up again (see the class docstring): a check ``idle_s`` from now, the waits
        back to ``idle_s``, the quiet time counted from now, no request outstanding."""
        self.quiet_since = now
        self.requested = set()
        self.backoff.progress(now)

    def restart(self, now: float) -> None:
        """The file failed its checksum and was discarded: ask for every chunk now."""
        self.top = self.total - 1
        self.requested = set()
        self.backoff.progress(now)
        self.backoff.next_due = now


# ---------------------------------------------------------------------- attention tone (§1 config, §3)

#: An emergency's ack says what the unit's local attention tone did (``Ack.attention``):
TONE_SOUNDED = "sounded"  # it sounded at once, the speech follows when its `play` comes
TONE_MISMATCH = "mismatch"  # the kept file fails the config's SHA-256: no tone, the speech still plays
TONE_MISSING = "missing"  # the config names no tone (or it never arrived): no tone, the speech plays
#: Emergencies whose tone a unit remembers having sounded (each sounds once per broadcast).
TONE_KEEP = 64


def tone_bytes(tone: AttentionTone) -> bytes:
    """§1 config ``attention``: the file carried in ``data`` (base64), b"" if it is not base64.
    The unit keeps these bytes and checks them with :func:`tone_check` each time before sounding."""
    try:
        return base64.b64decode(tone.data, validate=True)
    except ValueError:
        return b""


def tone_check(tone: AttentionTone | None, kept: bytes | None) -> str:
    """§3 emergency: :data:`TONE_SOUNDED` if the kept file matches the config's SHA-256 (sound
    it), :data:`TONE_MISMATCH` if it does not (a bad copy or flash: do not sound it),
    :data:`TONE_MISSING` if there is no tone to sound."""
    if tone is None or kept is None:
        return TONE_MISSING
    return TONE_SOUNDED if hashlib.sha256(kept).hexdigest() == tone.sha256 else TONE_MISMATCH


def attention_due(m: Manifest, *, controller_now_ms: float, finished: FinishedLog,
                  sounded: Container[str]) -> bool:
    """§3 emergency: the manifest of an emergency sounds the local tone at once, while the speech
    is still on its way; once per broadcast (not again for a re-delivered manifest, nor for a
    finished or expired broadcast)."""
    return (m.priority is Priority.EMERGENCY and m.bc not in finished and m.bc not in sounded
            and m.expires_at >= controller_now_ms)
