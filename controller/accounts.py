"""Roles, browser sessions, ward scoping and the audit log (login backoff: controller/loginlimit.py).

API clients and scripts keep using HTTP Basic; browsers log in once and get an HttpOnly,
SameSite=Strict session cookie plus a CSRF token that every state-changing request must echo
in the ``X-CSRF-Token`` header. Only the SHA-256 of the cookie value is stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from sqlmodel import Session, col, delete, select

from controller.auth import hash_password
from controller.models import AuditEntry, Bulletin, NodeZone, OrgUnit, User, UserSession, Zone
from controller.passwords import password_problem
from devices.protocol import now_ms

logger = logging.getLogger(__name__)

ROLES = ("admin", "editor", "approver", "operator")
COOKIE = "lp_session"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_MS = 12 * 3600 * 1000

# what each role may do (admin may do everything)
CAN_WRITE_BULLETINS = frozenset({"admin", "editor", "approver"})
CAN_APPROVE = frozenset({"admin", "approver"})
CAN_AIR = frozenset({"admin", "operator"})
CAN_EMERGENCY = frozenset({"admin", "approver", "operator"})  # may skip the approval queue
CAN_CONTROL = frozenset({"admin", "operator"})
CAN_ADMIN = frozenset({"admin"})


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------- sessions


def open_session(s: Session, user: User) -> tuple[str, str]:
    """A new session (never reuse one across logins); returns (cookie value, CSRF token)."""
    assert user.id is not None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    s.exec(delete(UserSession).where(col(UserSession.expires_at) < now_ms()))  # type: ignore[call-overload]
    s.add(UserSession(token_hash=_digest(token), user_id=user.id, csrf=csrf,
                      expires_at=now_ms() + SESSION_TTL_MS))
    s.commit()
    return token, csrf


def find_session(s: Session, token: str) -> tuple[User, UserSession] | None:
    row = s.get(UserSession, _digest(token))
    if row is None or row.expires_at < now_ms():
        return None
    user = s.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return user, row


def close_session(s: Session, token: str) -> None:
    s.exec(delete(UserSession).where(col(UserSession.token_hash) == _digest(token)))  # type: ignore[call-overload]
    s.commit()


def end_sessions(s: Session, user_id: int) -> None:
    """Log a user out everywhere (on disabling the account or a password change)."""
    s.exec(delete(UserSession).where(col(UserSession.user_id) == user_id))  # type: ignore[call-overload]
    s.commit()


# --------------------------------------------------------------------------- users


def add_user(s: Session, username: str, role: str, org_unit_id: str | None = None,
             password: str | None = None) -> tuple[User, str]:
    """Create an account; returns it with its (one-time, printed once) password."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if org_unit_id is not None and s.get(OrgUnit, org_unit_id) is None:
        raise ValueError(f"unknown org unit {org_unit_id!r}")
    if s.exec(select(User).where(User.username == username)).first() is not None:
        raise ValueError(f"user {username!r} already exists")
    if password is not None and (problem := password_problem(password, username)):
        raise ValueError(problem)
    password = password or secrets.token_urlsafe(12)
    user = User(username=username, password_hash=hash_password(password), role=role, org_unit_id=org_unit_id)
    s.add(user)
    s.commit()
    s.refresh(user)
    return user, password


# --------------------------------------------------------------------------- ward scoping


def subtree(s: Session, root: str) -> set[str]:
    """The org unit and every unit below it."""
    children: dict[str | None, list[str]] = {}
    for u in s.exec(select(OrgUnit)).all():
        children.setdefault(u.parent_id, []).append(u.id)
    out: set[str] = set()
    todo = [root]
    while todo:
        unit = todo.pop()
        if unit not in out:
            out.add(unit)
            todo.extend(children.get(unit, []))
    return out


def can_see_org(s: Session, user: User, org_unit_id: str | None) -> bool:
    """A user without an org unit sees everything; others see their subtree only.

    Objects without an org unit (created before wards were configured) belong to the top and
    are visible only to users without an org unit.
    """
    if user.org_unit_id is None:
        return True
    return org_unit_id is not None and org_unit_id in subtree(s, user.org_unit_id)


def visible_zones(s: Session, user: User) -> set[str] | None:
    """Zone ids the user may see, or None for all."""
    if user.org_unit_id is None:
        return None
    mine = subtree(s, user.org_unit_id)
    return {z.id for z in s.exec(select(Zone)).all() if z.org_unit_id in mine}


# --------------------------------------------------------------------------- what an admin may touch

#: A role may grant roles up to its own rank, never above (defined here only). Approvers and
#: operators can do different things, neither more than the other; only admins administer.
ROLE_RANK = {"editor": 1, "operator": 2, "approver": 2, "admin": 3}


def may_grant_role(granter: User, role: str) -> bool:
    return role in ROLE_RANK and ROLE_RANK[role] <= ROLE_RANK.get(granter.role, 0)


def scope_refusal(s: Session, user: User, org_unit_id: str | None) -> str | None:
    """Why ``user`` may not place something (a user, zone, org unit) at ``org_unit_id`` (None:
    the whole tree), or None when it is inside their subtree."""
    if user.org_unit_id is None:
        return None
    if org_unit_id is None:
        return "the whole tree (no org unit) is above your scope; choose an org unit of your ward"
    if org_unit_id not in subtree(s, user.org_unit_id):
        return f"org unit {org_unit_id} belongs to another ward"
    return None


def manages_user(s: Session, admin: User, target: User) -> bool:
    """An admin manages accounts of their subtree whose role does not outrank theirs."""
    return can_see_org(s, admin, target.org_unit_id) and (
        ROLE_RANK.get(target.role, 0) <= ROLE_RANK.get(admin.role, 0))


def unit_zones(s: Session, node_id: str) -> list[str]:
    return sorted(s.exec(select(NodeZone.zone_id).where(NodeZone.node_id == node_id)).all())


def manages_zones(s: Session, user: User, zone_ids: list[str]) -> bool:
    """A unit in these zones is the user's to change: every zone is in their subtree (a ward user
    needs at least one: a unit without zones belongs to the top, and so does a unit shared
    with another ward)."""
    mine = visible_zones(s, user)
    if mine is None:
        return True
    return bool(zone_ids) and set(zone_ids) <= mine


# --------------------------------------------------------------------------- audit


def audit(s: Session, username: str, action: str, target: str = "", detail: str = "") -> None:
    s.add(AuditEntry(username=username, action=action, target=target[:200], detail=detail[:1000]))
    s.commit()
    logger.info("audit: %s %s %s %s", username, action, target, detail)


def initial_approval(b: Bulletin, user: User) -> None:
    """A new bulletin's approval state: an approver's or an admin's is approved by its author
    (recorded); anyone else's (an editor's, an operator's emergency) is a draft."""
    b.org_unit_id = user.org_unit_id
    if user.role not in CAN_APPROVE:
        b.approval, b.approved_sha256, b.approved_spoken_text = "draft", None, None
    else:
        b.approval, b.decided_by, b.decided_at = "approved", user.username, now_ms()
        b.approved_sha256 = b.audio_sha256  # bound to the audio it has (controller/binding.py)
