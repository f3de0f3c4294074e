"""Screens of the ward's kit (issue 14): the zone page (power, volume, timed windows), relay
presets, the audio library and the in-app alerts; plus "since when" in words for the units list."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlmodel import col, select

from controller.accounts.models import AlertAck
from controller.accounts.roles import CAN_CONTROL, CAN_WRITE_BULLETINS
from controller.api.library import visible_items
from controller.api.presets import visible_presets
from controller.api.scope import zone_for
from controller.fleet.models import Zone, ZoneWindow
from controller.ui import dashboard as dash
from controller.ui.i18n import T
from controller.ui.render import Page, PageDep, units
from devices.protocol import now_ms

router = APIRouter(include_in_schema=False)


def ago(lang: str, ms: int | None, now: int | None = None) -> str:
    """'5 phút trước' / '2 giờ trước' / '3 ngày trước' (or the English) for a time in ms."""
    t = T[lang]
    if ms is None:
        return t["u_never"]
    mins = max(0, ((now or now_ms()) - ms) // 60_000)
    if mins < 1:
        return t["ago_now"]
    if mins < 60:
        return t["ago_min"].format(n=mins)
    if mins < 48 * 60:
        return t["ago_hour"].format(n=mins // 60)
    return t["ago_day"].format(n=mins // (24 * 60))


def _strings(p: Page, *keys: str) -> dict[str, str]:
    return {k: T[p.lang][k] for k in keys}


@router.get("/zones/{zone_id}", response_class=HTMLResponse)
def zone_page(zone_id: str, p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    z = p.s.get(Zone, zone_id)
    if z is None:
        raise HTTPException(404, f"unknown zone {zone_id}")
    zone_for(p.s, p.user, zone_id)
    members = units(p, zone_id)
    windows = p.s.exec(select(ZoneWindow).where(ZoneWindow.zone_id == zone_id)
                       .order_by(col(ZoneWindow.on_at))).all()
    return p.render("zone.html", "units", z=z, members=members, windows=windows,
                    can_control=p.user.role in CAN_CONTROL,
                    extra=_strings(p, "z_off_confirm", "z_result", "z_delete_confirm", "z_need_day", "saved",
                                   "z_pause", "z_resume"))


@router.get("/presets", response_class=HTMLResponse)
def presets_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    if p.user.role != "admin":
        return Response(status_code=303, headers={"Location": "/relay"})
    return p.render("presets.html", "relays", presets=visible_presets(p.s, p.user),
                    extra=_strings(p, "p_delete_confirm", "saved"))


@router.get("/library", response_class=HTMLResponse)
def library_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    return p.render("library.html", "library", items=visible_items(p.s, p.user),
                    can_write=p.user.role in CAN_WRITE_BULLETINS,
                    extra=_strings(p, "l_added", "l_used", "l_delete_confirm", "l_no_mic", "l_recording",
                                   "l_record", "l_stop_rec"))


def alerts(p: Page) -> list[dict[str, str]]:
    """What the officer should know now and has not acknowledged: units offline (longest first),
    units with an alarm, broadcasts of the last 24 h not played on some units."""
    assert p.user is not None and p.user.id is not None
    t = T[p.lang]
    us = units(p)
    out = [{"key": f"offline:{u.id}:{u.last_seen or 0}", "kind": "offline", "href": f"/units/{u.id}",
            "text": t["a_offline"].format(u=u.name or u.id,
                                          ago=t["u_since"].format(ago=ago(p.lang, u.last_seen)))}
           for u in sorted((u for u in us if u.status == "offline"), key=lambda u: u.last_seen or 0)]
    out += [{"key": f"alarm:{u.id}:{u.alarm}", "kind": "alarm", "href": f"/units/{u.id}",
             "text": t["a_alarm"].format(u=u.name or u.id, x=t.get("alarm_" + u.alarm, u.alarm))}
            for u in us if u.alarm]
    for f in dash.failed_broadcasts(p):
        what = (t["dash_failed"].format(n=f.failed, total=f.total) if f.failed else t["dash_send_failed"])
        out.append({"key": f"failed:{f.id}", "kind": "failed", "href": f"/broadcasts/{f.id}",
                    "text": t["a_failed"].format(t=f.title, x=what) + f" · {f.when}"})
    seen = set(p.s.exec(select(AlertAck.key).where(AlertAck.user_id == p.user.id)).all())
    return [a for a in out if a["key"] not in seen]


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    return p.render("alerts.html", "alerts", items=alerts(p))


@router.get("/alerts/items")
def alert_items(p: PageDep) -> Response:
    """The unacknowledged alerts, for the header's badge (polled while a page is open)."""
    if not isinstance(p, Page):
        return JSONResponse({"detail": "log in"}, status_code=401)
    items = alerts(p)
    return JSONResponse({"n": len(items), "badge": T[p.lang]["a_badge"].format(n=len(items)), "items": items},
                        headers={"Cache-Control": "no-store"})
