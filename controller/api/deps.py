"""Dependency aliases for routes (FastAPI template style)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlmodel import Session

from controller.app import Services
from controller.models import User

_basic = HTTPBasic(realm="loaphuong", auto_error=False)


def get_services(request: Request) -> Services:
    sv: Services = request.app.state.services
    return sv


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(sv: ServicesDep) -> Iterator[Session]:
    with sv.db.session() as s:
        yield s


SessionDep = Annotated[Session, Depends(get_session)]


def current_user(sv: ServicesDep, s: SessionDep,
                 cred: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> User:
    user = sv.verifier.check(s, cred.username, cred.password) if cred else None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login required (wrong user name or password)",
                            headers={"WWW-Authenticate": 'Basic realm="loaphuong"'})
    return user


UserDep = Annotated[User, Depends(current_user)]
