"""Reconcile: what a unit reports is compared with what it was told, and the unit asked again.

Commands go to units with QoS 1 on a clean session (docs/protocol.md §1, §5): one in flight when a
unit reconnects, or sent while the broker was down, is lost, and so is a reply or an ack. Delivery
never waits for a lost message to turn up; every sweep (``delivery.sweep_s``) it looks at each
unit still short of a final state, while the broker link is up and the unit online
(docs/protocol.md §3 *when a command is lost*):

* **play**: a unit still ``verified`` ``reconcile_after_ms`` after the start instant of its zone is
  sent the ``play`` again on its own topic, naming the same instant and offset, so it joins in
  step mid-way (a unit dedupes by broadcast id, so a second ``play`` never starts a broadcast
  twice: one it plays or has finished is answered ``already`` and its ack re-sent). Once its zone's
  turn is over it gets a catch-up of its own, from the start, when its zones are free. A unit still
  ``playing`` that long after the end is asked the same way, and answers with its final state.
* **stop**: a broadcast an emergency pre-empted for good (policy ``drop``; or, after a controller
  restart, one a unit reported ``failed``/``preempted``) ends ``failed`` / ``preempted`` at once
  for its units that had not started it; a unit still ``playing`` it ``reconcile_after_ms`` after
  the ``stop`` gets the stop again — also under policy ``restart``/``resume``, where the broadcast
  waits to continue; one that answers it played nothing of it is recorded ``failed``/``preempted``
  (``verified``, to continue, under restart/resume).
* **cancel**: every unit of a cancelled broadcast is sent ``cancel`` until it answers, or until the
  broadcast's validity ends.

Asks of one unit are spaced 2 s, 4 s, 8 s … up to ``reconcile_max_wait_s``; a unit that reports
``verified`` again (it reconnected and got the retained manifest) is asked at the next sweep. By
``expires_at`` every unit is final with a reason (delivery's expiry says how often it was asked).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.airing.active import EXPIRY_REASON, ActiveBroadcast, NodeDelivery
from controller.airing.aircontrol import AirControl
from controller.airing.audio_out import AudioOut
from controller.airing.models import DeliveryState
from controller.airing.settings import DeliverySettings
from controller.airing.turns import Turn
from devices import protocol as p

logger = logging.getLogger(__name__)

S = DeliveryState
#: The first wait between two asks of one unit; it doubles up to ``reconcile_max_wait_s``.
FIRST_WAIT_MS = 2000
PREEMPTED = "preempted"
#: The reason of a unit pre-empted by an emergency that will restart / resume the broadcast later.
RESUMES = "pre-empted by an emergency; will continue"
#: More units than this missing the play of their broadcast's turn get it once on its scopes.
GROUP_ASK_MIN = 8
#: Units asked one by one in one check of a broadcast at most (the others at the next check).
MAX_ASKS = 200
#: The states in which a unit may be asked again (others only when its item was dropped).
_ASKABLE = frozenset({S.VERIFIED, S.PLAYING})

Transition = Callable[[ActiveBroadcast, str, NodeDelivery, DeliveryState, str], None]
"""``fn(active, node_id, delivery, state, reason)``: delivery records a new state."""


class Ask(enum.Enum):
    NOTHING = "nothing"
    PLAY = "play"  # again, in step with its zone's turn
    CATCH_UP = "catch_up"  # its zone's turn is over: a turn of its own, from the start
    CONFIRM = "confirm"  # still playing after the end: the last play again (it answers its state)
    STOP = "stop"  # still playing what an emergency pre-empted
    PREEMPTED = "preempted"  # will never play it: record failed/preempted


def ask_for(state: DeliveryState, *, now_ms: int, margin_ms: int, started: bool, resuming: bool,
            turn: Turn | None, last: Turn | None, dropped_at: int | None,
            stopped_at: int | None = None) -> Ask:
    """The rule: what a unit in ``state`` is asked now (see the module docstring). ``turn`` is its
    item's turn while it holds its zones, ``last`` the last one (also after its end); ``stopped_at``
    when an emergency last pre-empted its item (any policy)."""
    if state.final:
        return Ask.NOTHING
    if dropped_at is not None:
        if state.rank < S.PLAYING.rank:
            return Ask.PREEMPTED
        return Ask.STOP if state == S.PLAYING and now_ms >= dropped_at + margin_ms else Ask.NOTHING
    if resuming and state == S.PLAYING and stopped_at is not None and now_ms >= stopped_at + margin_ms:
        return Ask.STOP  # pre-empted, to restart / resume later, but its stop was lost: it plays on
    if not started or resuming:
        return Ask.NOTHING  # before its start, or pre-empted and waiting to restart / resume
    if state == S.VERIFIED:
        if turn is None:
            return Ask.CATCH_UP
        return Ask.PLAY if now_ms >= turn.at_ms + margin_ms else Ask.NOTHING
    if state == S.PLAYING and turn is None and last is not None and now_ms >= last.end_ms + margin_ms:
        return Ask.CONFIRM
    return Ask.NOTHING


def next_wait_ms(asks: int, cap_ms: int) -> int:
    """The wait after the ``asks``-th ask of one unit: 2 s, 4 s, 8 s … up to ``cap_ms``."""
    return int(min(FIRST_WAIT_MS * 2 ** max(0, min(asks - 1, 16)), cap_ms))


@dataclass
class _Cancel:
    bc: str
    expires_at: int
    waiting: dict[str, NodeDelivery] = field(default_factory=dict)  # not yet answered


class Reconciler:
    """Delivery's reconcile (see the module docstring); :meth:`check` runs in delivery's sweep."""

    def __init__(self, air: AirControl, out: AudioOut, is_online: Callable[[str], bool],
                 lookup: Callable[[str], ActiveBroadcast | None], transition: Transition,
                 settings: DeliverySettings) -> None:
        self.air = air
        self.out = out
        self.is_online = is_online
        self.lookup = lookup
        self.transition = transition
        self.margin_ms = settings.reconcile_after_ms
        self.cap_ms = int(settings.reconcile_max_wait_s * 1000)
        self.asked: dict[str, int] = {a.value: 0 for a in Ask}  # asks by kind (diagnostics, tests)
        self._cancels: dict[str, _Cancel] = {}
        air.on_answer(self._on_answer)

    @staticmethod
    def nudge(nd: NodeDelivery) -> None:
        """The unit reported its state again (e.g. ``verified`` after a reconnect): ask at once."""
        nd.next_ask_ms = 0

    def expiry_reason(self, nd: NodeDelivery) -> str:
        """Why a unit's delivery expired, with how often it was asked again."""
        why = EXPIRY_REASON[nd.state]
        return f"{why} (asked again {nd.asks} times)" if nd.asks else why

    def check(self, active: ActiveBroadcast) -> bool:
        """Ask again every unit of ``active`` whose report disagrees with what it was told; True if
        a unit became final here (the broadcast may be done). More than :data:`GROUP_ASK_MIN` units
        missing the play of the broadcast's own turn get it once on its scopes instead of one each;
        at most :data:`MAX_ASKS` units are asked one by one per check (the rest at the next)."""
        bc, now, final = active.id, p.now_ms(), False
        started, resuming = self.air.started(bc), self.air.waiting_to_resume(bc)
        main, own = self.air.standing(bc)
        plays: list[tuple[str, NodeDelivery]] = []
        asks = 0
        for node_id, nd in active.nodes.items():
            st = own.get(node_id, main)
            if (nd.state not in _ASKABLE and st.dropped_at is None) or nd.state.final \
                    or nd.next_ask_ms > now or not self.is_online(node_id):
                continue
            ask = ask_for(nd.state, now_ms=now, margin_ms=self.margin_ms, started=started, resuming=resuming,
                          turn=st.turn, last=st.last, dropped_at=st.dropped_at, stopped_at=st.stopped_at)
            if ask is Ask.PREEMPTED:
                self.transition(active, node_id, nd, S.FAILED, PREEMPTED)
                final = True
            elif ask is Ask.PLAY and st is main:
                plays.append((node_id, nd))
            elif ask is not Ask.NOTHING and asks < MAX_ASKS:
                asks += 1
                self._ask(active, node_id, nd, ask, now)
        if len(plays) > GROUP_ASK_MIN and self.air.ask_play_all(bc):
            self.asked["play_group"] = self.asked.get("play_group", 0) + 1
            logger.info("reconcile: %d units of %s missed its play; sent again to its scopes", len(plays), bc)
            for _, nd in plays:
                self._backoff(nd, now)
        else:
            for node_id, nd in plays[:max(0, MAX_ASKS - asks)]:
                self._ask(active, node_id, nd, Ask.PLAY, now)
        return final

    def _backoff(self, nd: NodeDelivery, now: int) -> None:
        nd.asks += 1
        nd.next_ask_ms = now + next_wait_ms(nd.asks, self.cap_ms)

    def _ask(self, active: ActiveBroadcast, node_id: str, nd: NodeDelivery, ask: Ask, now: int) -> None:
        self._backoff(nd, now)
        self.asked[ask.value] += 1
        logger.info("reconcile: %s is %s; asked again (%s, %d)", node_id, nd.state.value, ask.value, nd.asks)
        if ask is Ask.STOP:
            self.air.ask_stop(active.id, node_id)
        else:
            self.air.ask_play(active.id, node_id, priority=active.manifest.priority,
                              duration_ms=active.duration_ms, catch_up=ask is Ask.CATCH_UP)

    def _on_answer(self, bc: str, node_id: str, name: str, resp: p.CommandResponse) -> None:
        active = self.lookup(bc)
        nd = active.nodes.get(node_id) if active is not None else None
        if active is None or nd is None or nd.state.final:
            return
        if name == "play" and resp.error == "unknown broadcast":
            self.out.reoffer(active, node_id)  # it lost the file: the manifest again, it downloads
        elif (name == "stop" and resp.status == "ok" and resp.data.get("stopped") != bc
              and nd.state == S.PLAYING):
            if self._dropped(bc, node_id):  # it plays nothing of it
                self.transition(active, node_id, nd, S.FAILED, PREEMPTED)
            elif self.air.waiting_to_resume(bc):
                self.transition(active, node_id, nd, S.VERIFIED, RESUMES)

    def _dropped(self, bc: str, node_id: str) -> bool:
        main, own = self.air.standing(bc)
        return own.get(node_id, main).dropped_at is not None

    # ------------------------------------------------------------------ cancel

    def cancel(self, active: ActiveBroadcast) -> None:
        """Send ``cancel`` to every scope of ``active`` and chase each unit until it answers."""
        first = p.now_ms() + self.margin_ms
        chase = _Cancel(active.id, active.expires_at,
                        {n: NodeDelivery(nd.delivery_id, nd.state, next_ask_ms=first)
                         for n, nd in active.nodes.items()})
        self._cancels[active.id] = chase
        self._send_cancel(chase, active.scopes)

    def sweep_cancels(self) -> None:
        """Units of a cancelled broadcast that did not answer are sent ``cancel`` again, each on its
        own topic, until they answer or the broadcast's validity ends."""
        now = p.now_ms()
        for bc, chase in list(self._cancels.items()):
            if now >= chase.expires_at or not chase.waiting:
                del self._cancels[bc]
                continue
            due = [n for n, nd in chase.waiting.items() if nd.next_ask_ms <= now and self.is_online(n)]
            for n in due:
                nd = chase.waiting[n]
                nd.asks += 1
                nd.next_ask_ms = now + next_wait_ms(nd.asks, self.cap_ms)
            if due:
                self.asked["cancel"] = self.asked.get("cancel", 0) + len(due)
                logger.info("reconcile: cancel of %s sent again to %d unit(s)", bc, len(due))
                self._send_cancel(chase, [p.AudioScope(kind="node", id=n) for n in due])

    def cancels_open(self) -> int:
        """Cancelled broadcasts with units that have not answered yet."""
        return len(self._cancels)

    def _send_cancel(self, chase: _Cancel, scopes: list[p.AudioScope]) -> None:
        def answered(node_id: str, resp: p.CommandResponse) -> None:
            chase.waiting.pop(node_id, None)

        self.out.cancel_scopes(chase.bc, scopes, answered)
