"""HTTP API routes."""

from __future__ import annotations

from fastapi import APIRouter

from controller.api import broadcasts, bulletins, control, fleet, health, schedules, speech

router = APIRouter()
for _r in (health.router, fleet.router, bulletins.router, broadcasts.router, control.router,
           schedules.router, speech.router):
    router.include_router(_r)
