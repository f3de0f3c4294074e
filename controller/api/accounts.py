"""Log in / out (browser sessions), accounts, org units and the audit log."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlmodel import col, select

from controller.accounts.audit import audit
from controller.accounts.audit_query import MAX_PAGE, AuditFilter, audit_rows, day_ms
from controller.accounts.auth import hash_password
from controller.accounts.models import OrgUnit, User
from controller.accounts.passwords import password_problem
from controller.accounts.roles import ROLES, may_grant_role
from controller.accounts.scope import manages_user, scope_refusal, subtree
from controller.accounts.sessions import COOKIE, SESSION_TTL_MS, close_session, end_sessions, open_session
from controller.accounts.users import add_user
from controller.api.deps import (
    AdminDep,
    ServicesDep,
    SessionDep,
    UserDep,
    check_password,
    client_address,
    cross_site,
)
from controller.api.responses import AuditPublic, LoginPublic, OrgUnitPublic, UserCreated, UserPublic, iso
from controller.api.schemas import (
    LoginRequest,
    OrgUnitCreate,
    PasswordChange,
    QueryDay,
    UserCreate,
    UserUpdate,
)
from controller.api.scope import forbidden
from controller.core.errors import ServiceError

router = APIRouter(prefix="/api", tags=["accounts"])


def _user(u: User) -> UserPublic:
    assert u.id is not None
    return UserPublic(id=u.id, username=u.username, role=u.role, org_unit_id=u.org_unit_id, active=u.active,
                      must_change_password=u.must_change_password)


@router.post("/login", response_model=LoginPublic)
def login(body: LoginRequest, request: Request, response: Response, sv: ServicesDep,
          s: SessionDep) -> LoginPublic:
    """A new session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) and its CSRF token."""
    if cross_site(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
    client = client_address(request)
    user = check_password(sv, s, request, body.username, body.password, "form")  # 429 while backing off
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    old = request.cookies.get(COOKIE)
    if old:
        close_session(s, old)  # a new session on every login
    token, csrf = open_session(s, user)
    response.set_cookie(COOKIE, token, max_age=SESSION_TTL_MS // 1000, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    audit(s, user.username, "login", detail=client)
    return LoginPublic(user=_user(user), csrf_token=csrf)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, s: SessionDep, user: UserDep) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        close_session(s, token)
    audit(s, user.username, "logout")
    out = Response(status_code=status.HTTP_204_NO_CONTENT)
    out.delete_cookie(COOKIE, path="/")
    return out


@router.get("/me", response_model=UserPublic)
def me(user: UserDep) -> UserPublic:
    return _user(user)


@router.post("/me/password", response_model=LoginPublic)
def change_password(body: PasswordChange, request: Request, response: Response, sv: ServicesDep,
                    s: SessionDep, user: UserDep) -> LoginPublic:
    """Change one's own password (e.g. the one-time one): every session ends, a new one starts.
    The new one must pass the password policy (422); wrong current passwords back off like
    failed logins (429 with Retry-After)."""
    if check_password(sv, s, request, user.username, body.current, "password change") is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong")
    if (problem := password_problem(body.new, user.username)) is not None:
        raise HTTPException(422, problem)
    if body.new == body.current:
        raise HTTPException(422, "the new password must differ from the current one")
    assert user.id is not None
    user.password_hash = hash_password(body.new)
    user.must_change_password = False
    s.add(user)
    s.commit()
    end_sessions(s, user.id)
    token, csrf = open_session(s, user)
    response.set_cookie(COOKIE, token, max_age=SESSION_TTL_MS // 1000, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    audit(s, user.username, "password_change")
    return LoginPublic(user=_user(user), csrf_token=csrf)


def _managed(s: SessionDep, admin: User, user_id: int) -> User:
    """The account, if ``admin`` manages it (their subtree, a role not above theirs); else 404/403."""
    user = s.get(User, user_id) if 0 < user_id < 2**63 else None  # beyond SQL integers: none
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} does not exist")
    if not manages_user(s, admin, user):
        raise forbidden(f"user {user_id}")
    return user


def _check_grant(s: SessionDep, admin: User, role: str | None, org: str | None, *, placing: bool) -> None:
    """Nobody grants a role above their own, nor an org scope above their own (422 for unknowns)."""
    if role is not None and role not in ROLES:
        raise HTTPException(422, f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if placing and org is not None and s.get(OrgUnit, org) is None:
        raise HTTPException(422, f"unknown org unit {org!r}")
    if role is not None and not may_grant_role(admin, role):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"your role ({admin.role}) may not grant the role {role}")
    why = scope_refusal(s, admin, org) if placing else None
    if why:
        raise HTTPException(status.HTTP_403_FORBIDDEN, why)


@router.get("/users", response_model=list[UserPublic])
def list_users(s: SessionDep, admin: AdminDep) -> list[UserPublic]:
    """The accounts of the admin's subtree (all for an admin without an org unit)."""
    q = select(User).order_by(col(User.id))
    if admin.org_unit_id is not None:
        q = q.where(col(User.org_unit_id).in_(subtree(s, admin.org_unit_id)))
    return [_user(u) for u in s.exec(q).all()]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserCreated)
def create_user(body: UserCreate, s: SessionDep, admin: AdminDep) -> UserCreated:
    """A new account inside the admin's subtree, with a role not above the admin's (else 403)."""
    _check_grant(s, admin, body.role, body.org_unit_id, placing=True)
    try:
        user, password = add_user(s, body.username, body.role, body.org_unit_id)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    audit(s, admin.username, "user_add", user.username, f"role={user.role} org={user.org_unit_id}")
    return UserCreated(**_user(user).model_dump(), password=password)


@router.patch("/users/{user_id}", response_model=UserPublic)
def update_user(user_id: int, body: UserUpdate, s: SessionDep, admin: AdminDep) -> UserPublic:
    """Enable/disable, change the role or move an account of one's subtree, within one's subtree
    and up to one's own role (403 otherwise; nothing changes). Nobody changes their own role or
    org unit, or disables themselves: another admin does."""
    user = _managed(s, admin, user_id)
    moving = "org_unit_id" in body.model_fields_set and body.org_unit_id != user.org_unit_id
    if user.id == admin.id and (body.role not in (None, user.role) or moving or body.active is False):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "you may not change your own role or org unit, or disable yourself")
    _check_grant(s, admin, body.role, body.org_unit_id, placing=moving)
    if body.role is not None:
        user.role = body.role
    if moving:
        user.org_unit_id = body.org_unit_id
    if body.active is not None:
        user.active = body.active
    s.add(user)
    s.commit()
    if body.active is False or body.role is not None or moving:
        end_sessions(s, user_id)  # disabling (or changing a role / ward) logs the user out everywhere
    audit(s, admin.username, "user_update", user.username, body.model_dump_json(exclude_unset=True))
    return _user(user)


@router.post("/users/{user_id}/password", response_model=UserCreated)
def reset_password(user_id: int, s: SessionDep, admin: AdminDep) -> UserCreated:
    """A new one-time password for an account of one's subtree (every session of it ends)."""
    user = _managed(s, admin, user_id)
    password = secrets.token_urlsafe(12)
    user.password_hash = hash_password(password)
    user.must_change_password = True  # one-time: the web app asks for a new one at the next login
    s.add(user)
    s.commit()
    end_sessions(s, user_id)
    audit(s, admin.username, "password_reset", user.username)
    return UserCreated(**_user(user).model_dump(), password=password)


@router.get("/org-units", response_model=list[OrgUnitPublic])
def list_org_units(s: SessionDep, user: UserDep) -> list[dict[str, str | None]]:
    """The org tree below the user's own org unit (all of it for a user without one)."""
    q = select(OrgUnit).order_by(col(OrgUnit.id))
    if user.org_unit_id is not None:
        q = q.where(col(OrgUnit.id).in_(subtree(s, user.org_unit_id)))
    return [{"id": u.id, "name": u.name, "parent_id": u.parent_id} for u in s.exec(q).all()]


@router.post("/org-units", status_code=status.HTTP_201_CREATED, response_model=OrgUnitPublic)
def create_org_unit(body: OrgUnitCreate, s: SessionDep, admin: AdminDep) -> dict[str, str | None]:
    """A new org unit below one of the admin's subtree (a ward admin cannot add a top-level one)."""
    if body.parent_id is not None and s.get(OrgUnit, body.parent_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown parent {body.parent_id}")
    why = scope_refusal(s, admin, body.parent_id)
    if why:
        raise HTTPException(status.HTTP_403_FORBIDDEN, why)
    if s.get(OrgUnit, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"org unit {body.id} already exists")
    s.add(OrgUnit(id=body.id, name=body.name, parent_id=body.parent_id))
    s.commit()
    audit(s, admin.username, "org_unit_add", body.id, body.name)
    return body.model_dump()


@router.get("/audit", response_model=list[AuditPublic])
def list_audit(s: SessionDep, admin: AdminDep, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
               offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
               username: Annotated[str | None, Query(max_length=100, description="who acted")] = None,
               action: Annotated[str | None, Query(max_length=64, description="e.g. login")] = None,
               first: Annotated[QueryDay | None, Query(alias="from", description="first day")] = None,
               last: Annotated[QueryDay | None, Query(alias="to", description="last day, included")] = None,
               ) -> list[AuditPublic]:
    """The audit log, newest first, filtered and paged (``offset``). An admin with an org unit sees
    exactly the entries made by (or, for failed logins, in the name of) accounts of their subtree:
    every entry names who acted, so the rule needs no guessing about what a free-text target refers
    to. Entries by province-level accounts, the CLI or unknown names stay with admins without an
    org unit."""
    if first is not None and last is not None and last < first:
        raise ServiceError(422, f"the audit period's end {last} is before its start {first}")
    f = AuditFilter(username=username or None, actions=(action.replace("%", ""),) if action else (),
                    since_ms=day_ms(first), until_ms=day_ms(last, after=True))
    rows = audit_rows(s, admin, f, offset=offset, limit=limit)
    return [AuditPublic(at=iso(r.at), username=r.username, action=r.action, target=r.target, detail=r.detail)
            for r in rows]

