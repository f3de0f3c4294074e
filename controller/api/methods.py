"""405 Method Not Allowed with the right ``Allow`` header.

FastAPI makes one route per method, and the web app's static files are mounted on ``/``, so a
method a path does not take used to fall through to the static files ("405, Allow: GET, HEAD"
for ``PUT /api/broadcasts``, ``OPTIONS /api/nodes/n1``...). This handler answers every 405 with
the methods the path really takes, in the API's error style."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import Scope

_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some API route of the app answers on this path (GET implies HEAD)."""
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]  # not the static files
    found = [m for m in _METHODS
             if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)]
    if not found:
        return ["GET", "HEAD"]  # the web app's static files
    return sorted({*found, "HEAD"} if "GET" in found else found)


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    methods = allowed_methods(request)
    return JSONResponse(status_code=405, headers={"Allow": ", ".join(methods)},
                        content={"detail": f"{request.method} is not allowed here; use {', '.join(methods)}"})


class UiMount(Mount):
    """The web app's static files on ``/``, but not for ``/api/`` paths: there a method a path
    does not take is a 405 (above) and an unknown path a JSON 404, not a static-file answer."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if str(scope.get("path", "")).startswith("/api/"):
            return Match.NONE, {}
        return super().matches(scope)
