"""HTTP API routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from controller.api import (
    accounts,
    approval,
    broadcasts,
    bulletins,
    control,
    fleet,
    guards,
    health,
    live,
    recordings,
    relays,
    schedules,
    speech,
)

router = APIRouter()
for _r in (accounts.router, approval.router, health.router, fleet.router, bulletins.router, recordings.router,
           live.router, relays.router, broadcasts.router):
    router.include_router(_r)
# routers whose handlers only take UserDep get their role and ward checks here (controller/api/guards.py)
router.include_router(control.router, dependencies=[Depends(guards.control_guard)])
router.include_router(schedules.router, dependencies=[Depends(guards.schedule_guard)])
router.include_router(speech.router, dependencies=[Depends(guards.speech_guard)])
