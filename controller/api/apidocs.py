"""The API's description behind login: ``/openapi.json``, ``/docs`` (Swagger UI), ``/redoc``.

FastAPI's own routes are switched off in the app factory (they need no login); these answer
the same pages to a logged-in user (HTTP Basic or the session cookie). A browser without a
session is sent to the login page, a script gets 401."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBasicCredentials

from controller.api.deps import ServicesDep, SessionDep, UserDep, basic_auth, current_user

router = APIRouter(include_in_schema=False)

OPENAPI = "/openapi.json"


@router.get(OPENAPI)
def openapi(request: Request, _: UserDep) -> JSONResponse:
    return JSONResponse(request.app.openapi())


def _login_or_page(request: Request, sv: ServicesDep, s: SessionDep,
                   cred: HTTPBasicCredentials | None, page: HTMLResponse) -> Response:
    try:
        current_user(request=request, sv=sv, s=s, cred=cred)
    except HTTPException as exc:
        if exc.status_code != 401 or cred is not None:
            raise
        return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
    page.headers["Cache-Control"] = "no-store"
    return page


Cred = Annotated[HTTPBasicCredentials | None, Depends(basic_auth)]


@router.get("/docs", response_class=HTMLResponse)
def swagger(request: Request, sv: ServicesDep, s: SessionDep, cred: Cred) -> Response:
    title = f"{request.app.title} — API"
    return _login_or_page(request, sv, s, cred, get_swagger_ui_html(openapi_url=OPENAPI, title=title))


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request, sv: ServicesDep, s: SessionDep, cred: Cred) -> Response:
    title = f"{request.app.title} — API"
    return _login_or_page(request, sv, s, cred, get_redoc_html(openapi_url=OPENAPI, title=title))
