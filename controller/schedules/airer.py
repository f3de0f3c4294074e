"""What a schedule's slot airs: the controller's side of ``scheduler.ports.SlotAirer``.

A bulletin slot becomes broadcasts through ``create_broadcast``, which applies the airing rule
(controller/airing/rules.py) to the bulletin as it is at fire time: a bulletin rejected after it
was scheduled fails the slot (with the reason) and airs nothing; an emergency slot of an undecided
bulletin is audited as ``emergency_bypass``. That bypass holds only while the schedule's creator
still exists, is active, may change schedules and sees the bulletin's ward (``bypass_refusal``):
otherwise the slot fails with the reason, audited as ``emergency_bypass_refused``, and nothing
airs. Approved bulletins air whoever made the schedule.

A relay slot becomes one ``Relay`` row (id ``relay-s<schedule>-<slot ms>``, start_at = the slot,
owner = this controller) in the slot's transaction; the relay hub then starts it at the slot and
ends it at slot + duration_s. Once committed, ``handoff`` gives the broadcasts to delivery and
the relays to the relay hub. Every slot handled here is audited as ``schedule_fired`` (aired or
failed, the bulletin's title), in the slot's transaction.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from sqlmodel import Session

from controller.accounts.audit import MAX_DETAIL, details, record, record_many, where
from controller.accounts.roles import CAN_AIR
from controller.airing.broadcasts import create_broadcast
from controller.airing.burst import BroadcastBatch
from controller.airing.prepared import PreparedBroadcasts, bulletin_rows
from controller.airing.rules import bypass_refusal, is_bypass
from controller.bulletins.models import Bulletin
from controller.core.errors import ServiceError
from controller.fleet.targets import resolve_targets
from controller.relays.models import Relay
from devices.protocol import now_ms
from scheduler.clock import local
from scheduler.ports import Aired, Progress, Slot

logger = logging.getLogger(__name__)

ToDelivery = Callable[[str, int], None]  # (broadcast id, air_at ms) → the delivery path
ToRelays = Callable[[str], None]  # relay id (a ``Relay`` row just committed) → the relay hub


def relay_id(schedule_id: int, slot_ms: int) -> str:
    return f"relay-s{schedule_id}-{slot_ms}"


def _made_by(slot: Slot) -> str:
    return f"schedule {slot.schedule_id} ({slot.created_by})"[:100]


def _target(t: Any) -> dict[str, Any]:
    return {"all_nodes": bool(t.get("all")), "zones": list(t.get("zones") or []),
            "nodes": list(t.get("nodes") or [])}


class ScheduleAirer:
    """Airs schedule slots in the controller's tables (implements ``scheduler.ports.SlotAirer``)."""

    def __init__(self, *, default_valid_s: int, owner: str, to_delivery: ToDelivery,
                 to_relays: ToRelays) -> None:
        self._default_valid_s = default_valid_s
        self._owner = owner  # the controller (MQTT client id) that runs the relays this one fires
        self._to_delivery = to_delivery
        self._to_relays = to_relays

    def air(self, s: Session, slot: Slot, progress: Progress) -> Aired:
        aired = self._relay(s, slot) if slot.relay is not None else self._broadcasts(s, slot, progress)
        b = s.get(Bulletin, slot.bulletin_id) if slot.bulletin_id is not None else None
        record(s, *_fired(slot, aired, b))  # committed with the run
        return aired

    def air_many(self, s: Session, slots: list[Slot]) -> list[Aired]:
        """Slots due together, in ``s`` without a commit (the firing commits them with their runs):
        each bulletin checked and each target resolved once, every row written in one INSERT per
        table (controller/airing/burst.py); each slot's refusal is its own."""
        batch = BroadcastBatch(s)
        out = [self._relay(s, slot) if slot.relay is not None else self._in_batch(s, batch, slot)
               for slot in slots]
        batch.write()
        record_many(s, [_fired(sl, a, batch.bulletin(sl.bulletin_id) if sl.bulletin_id is not None else None)
                        for sl, a in zip(slots, out, strict=True)])
        return out

    def prepare_many(self, s: Session, slots: list[Slot]) -> PreparedBroadcasts | None:
        """``air_many`` built ahead of the instant, writing nothing (controller/airing/prepared.py);
        None for a relay slot or an emergency bypass (the creator's standing is checked at the
        instant, by ``air_many``)."""
        batch = BroadcastBatch(s)
        for sl in slots:
            b = batch.bulletin(sl.bulletin_id) if sl.bulletin_id is not None else None
            if sl.relay is not None or (b is not None and is_bypass(b, sl.priority)):
                return None
        out = [self._in_batch(s, batch, sl) for sl in slots]
        audit = [(u[:100], a[:64], t[:200], d[:MAX_DETAIL]) for u, a, t, d in (
            _fired(sl, a, batch.bulletin(sl.bulletin_id) if sl.bulletin_id is not None else None)
            for sl, a in zip(slots, out, strict=True))]
        rows, nodes = batch.taken()
        return PreparedBroadcasts(rows, nodes, out, audit, bulletin_rows(s, batch.bulletin_ids()))

    def handoff(self, aired: Aired) -> None:
        for bc_id, air_at in aired.broadcasts:
            try:
                self._to_delivery(bc_id, air_at)
            except Exception:  # one failed handoff must not stop the others
                logger.exception("broadcast %s could not be handed to delivery", bc_id)
        for rid in aired.relays:
            try:
                self._to_relays(rid)
            except Exception:
                logger.exception("relay %s could not be handed to the relay hub", rid)

    # ------------------------------------------------------------------ relay slots

    def _relay(self, s: Session, slot: Slot) -> Aired:
        assert slot.relay is not None
        try:
            r = resolve_targets(s, **_target(slot.targets))
            if not r.nodes:
                raise ServiceError(422, "the target has no units")
        except ServiceError as exc:
            return Aired(failure=exc.message)
        rid = relay_id(slot.schedule_id, slot.slot_ms)
        s.add(Relay(id=rid, url=str(slot.relay["url"]), mode=str(slot.relay.get("mode") or "node_fetch"),
                    priority=slot.priority or "normal", nodes=r.nodes,
                    scopes=[sc.model_dump(mode="json") for sc in r.scopes], target=dict(slot.targets),
                    start_at=slot.slot_ms, duration_s=float(slot.relay["duration_s"]), owner=self._owner,
                    owner_seen_at=now_ms(), created_by=_made_by(slot), schedule_id=slot.schedule_id,
                    slot_at=slot.slot_ms))
        logger.info("schedule %d slot %s: relay %s of %s", slot.schedule_id, local(slot.slot_ms).isoformat(),
                    rid, slot.relay["url"])
        return Aired(relays=[rid])

    # ------------------------------------------------------------------ bulletin slots

    def _broadcasts(self, s: Session, slot: Slot, progress: Progress) -> Aired:
        assert slot.bulletin_id is not None
        if (why := _creator_refusal(s, slot, s.get(Bulletin, slot.bulletin_id))) is not None:
            return Aired(failure=why)
        plays = slot.plays()
        valid_for_s = slot.valid_for_s or self._default_valid_s
        made: list[tuple[str, int]] = []
        try:
            for play in plays:
                bc = create_broadcast(
                    s, bulletin_id=slot.bulletin_id, **_target(slot.targets), priority=slot.priority,
                    air_at=None, play_at=play if play > slot.now_ms else None,  # a late slot plays on arrival
                    valid_s=math.ceil(max(0, play - slot.now_ms) / 1000) + valid_for_s,
                    repeat=1 if slot.spaced else slot.repeat,
                    created_by=_made_by(slot),
                )  # commits: the run claim is committed with the first broadcast
                made.append((bc.id, bc.air_at))
                progress([b for b, _ in made])
        except ServiceError as exc:
            return Aired(broadcasts=made, failure=f"{exc.message} ({len(made)} of {len(plays)} aired)")
        _audit_bypass(s, slot, made, s.get(Bulletin, slot.bulletin_id))
        return Aired(broadcasts=made)

    def _in_batch(self, s: Session, batch: BroadcastBatch, slot: Slot) -> Aired:
        """``_broadcasts`` for one slot of a batch: the same checks and rows, added to ``batch``."""
        assert slot.bulletin_id is not None
        bulletin = batch.bulletin(slot.bulletin_id)
        if (why := _creator_refusal(s, slot, bulletin)) is not None:
            return Aired(failure=why)
        plays = slot.plays()
        valid_for_s = slot.valid_for_s or self._default_valid_s
        made: list[tuple[str, int]] = []
        try:
            for play in plays:
                made.append(batch.add(
                    bulletin_id=slot.bulletin_id, **_target(slot.targets), priority=slot.priority,
                    play_at=play if play > slot.now_ms else None,
                    valid_s=math.ceil(max(0, play - slot.now_ms) / 1000) + valid_for_s,
                    repeat=1 if slot.spaced else slot.repeat, created_by=_made_by(slot)))
        except ServiceError as exc:
            return Aired(broadcasts=made, failure=f"{exc.message} ({len(made)} of {len(plays)} aired)")
        _audit_bypass(s, slot, made, bulletin)
        return Aired(broadcasts=made)


def _fired(slot: Slot, aired: Aired, b: Bulletin | None) -> tuple[str, str, str, str]:
    """The audit entry of a slot the airer handled (``schedule_fired``): which schedule, which
    bulletin (its title) or stream, where, and whether it aired or failed (why)."""
    return (slot.created_by, "schedule_fired", f"schedule:{slot.schedule_id}", details(
        schedule=slot.schedule_id, outcome="failed" if aired.failure else "aired", reason=aired.failure,
        bulletin=slot.bulletin_id,
        title=b.title if b is not None else None, url=str(slot.relay["url"]) if slot.relay else None,
        broadcasts=len(aired.broadcasts), **where(slot.targets), priority=slot.priority, slot=slot.slot_ms))


def _audit_bypass(s: Session, slot: Slot, made: list[tuple[str, int]], bulletin: Bulletin | None) -> None:
    """Each airing that skips approval is audited as ``emergency_bypass``."""
    assert slot.bulletin_id is not None
    if bulletin is None or not is_bypass(bulletin, slot.priority):
        return
    ids = ",".join(x for x, _ in made)
    detail = (f"aired as an emergency while {bulletin.approval} (schedule:{slot.schedule_id}, slot "
              f"{local(slot.slot_ms).isoformat()}, broadcast:{ids})")
    record(s, slot.created_by, "emergency_bypass", f"bulletin:{bulletin.id}", detail)


def _creator_refusal(s: Session, slot: Slot, b: Bulletin | None) -> str | None:
    """Why the emergency bypass this schedule relies on no longer holds (its creator), else None;
    audited as ``emergency_bypass_refused``. ``b``: the slot's bulletin row."""
    assert slot.bulletin_id is not None
    if b is None or not is_bypass(b, slot.priority):
        return None  # approved (or refused by create_broadcast with its own reason)
    why = bypass_refusal(s, slot.created_by, b, CAN_AIR)
    if why is not None:
        record(s, slot.created_by, "emergency_bypass_refused", f"bulletin:{b.id}",
               f"schedule:{slot.schedule_id}: {why}")
    return why
