"""HTTP API routes."""

from __future__ import annotations

from fastapi import APIRouter

from controller.api import broadcasts, bulletins, fleet, health

router = APIRouter()
for _r in (health.router, fleet.router, bulletins.router, broadcasts.router):
    router.include_router(_r)
