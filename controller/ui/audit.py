"""Nhật ký (issue 14): the audit log on the phone, for admins (as ``GET /api/audit``): who did what
when, filtered by person, kind of action and period, 50 a page, actions in words
(controller/ui/audit_names.py), airing events with their bulletin, zones by name, outcome
(controller/ui/audit_events.py), times in ward time."""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

from controller.accounts.audit_query import AuditFilter, audit_rows, day_ms
from controller.accounts.models import User
from controller.accounts.scope import subtree
from controller.fleet.models import Zone
from controller.ui import audit_names as names
from controller.ui.audit_details import named_detail
from controller.ui.audit_events import event
from controller.ui.i18n import T
from controller.ui.render import Page, PageDep
from scheduler import TIMEZONE

router = APIRouter(include_in_schema=False)

PER_PAGE = 50


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _people(p: Page) -> list[str]:
    """The accounts the admin's log covers (for the person filter's suggestions)."""
    assert p.user is not None
    q = select(User.username).order_by(col(User.username))
    if p.user.org_unit_id is not None:
        q = q.where(col(User.org_unit_id).in_(subtree(p.s, p.user.org_unit_id)))
    return list(p.s.exec(q.limit(500)).all())


@router.get("/audit", response_class=HTMLResponse)
def audit_page(p: PageDep, who: str = "", kind: str = "", since: str = "", until: str = "",
               page: int = 1) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    t = T[p.lang]
    if p.user.role != "admin":
        return p.render("audit.html", "audit", allowed=False, rows=[], kinds=[], people=[], form={}, bad=[],
                        page_no=1, prev_q="", next_q="")
    first, last = _day(since), _day(until)
    bad = [t["au_bad_date"]] if (since and first is None) or (until and last is None) else []
    if first and last and last < first:
        bad.append(t["au_bad_range"])
        first = last = None
    if kind and kind not in names.KINDS:
        bad.append(t["au_bad_kind"])
        kind = ""
    page = min(max(page, 1), 100_000)
    f = AuditFilter(username=who.strip()[:100] or None, actions=names.patterns(kind) if kind else (),
                    since_ms=day_ms(first), until_ms=day_ms(last, after=True))
    found = audit_rows(p.s, p.user, f, offset=(page - 1) * PER_PAGE, limit=PER_PAGE + 1)
    zones = {z.id: z.name for z in p.s.exec(select(Zone)).all()}
    rows = []
    for r in found[:PER_PAGE]:
        said = named_detail(r.action, r.detail, p.lang, zones)
        obj, result = event(r.action, r.detail, p.lang, zones) or (
            names.target_text(r.action, r.target, p.lang),
            said if said is not None else names.result_text(r.action, r.detail, p.lang))
        rows.append({"at": f"{datetime.fromtimestamp(r.at / 1000, TIMEZONE):%d/%m/%Y %H:%M:%S}",
                     "who": r.username, "what": names.action_name(r.action, p.lang),
                     "kind": names.kind_of(r.action) or "other", "target": obj, "result": result})
    form = {"who": who.strip()[:100], "kind": kind, "since": first.isoformat() if first else "",
            "until": last.isoformat() if last else ""}
    q = {k: v for k, v in form.items() if v}
    i = 0 if p.lang == "vi" else 1
    return p.render("audit.html", "audit", allowed=True, rows=rows, form=form, bad=bad, page_no=page,
                    kinds=[(k, v[1 + i]) for k, v in names.KINDS.items()], people=_people(p),
                    prev_q=urlencode({**q, "page": page - 1}) if page > 1 else "",
                    next_q=urlencode({**q, "page": page + 1}) if len(found) > PER_PAGE else "")
