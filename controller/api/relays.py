"""Relay sessions (tiếp sóng) now or at a set time: ``/api/relays`` (controller/relays/hub.py).

Relays are kept in the database: the list shows this controller's sessions as they are now and
older or other controllers' relays from their rows. Recurring relays are schedules with a
``relay`` body (``/api/schedules``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from controller.accounts.models import User
from controller.accounts.scope import visible_zones
from controller.api.deps import OperatorDep as UserDep
from controller.api.deps import ServicesDep, SessionDep, get_services
from controller.api.responses import RelayPublic
from controller.api.schemas import RelayRequest
from controller.api.scope import node_visible, scoped_target
from controller.core.errors import ServiceError
from controller.core.netguard import UNREACHABLE, Guard
from controller.fleet.targets import resolve_targets
from controller.relays import store
from controller.relays.hub import STOP_RELAY, RelayHub
from controller.relays.models import Relay
from controller.relays.pull import probe
from controller.relays.session import RelaySession
from controller.services import Services
from devices import protocol as p

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/relays", tags=["relays"])

MAX_AHEAD = timedelta(days=7)


def station_guard(sv: Services) -> Guard:
    """The relay's address policy (controller/core/netguard.py) from the settings."""
    return Guard(sv.settings.relay.allowed_stations)


def refusal(problem: str) -> str:
    """The API's text for a station that cannot be relayed (one text for every network cause)."""
    if problem == UNREACHABLE:
        return (f"{UNREACHABLE} (check the URL; a station on a local or private network must be "
                "allow-listed by the administrator: relay.allowed_stations)")
    return f"the upstream stream cannot be fetched: {problem}"


def check_station(sv: Services, url: str) -> None:
    """For the schedules (a sync route): refuse a relay URL the guard would refuse (blocking DNS)."""
    if problem := station_guard(sv).problem(url):
        raise HTTPException(422, refusal(problem))


def relay_hub(request: Request) -> RelayHub:
    return get_services(request).relays


def _public(h: RelayHub, sess: RelaySession, row: Relay | None = None) -> dict[str, Any]:
    """A relay this controller runs, as it is now; its row's ``owner_seen_at`` (our last renewal)."""
    out = h.describe(sess)
    if row is not None:
        out["owner_seen_at"] = store.iso(row.owner_seen_at)
    return out


def _visible(s: Session, user: User, nodes: list[str]) -> bool:
    """A ward user sees (and stops) only relays whose units are all in the ward."""
    mine = visible_zones(s, user)
    return mine is None or all(node_visible(s, user, n, mine) for n in nodes)


def _find(h: RelayHub, s: Session, user: User, relay_id: str) -> dict[str, Any]:
    """The relay as the API shows it: this controller's session, else its row."""
    sess = h.session(relay_id)
    if sess is not None:
        if _visible(s, user, sess.nodes):
            return _public(h, sess, store.load(s, relay_id))
    else:
        row = store.load(s, relay_id)
        if row is not None and _visible(s, user, row.nodes):
            return store.public_row(row)
    raise HTTPException(404, f"no relay {relay_id!r}")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RelayPublic)
async def create_relay(body: RelayRequest, request: Request, sv: ServicesDep, s: SessionDep,
                       user: UserDep) -> dict[str, Any]:
    if body.start_at is not None:
        if body.start_at.tzinfo is None:
            raise HTTPException(422, "start_at needs a UTC offset, e.g. 2026-05-01T06:00:00+07:00")
        try:
            ahead = body.start_at - datetime.now(tz=UTC)
        except OverflowError:
            raise HTTPException(422, "start_at is out of range") from None
        if ahead > MAX_AHEAD:
            raise HTTPException(422, "start_at is more than 7 days ahead; use a schedule")
    target = body.target
    try:
        all_nodes, zones, ids = scoped_target(s, user, target.all, target.zones, target.nodes)
        r = resolve_targets(s, all_nodes=all_nodes, zones=zones, nodes=ids)
    except ServiceError as exc:
        raise HTTPException(exc.status, exc.message) from None
    if not r.nodes:
        raise HTTPException(422, "the target has no units")
    priority = p.Priority(body.priority)
    now = body.start_at is None or body.start_at <= datetime.now(tz=UTC)
    if now and priority != p.Priority.EMERGENCY and sv.air.emergency_on(r.nodes):
        raise HTTPException(409, "an emergency is on air in these zones; relay refused (try again after it)")
    h = relay_hub(request)
    guard = station_guard(sv)
    if problem := await guard.aproblem(body.url):
        raise HTTPException(422, refusal(problem))
    if body.mode == "republish" and now:
        problem = await probe(body.url, guard)
        if problem:
            raise HTTPException(422, refusal(problem))
    try:
        sess = await h.create(user=user.username, url=body.url, mode=body.mode, priority=priority,
                              nodes=r.nodes, scopes=r.scopes, start_at=body.start_at,
                              duration_s=body.duration_s,
                              target={"all": all_nodes, "zones": zones, "nodes": ids})  # as scoped
    except SQLAlchemyError as exc:
        logger.error("relay not recorded: %s", exc)
        raise HTTPException(503, "the relay could not be recorded (database unavailable); nothing was "
                                 "started — try again") from None
    await asyncio.sleep(0)
    return _public(h, sess)


@router.get("", response_model=list[RelayPublic])
async def list_relays(request: Request, s: SessionDep, user: UserDep,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100,
                      offset: Annotated[int, Query(ge=0)] = 0) -> list[dict[str, Any]]:
    """Newest first: this controller's relays as they are now, the others from the database."""
    h = relay_hub(request)
    out = []
    for row in store.recent(s, limit=limit, offset=offset):
        if not _visible(s, user, row.nodes):
            continue
        sess = h.session(row.id)
        out.append(_public(h, sess, row) if sess is not None else store.public_row(row))
    return out


@router.get("/{relay_id}", response_model=RelayPublic)
async def get_relay(relay_id: str, request: Request, s: SessionDep, user: UserDep) -> dict[str, Any]:
    return _find(relay_hub(request), s, user, relay_id)


@router.delete("/{relay_id}", response_model=RelayPublic)
async def stop_relay(relay_id: str, request: Request, s: SessionDep, user: UserDep) -> Any:
    h = relay_hub(request)
    found = _find(h, s, user, relay_id)
    sess = h.session(relay_id)
    if sess is None or sess.state == "ended":
        if found["state"] not in store.ACTIVE:
            return found  # already ended
        # another controller runs it: its owner (or whoever takes it over) stops it; answered from the row
        done = await get_services(request).relay_requests.ask(relay_id, STOP_RELAY, "stopped")
        found = _find(h, s, user, relay_id) if done is not None else found
        if done is None or found["state"] in store.ACTIVE:
            return JSONResponse(found, status_code=status.HTTP_202_ACCEPTED)  # (the request stays)
        return found
    h.end(sess, "stopped")
    return _public(h, sess)
