"""Schedules (lịch phát), their runs, the agenda of the coming days, and who fires them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlmodel import col, select

from controller.accounts import visible_zones
from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.guards import schedule_visible
from controller.api.relays import check_station
from controller.api.scope import visible_bulletin_ids
from scheduler.agenda import build_agenda
from scheduler.models import RunStatus, Schedule
from scheduler.schedules import (
    RunPublic,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_runs,
    public,
    update_schedule,
)

router = APIRouter(prefix="/api", tags=["schedules"])


def _changed(sv: ServicesDep, schedule_id: int | None) -> None:
    if sv.schedules is not None and schedule_id is not None:
        sv.schedules.changed(schedule_id)


@router.post("/schedules", status_code=status.HTTP_201_CREATED, response_model=SchedulePublic)
def add_schedule(body: ScheduleCreate, sv: ServicesDep, s: SessionDep, user: UserDep) -> SchedulePublic:
    if body.relay is not None:
        check_station(sv, body.relay.url)  # no SSRF: the stream's address must be public or allow-listed
    row = create_schedule(s, body, created_by=user.username)
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
def change_schedule(schedule_id: int, body: ScheduleUpdate, sv: ServicesDep, s: SessionDep,
                    _: UserDep) -> SchedulePublic:
    if body.relay is not None:
        check_station(sv, body.relay.url)  # no SSRF: the stream's address must be public or allow-listed
    row = update_schedule(s, schedule_id, body)
    _changed(sv, row.id)
    return public(s, row)


@router.delete("/schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_schedule(schedule_id: int, sv: ServicesDep, s: SessionDep, _: UserDep) -> Response:
    row = delete_schedule(s, schedule_id)
    _changed(sv, row.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/schedules/{schedule_id}/runs", response_model=list[RunPublic])
def schedule_runs(schedule_id: int, s: SessionDep, _: UserDep,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  status_: Annotated[list[RunStatus] | None, Query(alias="status")] = None,
                  ) -> list[RunPublic]:
    get_schedule(s, schedule_id, allow_deleted=True)
    return [r for _, r in list_runs(s, schedule_id, limit=limit,
                                    statuses=[x.value for x in status_] if status_ else None)]


@router.get("/agenda")
def agenda(s: SessionDep, user: UserDep, days: Annotated[int, Query(ge=1, le=31)] = 7) -> dict[str, Any]:
    out = build_agenda(s, days=days)
    if (mine := visible_zones(s, user)) is not None:  # a ward user: their ward's zones only
        out["zones"] = [z for z in out["zones"] if z["zone"] in mine]
    return out


@router.get("/scheduler")
async def scheduler_status(sv: ServicesDep, _: UserDep) -> dict[str, Any]:
    """Which controller fires the schedules (the lease), and whether it is this one."""
    if sv.schedules is None:
        return {"me": None, "leading": False, "lease": None, "last_error": "schedules are disabled here"}
    return await asyncio.to_thread(sv.schedules.status)
