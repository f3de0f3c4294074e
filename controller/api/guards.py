"""Router-level role and ward checks for routers whose handlers take only ``UserDep``.

``include_router(..., dependencies=[Depends(guard)])`` in controller/api/__init__.py; the user
is resolved once per request (FastAPI caches dependencies), so this costs nothing extra.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from controller.accounts.models import User
from controller.accounts.roles import CAN_ADMIN, CAN_AIR, CAN_CONTROL, CAN_WRITE_BULLETINS
from controller.accounts.scope import can_see_org
from controller.api.deps import SessionDep, UserDep
from controller.api.scope import forbidden, node_for, scoped_target, zone_for
from controller.bulletins.models import Bulletin
from scheduler.models import Schedule

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _need(user: User, allowed: frozenset[str], what: str) -> None:
    if user.role not in allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not {what}")


def _scope(request: Request, s: SessionDep, user: User) -> None:
    params = request.path_params
    if "node_id" in params:
        node_for(s, user, str(params["node_id"]))
    if "zone_id" in params:
        zone_for(s, user, str(params["zone_id"]))


def control_guard(request: Request, s: SessionDep, user: UserDep) -> None:
    """Commands: operators and admins; broker credentials: admins; only units of one's ward."""
    if request.method not in _SAFE:
        if request.url.path.endswith("/credentials"):
            _need(user, CAN_ADMIN, "issue broker credentials")
        else:
            _need(user, CAN_CONTROL, "control units")
    _scope(request, s, user)


def schedule_visible(s: SessionDep, user: User, row: Schedule) -> bool:
    """A bulletin schedule: the bulletin's ward; a relay schedule: all its targets in one's ward."""
    if row.bulletin_id is not None:
        b = s.get(Bulletin, row.bulletin_id)
        return b is None or can_see_org(s, user, b.org_unit_id)
    if user.org_unit_id is None:
        return True
    t = row.targets
    if t.get("all"):
        return False
    try:
        scoped_target(s, user, False, [str(z) for z in t.get("zones") or []],
                      [str(n) for n in t.get("nodes") or []])
    except HTTPException:
        return False
    return True


def schedule_guard(request: Request, s: SessionDep, user: UserDep) -> None:
    """Schedules: a schedule of another ward is invisible; only operators and admins change them.

    What a schedule airs (approval, ward, emergency bypass) and where (its target) is checked by
    the routes on the validated body and the bulletin row that is stored (controller/api/
    schedules.py), never here on the raw JSON: a guard that re-parses the body sees "6" where
    the model sees 6 (issue 11 item 2)."""
    sid = request.path_params.get("schedule_id")
    if sid is not None and str(sid).isdigit() and int(sid) < 2**63:
        row = s.get(Schedule, int(sid))
        if row is not None and not schedule_visible(s, user, row):
            raise forbidden(f"schedule {sid}")
    if request.method in _SAFE:
        return
    _need(user, CAN_AIR, "change schedules")


def speech_guard(request: Request, user: UserDep) -> None:
    """Preview and normalise are for everyone; the ward's dictionary is the editors'."""
    if request.method not in _SAFE and "/dictionary" in request.url.path:
        _need(user, CAN_WRITE_BULLETINS, "change the pronunciation dictionary")
