"""Dependency aliases for routes and pages (FastAPI template style): the services, a database
session, the logged-in user and their role."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlmodel import Session

from controller.accounts.audit import audit
from controller.accounts.loginlimit import LOGIN, shared_key
from controller.accounts.models import User
from controller.accounts.roles import CAN_ADMIN, CAN_AIR, CAN_APPROVE, CAN_CONTROL, CAN_WRITE_BULLETINS
from controller.accounts.sessions import COOKIE, CSRF_HEADER, find_session
from controller.services import Services

# HTTP Basic credentials when sent (None otherwise: the session cookie is the other way in)
basic_auth = HTTPBasic(realm="loaphuong", auto_error=False)


def get_services(conn: HTTPConnection) -> Services:
    """The controller's services (built and started by the app's lifespan, controller/app.py);
    an ``HTTPConnection``, so WebSocket routes take ``ServicesDep`` too."""
    sv: Services = conn.app.state.services
    return sv


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(sv: ServicesDep) -> Iterator[Session]:
    with sv.db.session() as s:
        yield s


SessionDep = Annotated[Session, Depends(get_session)]


TOO_MANY = "too many failed logins; wait a few minutes"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site(request: HTTPConnection) -> bool:
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host", "")


def client_address(request: HTTPConnection) -> str:
    """The socket's peer (uvicorn replaces it from X-Forwarded-For only for trusted proxies)."""
    return request.client.host if request.client else "?"


def too_many(wait_s: float) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, TOO_MANY,
                         headers={"Retry-After": str(max(1, math.ceil(wait_s)))})


def check_password(sv: Services, s: Session, request: HTTPConnection, username: str, password: str,
                   how: str) -> User | None:
    """The one password check (form login, Basic auth, password change): the backoff first
    (429 with Retry-After, nothing verified), then Argon2; a failure is counted and audited
    (``how`` says where) within the limiter's audit budget."""
    client = client_address(request)
    lim = sv.login_limiter
    if (wait := lim.retry_after(username, client)) > 0:
        raise too_many(wait)
    user = sv.verifier.check(s, username, password)
    if user is None:
        detail = lim.failed(username, client)
        sv.feed.later(LOGIN, shared_key(False, username, client), durable=False)  # the others count it
        if detail is not None:
            action = "password_change_failed" if how == "password change" else "login_failed"
            audit(s, username[:100], action, detail=f"{how} from {detail}")
        return None
    if lim.succeeded(username, client):
        sv.feed.later(LOGIN, shared_key(True, username, client), durable=False)
    return user


def authenticate(request: HTTPConnection, sv: Services, s: Session,
                 cred: HTTPBasicCredentials | None) -> User:
    """HTTP Basic (API clients, scripts) or the session cookie (browsers, CSRF-checked).

    A state change sent by a browser from another site is refused whatever the credentials (a
    browser may attach cached Basic credentials to a cross-site form post); curl and scripts
    send neither ``Origin`` nor ``Sec-Fetch-Site``. Also run before a request body is read
    (controller/api/limits.py)."""
    method = request.scope.get("method", "GET")
    if method not in _SAFE and cross_site(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
    user = None
    if cred is not None:
        user = check_password(sv, s, request, cred.username, cred.password, "basic")
    elif (token := request.cookies.get(COOKIE)) is not None:
        found = find_session(s, token)
        if found is not None:
            user, row = found
            if method not in _SAFE and request.headers.get(CSRF_HEADER) != row.csrf:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login required (wrong user name or password)",
                            headers={"WWW-Authenticate": 'Basic realm="loaphuong"'})
    request.scope["lp_user"] = user.username  # for the audit middleware
    return user


def current_user(request: Request, sv: ServicesDep, s: SessionDep,
                 cred: Annotated[HTTPBasicCredentials | None, Depends(basic_auth)]) -> User:
    return authenticate(request, sv, s, cred)


UserDep = Annotated[User, Depends(current_user)]


def _role(allowed: frozenset[str], what: str) -> Callable[[User], User]:
    def check(user: UserDep) -> User:
        if user.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not {what}")
        return user
    return check


EditorDep = Annotated[User, Depends(_role(CAN_WRITE_BULLETINS, "write bulletins"))]
ApproverDep = Annotated[User, Depends(_role(CAN_APPROVE, "approve bulletins"))]
OperatorDep = Annotated[User, Depends(_role(CAN_AIR, "air broadcasts"))]
ControlDep = Annotated[User, Depends(_role(CAN_CONTROL, "control units"))]
AdminDep = Annotated[User, Depends(_role(CAN_ADMIN, "administer accounts and the fleet"))]
