"""Schedules (lịch phát), their runs, the agenda of the coming days, and who fires them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from sqlmodel import Session, col, select

from controller.accounts.models import User
from controller.accounts.scope import visible_zones
from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.guards import schedule_visible
from controller.api.relays import check_station
from controller.api.responses import RunPublic, SchedulePublic
from controller.api.run_reasons import run_reason
from controller.api.schemas import QueryDay, ScheduleCreate, ScheduleUpdate, Target
from controller.api.scope import audit_bypass, check_airing, stored_target, visible_bulletin_ids
from controller.bulletins.models import Bulletin
from controller.core.errors import ServiceError
from controller.schedules.agenda import build_agenda, day_range
from controller.schedules.crud import (
    airing_after,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_runs,
    run_view,
    schedule_view,
    update_schedule,
)
from controller.services import SCHEDULE
from devices.protocol import now_ms
from scheduler.models import RunStatus, Schedule, ScheduleRun

router = APIRouter(prefix="/api", tags=["schedules"])


async def _received_ms() -> int:
    """When the request came in: on the event loop, as the first dependency (before the session,
    the login check and the wait for a worker thread). A once slot is refused as past only if it
    is not after this."""
    return now_ms()


ReceivedDep = Annotated[int, Depends(_received_ms)]


def public(s: Session, row: Schedule) -> SchedulePublic:
    return SchedulePublic.model_validate(schedule_view(s, row))


def _changed(sv: ServicesDep, schedule_id: int | None) -> None:
    if schedule_id is not None:
        sv.schedules.changed(schedule_id)
        sv.feed.later(SCHEDULE, str(schedule_id))  # the leader may be another controller


def _may_air(s: Session, user: User, bulletin_id: int | None, priority: str | None,
             target: Target | None) -> Bulletin | None:
    """The approval, ward and emergency checks on the validated body; returns the bulletin row
    that the schedule will air (the row create/update_schedule store), None for a relay."""
    bulletin = check_airing(s, user, bulletin_id, priority) if bulletin_id is not None else None
    if target is not None:
        stored_target(s, user, target.all, target.zones, target.nodes)
    return bulletin


@router.post("/schedules", status_code=status.HTTP_201_CREATED, response_model=SchedulePublic)
def add_schedule(received: ReceivedDep, body: ScheduleCreate, sv: ServicesDep, s: SessionDep,
                 user: UserDep) -> SchedulePublic:
    bulletin = _may_air(s, user, body.bulletin_id, body.priority, body.target)
    if body.relay is not None:
        check_station(sv, body.relay.url)  # no SSRF: the stream's address must be public or allow-listed
    row = create_schedule(s, body, created_by=user.username, received_ms=received)
    if bulletin is not None:
        audit_bypass(s, user, bulletin, body.priority, f"schedule:{row.id}")
    _changed(sv, row.id)
    return public(s, row)


@router.get("/schedules", response_model=list[SchedulePublic])
def all_schedules(s: SessionDep, user: UserDep, include_deleted: bool = False,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                  offset: Annotated[int, Query(ge=0)] = 0) -> list[SchedulePublic]:
    q = select(Schedule).order_by(col(Schedule.id))
    if not include_deleted:
        q = q.where(~col(Schedule.deleted))
    if (ids := visible_bulletin_ids(s, user)) is not None:  # a ward user: their ward's only
        q = q.where(col(Schedule.bulletin_id).in_(ids) | col(Schedule.bulletin_id).is_(None))
        rows = [r for r in s.exec(q).all() if r.bulletin_id is not None or schedule_visible(s, user, r)]
        return [public(s, row) for row in rows[offset:offset + limit]]
    return [public(s, row) for row in s.exec(q.offset(offset).limit(limit)).all()]


@router.get("/schedules/{schedule_id}", response_model=SchedulePublic)
def one_schedule(schedule_id: int, s: SessionDep, _: UserDep) -> SchedulePublic:
    return public(s, get_schedule(s, schedule_id, allow_deleted=True))


@router.patch("/schedules/{schedule_id}", response_model=SchedulePublic)
def change_schedule(received: ReceivedDep, schedule_id: int, body: ScheduleUpdate, sv: ServicesDep,
                    s: SessionDep, user: UserDep) -> SchedulePublic:
    row = get_schedule(s, schedule_id)
    bulletin_id, priority, touches = airing_after(row, body)
    now = Target.model_validate(row.targets)  # a ward user changes no schedule reaching beyond
    stored_target(s, user, now.all, now.zones, now.nodes)  # the ward (nor re-aims one at it)
    bulletin = _may_air(s, user, bulletin_id if touches else None, priority, body.target)
    if body.relay is not None:
        check_station(sv, body.relay.url)  # no SSRF: the stream's address must be public or allow-listed
    row = update_schedule(s, schedule_id, body, received_ms=received)
    if bulletin is not None:
        audit_bypass(s, user, bulletin, priority, f"schedule:{row.id}")
    _changed(sv, row.id)
    return public(s, row)


@router.delete("/schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_schedule(schedule_id: int, sv: ServicesDep, s: SessionDep, user: UserDep) -> Response:
    t = Target.model_validate(get_schedule(s, schedule_id).targets)
    stored_target(s, user, t.all, t.zones, t.nodes)  # nor removes one that reaches beyond the ward
    row = delete_schedule(s, schedule_id)
    _changed(sv, row.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/schedules/{schedule_id}/runs", response_model=list[RunPublic])
def schedule_runs(schedule_id: int, s: SessionDep, _: UserDep,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  status_: Annotated[list[RunStatus] | None, Query(alias="status")] = None,
                  ) -> list[RunPublic]:
    get_schedule(s, schedule_id, allow_deleted=True)
    return [_run(r) for r in list_runs(
        s, schedule_id, limit=limit, statuses=[x.value for x in status_] if status_ else None)]


def _run(r: ScheduleRun) -> RunPublic:
    code, args = run_reason(r.reason)
    return RunPublic.model_validate({**run_view(r), "reason_code": code, "reason_args": args})


@router.get("/agenda")
def agenda(s: SessionDep, user: UserDep, days: Annotated[int, Query(ge=1, le=31)] = 7,
           first: Annotated[QueryDay | None, Query(alias="from", description="first day (ward time), "
                                                "with `to`: a calendar's week or month")] = None,
           last: Annotated[QueryDay | None, Query(alias="to", description="last day, included")] = None,
           ) -> dict[str, Any]:
    """What airs in each zone: the next ``days`` days from now, or the days ``from``..``to``
    (at most 62; ``to`` alone is refused, ``from`` alone means 7 days from it)."""
    if first is None and last is not None:
        raise ServiceError(422, "the agenda's range needs a start date (from) with its end date (to)")
    if first is not None:
        try:
            start, end = day_range(first, last or first + timedelta(days=6))
        except ValueError as exc:
            raise ServiceError(422, str(exc)) from None
        out = build_agenda(s, start=start, end=end)
    else:
        out = build_agenda(s, days=days)
    if (mine := visible_zones(s, user)) is not None:  # a ward user: their ward's zones only
        out["zones"] = [z for z in out["zones"] if z["zone"] in mine]
    return out


@router.get("/scheduler")
async def scheduler_status(sv: ServicesDep, _: UserDep) -> dict[str, Any]:
    """Which controller fires the schedules (the lease), and whether it is this one."""
    return await asyncio.to_thread(sv.schedules.status)  # a controller firing none says so
