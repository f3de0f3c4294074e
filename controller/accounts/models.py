"""Tables of accounts: users, org units (wards/provinces), browser sessions, the audit log."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from controller.core.columns import ms_column


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=100)
    password_hash: str = Field(max_length=200)
    role: str = Field(default="admin", max_length=16)  # admin | editor | approver | operator
    active: bool = True
    created_at: int = ms_column(nullable=False)
    org_unit_id: str | None = Field(default=None, max_length=63)  # None: the whole tree (0005)
    #: a one-time password (made by an admin or the CLI) is in use: the web app asks for a new one (0011)
    must_change_password: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


# --------------------------------------------------------------------------- accounts (0005)


class OrgUnit(SQLModel, table=True):
    """A node of the administrative tree (province → district → ward ...)."""

    id: str = Field(primary_key=True, max_length=63)
    name: str = Field(max_length=200)
    parent_id: str | None = Field(default=None, foreign_key="orgunit.id", max_length=63)


class UserSession(SQLModel, table=True):
    """A browser session: only the SHA-256 of the cookie value is stored."""

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    csrf: str = Field(max_length=64)
    created_at: int = ms_column(nullable=False)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class AuditEntry(SQLModel, table=True):
    """One state-changing action: who, what, on which object, with what result."""

    id: int | None = Field(default=None, primary_key=True)
    at: int = ms_column(nullable=False, index=True)
    username: str = Field(default="", max_length=100)
    action: str = Field(max_length=64)
    target: str = Field(default="", max_length=200)
    detail: str = Field(default="", max_length=1000)


class AlertAck(SQLModel, table=True):
    """An in-app alert a user has acknowledged (0014); ``key`` names the alert and its occurrence
    (``offline:<unit>:<since ms>``, ``failed:<broadcast>``, ``alarm:<unit>:<alarm>``), so a new
    occurrence shows again."""

    user_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    key: str = Field(primary_key=True, max_length=200)
    at: int = ms_column(nullable=False)
