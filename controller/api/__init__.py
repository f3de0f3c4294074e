"""HTTP API routes.

Every error is ``{"detail": ...}`` (controller/api/responses.py ``ErrorPublic``). The statuses any
logged-in route can answer (``COMMON_ERRORS``: 400 unreadable body, 401 login, 403 role / ward /
cross-site, 413 body too large, 422 invalid, 429 login backoff) are documented once here on the
router; each family adds the ones its routes raise (404 / 409 / 503), so the OpenAPI schema lists
every status an operation returns (tests/security/test_fuzz_api.py holds it to that)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from controller.api import (
    accounts,
    alerts,
    approval,
    broadcasts,
    bulletin_edits,
    bulletins,
    control,
    fleet,
    guards,
    health,
    library,
    live,
    metrics,
    presets,
    recordings,
    relays,
    schedules,
    speech,
    windows,
)
from controller.api.responses import COMMON_ERRORS, errors

COMMON = errors(*COMMON_ERRORS)

router = APIRouter(responses=COMMON)
router.include_router(health.router)
router.include_router(metrics.router)  # /metrics: bearer token or loopback only (not the JSON API)
for _r in (accounts.router, alerts.router, approval.router, fleet.router, live.router, presets.router):
    router.include_router(_r, responses=errors(404, 409))
for _r in (bulletins.router, bulletin_edits.router, recordings.router, library.router, relays.router,
           broadcasts.router, windows.router):
    router.include_router(_r, responses=errors(404, 409, 503))
# routers whose handlers only take UserDep get their role and ward checks here (controller/api/guards.py)
router.include_router(control.router, dependencies=[Depends(guards.control_guard)],
                      responses=errors(404, 409, 503))
router.include_router(schedules.router, dependencies=[Depends(guards.schedule_guard)],
                      responses=errors(404, 409))
router.include_router(speech.router, dependencies=[Depends(guards.speech_guard)],
                      responses=errors(404, 409, 503))
