"""Jinja2 environment (autoescaped), the page user from the session cookie, and shared queries."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session, col, select

from controller.accounts.models import User
from controller.accounts.scope import visible_zones
from controller.accounts.sessions import COOKIE, find_session
from controller.api.deps import ServicesDep
from controller.fleet.models import RETIRED, Node, NodeZone, Zone
from controller.services import Services
from controller.ui.assets import asset
from controller.ui.audit_details import reapproval_reason
from controller.ui.i18n import T, pick
from scheduler import TIMEZONE

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")  # autoescape on for .html

_JS_KEYS = ("network_error", "waiting_unit", "confirmed", "not_confirmed", "reconnecting",
            "emergency_confirm", "saved", "retry", "approved", "rejected", "submitted", "draft", "live",
            "login_wrong", "too_many", "error_generic", "forbidden", "invalid_input")
_NO_STORE = {"Cache-Control": "no-store"}


@dataclass
class Page:
    request: Request
    sv: Services
    s: Session
    user: User | None
    csrf: str
    lang: str

    def render(self, name: str, page: str, extra: dict[str, str] | None = None, **ctx: Any) -> HTMLResponse:
        """``name`` rendered; ``extra``: more strings for the page's script (beside :data:`_JS_KEYS`)."""
        t = T[self.lang]
        return templates.TemplateResponse(self.request, name, {
            "t": t, "lang": self.lang, "user": self.user, "csrf": self.csrf, "page": page,
            "js_strings": {**{k: t[k] for k in _JS_KEYS}, **errors_text(t), **(extra or {})}, **ctx},
            headers=_NO_STORE)


def errors_text(t: dict[str, str]) -> dict[str, str]:
    """The sentences for the API's error codes (``err_<code>``), for the pages' scripts."""
    return {k: v for k, v in t.items() if k.startswith("err_")}


def _page(request: Request, sv: ServicesDep) -> Iterator[Page | Response]:
    """The logged-in page context, or a redirect to the login page."""
    lang = pick(request.cookies.get("lang"), request.query_params.get("lang"))
    with sv.db.session() as s:
        token = request.cookies.get(COOKIE)
        found = find_session(s, token) if token else None
        if found is None:
            nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            yield RedirectResponse("/login?" + urlencode({"next": nxt}), status_code=303)
            return
        user, row = found
        if user.must_change_password and request.url.path != "/password":
            # a one-time password: a new one before anything else (docs/ui.md, Accounts)
            nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            yield RedirectResponse("/password?" + urlencode({"next": nxt}), status_code=303)
            return
        yield Page(request, sv, s, user, row.csrf, lang)


PageDep = Annotated[Page | Response, Depends(_page)]


@dataclass
class UnitRow:
    id: str
    name: str
    zones: list[str]
    status: str
    alarm: str
    lat: float | None
    lon: float | None
    telemetry: dict[str, Any]
    last_seen: int | None
    hw: str = ""  # what the unit said it is at its last birth
    fw: str = ""


def units(p: Page, zone: str | None = None, state: str | None = None) -> list[UnitRow]:
    assert p.user is not None
    mine = visible_zones(p.s, p.user)
    zmap: dict[str, list[str]] = {}
    for nz in p.s.exec(select(NodeZone).order_by(col(NodeZone.zone_id))).all():
        zmap.setdefault(nz.node_id, []).append(nz.zone_id)
    out = []
    for n in p.s.exec(select(Node).where(col(Node.status) != RETIRED).order_by(col(Node.id))).all():
        zs = zmap.get(n.id, [])
        if mine is not None and not mine.intersection(zs):
            continue
        if zone and zone not in zs:
            continue
        st = p.sv.presence.status(n.id)
        if state and st != state:
            continue
        live = p.sv.presence.view(n.id)
        out.append(UnitRow(n.id, n.name, zs, st, (live.alarm if live else "") or n.alarm, n.lat, n.lon,
                           dict(live.telemetry if live and live.telemetry else n.telemetry or {}),
                           live.last_seen_ms if live and live.last_seen_ms else n.last_seen,
                           *(live.board if live and any(live.board) else (n.hw, n.fw))))
    return out


def zones(p: Page) -> list[Zone]:
    assert p.user is not None
    mine = visible_zones(p.s, p.user)
    return [z for z in p.s.exec(select(Zone).order_by(col(Zone.id))).all() if mine is None or z.id in mine]


def when(ms: int | None) -> str:
    """Epoch ms → 'dd/mm HH:MM' ward time."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=TIMEZONE).strftime("%d/%m %H:%M")


templates.env.filters["when"] = when
templates.env.filters["reapproval"] = reapproval_reason  # why a bulletin is back in the queue, in words
templates.env.globals["asset"] = asset


def same_site_path(target: str) -> str:
    """``target`` when it is a path on this site, else ``/`` (no open redirect after login).

    Browsers drop tabs and newlines inside a URL, read ``\\`` as ``/`` and ignore leading
    control characters, so ``/%09/evil.example`` (a tab) or ``/\\evil.example`` would leave the site: any
    control character, space or backslash refuses the target, as does anything with a scheme or
    a host (``//evil``, ``https://evil``)."""
    if not target.startswith("/") or target.startswith("//") or len(target) > 2000:
        return "/"
    if any(ch <= " " or ch in "\\\x7f" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs")
           for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    if any(unquote(seg) in (".", "..") for seg in parts.path.split("/")):  # /.//evil is //evil
        return "/"
    return target
