"""Broadcasts: air a bulletin now or at a time, and follow it node by node."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select, update

from controller.accounts.audit import audit, details
from controller.accounts.roles import CAN_AIR, CAN_EMERGENCY
from controller.airing.broadcasts import create_broadcast, mark_missed
from controller.airing.delivery_rows import delivery_states
from controller.airing.models import Broadcast, BroadcastStatus, Delivery, DeliveryEvent
from controller.airing.ownership import ON_THE_WAY
from controller.airing.requests import CANCEL, END_WAITING
from controller.airing.summary import ENDED_BY_OPERATOR, DeliveryRow, online_from, summarize
from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.idempotent import KeyHeader, Made, Post, run_post
from controller.api.responses import (
    BroadcastPublic,
    BroadcastSummaryPublic,
    DeliveryEventPublic,
    DeliveryPublic,
    iso,
)
from controller.api.schemas import BroadcastCreate
from controller.api.scope import (
    audit_bypass,
    broadcast_for,
    check_airing,
    scoped_target,
    visible_bulletin_ids,
)
from controller.services import Services
from devices import protocol as p

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/broadcasts", tags=["broadcasts"])

TIMED_OUT = "its request timed out (503) before it was answered, and had no Idempotency-Key"


def _public(s: Session, bc: Broadcast, *, detail: bool, online: Callable[[str], bool]) -> BroadcastPublic:
    # a list answer, and the emergency POST's, needs no ORM row per unit (~15 ms at 1,000 units)
    rows = sorted((node_id, state, reason) for _, node_id, state, reason in delivery_states(s, bc.id))
    tally: dict[str, int] = {}
    for _, state, _ in rows:
        tally[state] = tally.get(state, 0) + 1
    sm = summarize(bc, [DeliveryRow(*r) for r in rows], online, p.now_ms())
    out = BroadcastPublic(
        id=bc.id, bulletin_id=bc.bulletin_id, priority=bc.priority, status=bc.status, reason=bc.reason,
        targets=bc.targets, air_at=iso(bc.air_at), play_at=iso(bc.play_at), expires_at=iso(bc.expires_at),
        sent_at=iso(bc.sent_at),
        finished_at=iso(bc.finished_at), tally=tally,
        summary=BroadcastSummaryPublic(state=sm.state, counts=sm.counts, groups=sm.groups,
                                       waiting_until=iso(sm.waiting_until), waiting_nodes=sm.waiting_nodes,
                                       text_vi=sm.text_vi, text_en=sm.text_en),
    )
    if detail:
        deliveries = s.exec(select(Delivery).where(Delivery.broadcast_id == bc.id)
                            .order_by(col(Delivery.node_id))).all()
        ids = [d.id for d in deliveries]
        history: dict[int, list[DeliveryEventPublic]] = {}
        for e in s.exec(select(DeliveryEvent).where(col(DeliveryEvent.delivery_id).in_(ids))
                        .order_by(col(DeliveryEvent.id))).all():
            history.setdefault(e.delivery_id, []).append(
                DeliveryEventPublic(state=e.state, reason=e.reason, at=iso(e.at)))
        out.deliveries = [
            DeliveryPublic(node_id=d.node_id, state=d.state, reason=d.reason, updated_at=iso(d.updated_at),
                           history=history.get(d.id or 0, []))
            for d in deliveries
        ]
    return out


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BroadcastPublic)
async def air_bulletin(body: BroadcastCreate, sv: ServicesDep, user: UserDep, request: Request,
                       key: KeyHeader = None) -> BroadcastPublic | JSONResponse:
    """Air a bulletin now or at ``air_at``. With an ``Idempotency-Key`` a retry gets the first
    answer and airs nothing new (docs/faults.md). Audited as ``broadcast_air`` with the bulletin's
    title and the zones (instead of the bare request entry)."""
    publish_at = play_at = None
    if body.air_at is not None:
        if body.air_at.tzinfo is None:
            raise HTTPException(422, "air_at needs a UTC offset, e.g. 2026-11-23T17:00:00+07:00")
        play_at = int(body.air_at.timestamp() * 1000)
        if play_at < p.now_ms() - 60_000:
            raise HTTPException(422, "the air time is in the past")
        # pre-delivery: the audio goes out `lead_s` ahead, the units start together at play_at
        publish_at = max(p.now_ms(), play_at - int(sv.settings.schedule.lead_s * 1000))
    valid_s = body.valid_for_s or sv.settings.delivery.default_valid_s

    def work(s: Session) -> Made:
        bulletin = check_airing(s, user, body.bulletin_id, body.priority)  # the row that airs
        t = body.target
        all_nodes, zones, nodes = scoped_target(s, user, t.all, t.zones, t.nodes)
        assert bulletin.id is not None
        bc = create_broadcast(  # same session: s.get gives create_broadcast this very row
            s, bulletin_id=bulletin.id, all_nodes=all_nodes, zones=zones,
            nodes=nodes, priority=body.priority, air_at=publish_at, valid_s=valid_s,
            repeat=body.repeat, created_by=user.username, play_at=play_at,
        )
        audit_bypass(s, user, bulletin, body.priority, f"broadcast:{bc.id}")
        audit(s, user.username, "broadcast_air", f"broadcast:{bc.id}", details(
            bulletin=bulletin.id, title=bulletin.title, all=all_nodes, zones=zones, nodes=nodes,
            priority=bc.priority, at=play_at))

        def after() -> None:
            request.scope["lp_audited"] = True  # its own entry is written: no bare "POST /api/broadcasts"
            sv.scheduler.air_at(bc.id, bc.air_at)

        return Made(201, _public(s, bc, detail=False, online=online_from(sv.presence.status)), after=after,
                    undo=lambda s2: mark_missed(s2, bc.id, TIMED_OUT))

    def rebuild(s: Session, ref: str) -> tuple[int, BroadcastPublic]:
        bc = s.get(Broadcast, ref)
        assert bc is not None
        return 201, _public(s, bc, detail=False, online=online_from(sv.presence.status))

    post = Post(user.username, key, "POST /api/broadcasts", body.model_dump(mode="json"))
    return await run_post(sv.db, post, work, made=Broadcast, rebuild=rebuild)  # type: ignore[return-value]


@router.get("", response_model=list[BroadcastPublic])
def list_broadcasts(s: SessionDep, sv: ServicesDep, user: UserDep, limit: int = 50) -> list[BroadcastPublic]:
    q = select(Broadcast).order_by(col(Broadcast.created_at).desc())
    ids = visible_bulletin_ids(s, user)
    if ids is not None:
        q = q.where(col(Broadcast.bulletin_id).in_(ids))
    rows = s.exec(q.limit(max(1, min(limit, 500)))).all()
    return [_public(s, bc, detail=False, online=online_from(sv.presence.status)) for bc in rows]


@router.get("/{broadcast_id}", response_model=BroadcastPublic)
def get_broadcast(broadcast_id: str, s: SessionDep, sv: ServicesDep, user: UserDep) -> BroadcastPublic:
    bc = broadcast_for(s, user, broadcast_id)
    return _public(s, bc, detail=True, online=online_from(sv.presence.status))


@router.post("/{broadcast_id}/cancel", response_model=BroadcastPublic,
             responses={202: {"description": "asked of the controller that delivers it, not answered yet"}})
async def cancel_broadcast(broadcast_id: str, sv: ServicesDep, user: UserDep,
                           response: Response) -> BroadcastPublic:
    """Cancel a broadcast: one waiting for its time does not air; one on its way is cancelled on
    its units by the controller that delivers it (whichever controller is asked: 202 when that one
    has not answered within 8 s; it does it when it can, or the one that takes it over does)."""
    if user.role not in CAN_AIR | CAN_EMERGENCY:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not cancel broadcasts")
    with sv.db.session() as s:
        bc = broadcast_for(s, user, broadcast_id)
        state = bc.status
        if state == BroadcastStatus.SCHEDULED.value:
            sv.scheduler.cancel(broadcast_id)  # its timer may be another controller's: its claim then fails
            done = s.exec(update(Broadcast).where(  # type: ignore[call-overload]
                col(Broadcast.id) == broadcast_id, col(Broadcast.status) == state,
            ).values(status=BroadcastStatus.CANCELLED.value, reason="cancelled before airing")).rowcount == 1
            s.commit()
        else:
            done = sv.delivery.cancel(broadcast_id)
    if not done:
        outcome = await _by_owner(sv, response, broadcast_id, state, CANCEL, "cancelled by staff")
        if outcome is not None and not outcome["ok"]:
            raise HTTPException(status.HTTP_409_CONFLICT, f"broadcast {broadcast_id} is already {state}")
    return await _answer(sv, broadcast_id)


async def _by_owner(sv: Services, response: Response, broadcast_id: str, state: str, action: str,
                    reason: str) -> dict[str, Any] | None:
    """``action`` carried out by the controller that delivers the broadcast (not this one): its
    outcome, or None (and the answer 202) if it has not answered in time."""
    if state not in ON_THE_WAY:
        return {"ok": False, "on_air": False, "ended": []}
    outcome = await sv.airing_requests.ask(broadcast_id, action, reason)
    if outcome is None:
        response.status_code = status.HTTP_202_ACCEPTED
    return outcome


async def _answer(sv: Services, broadcast_id: str) -> BroadcastPublic:
    await sv.writer.flush()
    with sv.db.session() as s:
        bc2 = s.get(Broadcast, broadcast_id)
        assert bc2 is not None
        return _public(s, bc2, detail=True, online=online_from(sv.presence.status))


@router.post("/{broadcast_id}/end-waiting", response_model=BroadcastPublic,
             responses={202: {"description": "asked of the controller that delivers it, not answered yet"}})
async def end_waiting(broadcast_id: str, sv: ServicesDep, user: UserDep,
                      response: Response) -> BroadcastPublic:
    """Stop waiting for the target units that are offline now: their deliveries end ``cancelled``
    with reason ``ended_by_operator``, nothing more is sent to them, and the broadcast is ``done``
    as soon as no online unit is still on its way (operator or admin, audited; carried out by the
    controller that delivers it, whichever controller is asked)."""
    if user.role not in CAN_AIR:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"your role ({user.role}) may not end a broadcast's waiting")
    with sv.db.session() as s:
        bc = broadcast_for(s, user, broadcast_id)  # 404 / 403 (another ward's)
        if not sv.link.connected:  # every unit looks offline then: none is known to be
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                "the controller has no broker link now: which units are offline is not known")
        ended = sv.delivery.end_waiting(broadcast_id, ENDED_BY_OPERATOR)
        state = bc.status
    if ended is None:
        outcome = await _by_owner(sv, response, broadcast_id, state, END_WAITING, ENDED_BY_OPERATOR)
        if outcome is None:
            return await _answer(sv, broadcast_id)  # 202: its owner has not answered yet
        ended = list(outcome["ended"]) if outcome["on_air"] else None
    if ended is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"broadcast {broadcast_id} is {state}, not on air")
    if not ended:
        raise HTTPException(status.HTTP_409_CONFLICT, f"broadcast {broadcast_id} waits for no offline unit")
    with sv.db.session() as s:
        audit(s, user.username, "broadcast_end_waiting", f"broadcast:{broadcast_id}",
              f"{len(ended)} unit(s): {', '.join(ended)}")
    return await _answer(sv, broadcast_id)


UNFINISHED = (BroadcastStatus.SCHEDULED.value, BroadcastStatus.SENDING.value, BroadcastStatus.ACTIVE.value)


async def withdraw(sv: Services, bulletin_id: int, reason: str) -> list[str]:
    """Stop every broadcast of a bulletin that has not finished (the bulletin was rejected): one
    waiting for its time is cancelled, one already sent to the units (which hold it until its
    play time) or playing is cancelled on the units. Returns the broadcast ids stopped."""
    stopped: list[str] = []
    elsewhere: list[str] = []
    with sv.db.session() as s:
        rows = s.exec(select(Broadcast).where(Broadcast.bulletin_id == bulletin_id)
                      .where(col(Broadcast.status).in_(UNFINISHED))).all()
        for bc in rows:
            if bc.status == BroadcastStatus.SCHEDULED.value:
                sv.scheduler.cancel(bc.id)
                bc.status, bc.reason = BroadcastStatus.CANCELLED.value, reason
                s.add(bc)
                stopped.append(bc.id)
            elif sv.delivery.cancel(bc.id, reason):
                stopped.append(bc.id)
            else:
                elsewhere.append(bc.id)  # delivered by another controller
        s.commit()
    for bid in elsewhere:
        if await sv.airing_requests.ask(bid, CANCEL, reason) is not None:
            stopped.append(bid)  # (unanswered: its owner, or who takes it over, still cancels it)
    await sv.writer.flush()
    if stopped:
        logger.warning("bulletin %d: %s; stopped broadcast(s) %s", bulletin_id, reason, ", ".join(stopped))
    return stopped
