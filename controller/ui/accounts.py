"""The accounts screen (tài khoản, admins) and one's own password (đổi mật khẩu, everyone)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

from controller.accounts.models import OrgUnit, User
from controller.accounts.roles import ROLE_RANK, ROLES
from controller.accounts.scope import subtree
from controller.ui.i18n import T
from controller.ui.render import Page, PageDep, same_site_path

router = APIRouter(include_in_schema=False)

_KEYS = ("pw_changed", "pw_mismatch", "pw_short", "pw_digits", "pw_has_name", "pw_same", "pw_weak",
         "pw_wrong_current", "acct_disable_confirm", "acct_reset_confirm", "acct_one_time", "acct_created",
         "acct_exists", "acct_disable", "acct_enable", "acct_active", "acct_disabled", "saved")


def _strings(p: Page) -> dict[str, str]:
    t = T[p.lang]
    return {k: t[k] for k in _KEYS}


@router.get("/password", response_class=HTMLResponse)
def password_page(p: PageDep, next: str = "/") -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    return p.render("password.html", "password", forced=p.user.must_change_password,
                    next=same_site_path(next), extra=_strings(p))


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    if p.user.role != "admin":
        return Response(status_code=303, headers={"Location": "/"})
    q = select(User).order_by(col(User.username))
    orgs = select(OrgUnit).order_by(col(OrgUnit.name))
    if p.user.org_unit_id is not None:
        mine = subtree(p.s, p.user.org_unit_id)
        q = q.where(col(User.org_unit_id).in_(mine))
        orgs = orgs.where(col(OrgUnit.id).in_(mine))
    rank = ROLE_RANK.get(p.user.role, 0)
    return p.render("accounts.html", "accounts", users=list(p.s.exec(q).all()),
                    orgs=list(p.s.exec(orgs).all()), roles=[r for r in ROLES if ROLE_RANK[r] <= rank],
                    top=p.user.org_unit_id is None, extra=_strings(p))
