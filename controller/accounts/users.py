"""Creating users."""

from __future__ import annotations

import secrets

from sqlmodel import Session, select

from controller.accounts.auth import hash_password
from controller.accounts.models import OrgUnit, User
from controller.accounts.passwords import password_problem
from controller.accounts.roles import (
    ROLES,
)

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
    one_time = password is None
    password = password or secrets.token_urlsafe(12)
    user = User(username=username, password_hash=hash_password(password), role=role, org_unit_id=org_unit_id,
                must_change_password=one_time)
    s.add(user)
    s.commit()
    s.refresh(user)
    return user, password
