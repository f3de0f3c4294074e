"""The app factory: routers, middleware, error handlers, and the lifespan that builds the services
(controller/services.py), starts them in their listed order and stops them in reverse."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware

from controller.accounts.audit import audit
from controller.api import apidocs, error_codes, router
from controller.api.deadlines import Deadlines
from controller.api.deps import get_services
from controller.api.library import LIBRARY_PATH
from controller.api.limits import RequestLimits
from controller.api.methods import UiMount, method_not_allowed
from controller.api.recordings import UPLOAD_PATH, upload_body_limit
from controller.api.static_cache import GZIP_LEVEL, GZIP_MIN_BYTES, NOT_COMPRESSED, CachedStaticFiles
from controller.core.errors import ServiceError
from controller.services import build_services, start_services, stop_services
from controller.settings import Settings
from controller.ui import router as ui_router
from controller.ui.i18n import unavailable_messages

logger = logging.getLogger(__name__)

# writes that render speech or wait for units' replies (commands: up to 120 s): http.long_deadline_s
LONG_WRITES = r"/api/(bulletins|speech)(/|$)|/api/(nodes|zones)/[^/]+/commands$|/api/relays$"

STATIC = Path(__file__).parent / "static"


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sv = build_services(settings)
        app.state.services = sv  # the one thing on app.state: routes take it through api/deps.py
        await start_services(sv)
        if sv.admin_password:
            logger.warning("first admin account: admin / %s (shown once; change it)", sv.admin_password)
        try:
            yield
        finally:
            await stop_services(sv)

    return lifespan


async def _audit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Every state-changing API request by a known user goes to the audit log (but one whose route
    wrote a fuller entry itself, ``lp_audited``: an airing with its bulletin's title)."""
    response = await call_next(request)
    user = request.scope.get("lp_user")
    if (user and request.method not in ("GET", "HEAD", "OPTIONS") and request.url.path.startswith("/api/")
            and not request.scope.get("lp_audited")):  # a route that wrote its own entry (with its words)
        sv = get_services(request)

        def write() -> None:
            with sv.db.session() as s:
                audit(s, user, f"{request.method} {request.url.path}", detail=str(response.status_code))

        await asyncio.to_thread(write)
    return response


async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
    # an id or number beyond what the database stores (64-bit): it cannot name anything
    return JSONResponse(status_code=422, content={"detail": "a number in the request is out of range"})


async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    code = error_codes.code_for(exc.message)
    return JSONResponse(status_code=exc.status, content={"detail": exc.message,
                                                        **({"code": code} if code else {})})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="loaphuong", version="0.1.0", lifespan=_lifespan(settings),
                  description="Ward public-address controller (loa phường)",
                  docs_url=None, redoc_url=None, openapi_url=None)  # behind login: controller/api/apidocs.py
    # text answers gzip-compressed, not audio or event streams (controller/api/static_cache.py);
    # inside the audit middleware, which would turn every answer into a stream (no minimum size)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=GZIP_LEVEL,
                       exclude_content_types=NOT_COMPRESSED)
    app.middleware("http")(_audit)
    app.exception_handler(OverflowError)(_overflow)
    app.exception_handler(ServiceError)(_service_error)
    app.add_exception_handler(HTTPException, error_codes.http_error)  # + a stable `code` (issue 14)
    app.add_exception_handler(RequestValidationError, error_codes.invalid_request)
    app.add_exception_handler(405, method_not_allowed)  # the path's Allow, not the static files'
    app.include_router(router)
    app.include_router(apidocs.router)
    app.include_router(ui_router)
    app.router.routes.append(UiMount("/", app=CachedStaticFiles(directory=STATIC, html=True), name="ui"))
    # outermost: sizes and authentication before any body is read
    app.add_middleware(RequestLimits, max_body=settings.http.max_body_kb * 1024,  # type: ignore[arg-type]
                       larger={UPLOAD_PATH: upload_body_limit(settings.tts),
                               LIBRARY_PATH: upload_body_limit(settings.tts)})
    # outside that: a deadline for every request, 503 when the database is down (docs/faults.md)
    app.add_middleware(Deadlines, deadline_s=settings.http.request_deadline_s,  # type: ignore[arg-type]
                       messages=unavailable_messages(), exempt=(UPLOAD_PATH, LIBRARY_PATH), long=LONG_WRITES,
                       long_deadline_s=settings.http.long_deadline_s)
    return app
