"""The phone web app's screens (server-rendered; actions go through the JSON API with CSRF)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

import tts
from controller.accounts.roles import CAN_AIR, CAN_APPROVE, CAN_EMERGENCY
from controller.accounts.sessions import COOKIE, find_session
from controller.airing.models import Broadcast, BroadcastStatus, Delivery, DeliveryState
from controller.airing.summary import ENDED_BY_OPERATOR, DeliveryRow, Summary, online_from, summarize
from controller.api.deps import ServicesDep
from controller.api.scope import broadcast_for, node_for, visible_bulletin_ids
from controller.bulletins.emergency_templates import TEMPLATES
from controller.bulletins.models import Bulletin, BulletinSpeech
from controller.fleet.models import Node, Zone
from controller.schedules.agenda import build_agenda
from controller.ui import accounts, assets, audit, calendar, dictionary, fleet, relay
from controller.ui import dashboard as dash
from controller.ui.calendar import slot_title
from controller.ui.i18n import DELIVERY_REASONS, T, pick
from controller.ui.render import Page, PageDep, errors_text, same_site_path, templates, units, when, zones
from controller.ui.telemetry import readable
from devices.protocol import now_ms

router = APIRouter(include_in_schema=False)


def summary_of(p: Page, bc: Broadcast) -> Summary:
    """What happened to ``bc`` so far (controller/airing/summary.py)."""
    rows = [DeliveryRow(d.node_id, d.state, d.reason)
            for d in p.s.exec(select(Delivery).where(Delivery.broadcast_id == bc.id)).all()]
    return summarize(bc, rows, online_from(p.sv.presence.status), now_ms())


def outcome_text(p: Page, bc: Broadcast) -> str:
    """What happened to ``bc`` so far, in the page's language."""
    sm = summary_of(p, bc)
    return sm.text_vi if p.lang == "vi" else sm.text_en


def titles(p: Page, rows: list[Broadcast]) -> dict[int, str]:
    ids = {bc.bulletin_id for bc in rows}
    if not ids:
        return {}
    return {b.id: b.title for b in p.s.exec(select(Bulletin).where(col(Bulletin.id).in_(ids))).all()
            if b.id is not None}


def visible_broadcasts(p: Page, *statuses: str, limit: int = 20) -> list[Broadcast]:
    assert p.user is not None
    q = select(Broadcast)
    if statuses:
        q = q.where(col(Broadcast.status).in_(statuses))
    ids = visible_bulletin_ids(p.s, p.user)
    if ids is not None:
        q = q.where(col(Broadcast.bulletin_id).in_(ids))
    return list(p.s.exec(q.order_by(col(Broadcast.air_at)).limit(limit)).all())


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, sv: ServicesDep, next: str = "/") -> Response:
    lang = pick(request.cookies.get("lang"), request.query_params.get("lang"))
    t = T[lang]
    safe_next = same_site_path(next)
    token = request.cookies.get(COOKIE)
    if token:
        with sv.db.session() as s:
            if find_session(s, token) is not None:
                return Response(status_code=303, headers={"Location": safe_next})
    return templates.TemplateResponse(request, "login.html", {
        "t": t, "lang": lang, "user": None, "csrf": "", "page": "login", "next": safe_next,
        "js_strings": {**{k: t[k] for k in ("network_error", "login_wrong", "too_many", "error_generic",
                                            "forbidden", "invalid_input")}, **errors_text(t)}})


@router.get("/", response_class=HTMLResponse)
def dashboard(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    us = units(p)
    counts = Counter(u.status for u in us)
    active = [(bc, summary_of(p, bc)) for bc in visible_broadcasts(
        p, BroadcastStatus.SENDING.value, BroadcastStatus.ACTIVE.value, limit=50)]
    playing = [(bc, sm) for bc, sm in active if sm.groups["playing"]]  # a unit sounds it now
    scheduled = visible_broadcasts(p, BroadcastStatus.SCHEDULED.value, limit=5)
    waiting = [(bc, sm) for bc, sm in active if sm.state == "waiting"]  # aired; offline units waited for
    coming = [bc for bc, sm in active
              if not sm.groups["playing"] and sm.state in ("sending", "ready", "airing")]
    scheduled += coming  # sent ahead of its play_at or still on its way: next, not on air
    names = titles(p, [bc for bc, _ in playing + waiting] + scheduled)
    znames = dash.zone_names(p)
    mine = {z.id for z in zones(p)}
    upcoming: list[tuple[float, str, str, str]] = [
        ((bc.play_at or bc.air_at) / 1000, when(bc.play_at or bc.air_at), names.get(bc.bulletin_id, ""),
         dash.where_text(p, bc.targets, bc.targets.get("nodes") or [], znames))
        for bc in scheduled]
    for z in build_agenda(p.s, days=1)["zones"]:
        if z["zone"] in mine:
            for it in z["items"][:5]:
                at = datetime.fromisoformat(it["at"])
                title = slot_title(it, p.lang)
                upcoming.append((at.timestamp(), at.strftime("%d/%m %H:%M"), title, z["name"]))
    upcoming.sort()
    pending = 0
    if p.user.role in CAN_APPROVE:
        ids = visible_bulletin_ids(p.s, p.user)
        q = select(Bulletin).where(Bulletin.approval == "submitted")
        pending = sum(1 for b in p.s.exec(q).all() if ids is None or b.id in ids)
    return p.render("dashboard.html", "dashboard", counts={k: counts.get(k, 0) for k in
                                                           ("online", "offline", "unknown", "shutdown")},
                    playing=[{"id": bc.id, "title": names.get(bc.bulletin_id, bc.id), "priority": bc.priority,
                              "zones": dash.where_text(p, bc.targets, bc.targets.get("nodes") or [], znames),
                              "tally": sm.text_vi if p.lang == "vi" else sm.text_en} for bc, sm in playing],
                    on_air=dash.on_air(p, {u.id for u in us}), offline=dash.offline_units(p, us),
                    failed=dash.failed_broadcasts(p),
                    waiting=[{"id": bc.id, "title": names.get(bc.bulletin_id, bc.id),
                              "tally": sm.text_vi if p.lang == "vi" else sm.text_en} for bc, sm in waiting],
                    upcoming=[{"when": w, "title": t, "zone": z} for _, w, t, z in upcoming[:8]],
                    alarms=[u for u in us if u.alarm], pending=pending)


PER_PAGE = 100  # a province's 2,000 units stay well under 150 KB per screen


@router.get("/units", response_class=HTMLResponse)
def units_page(p: PageDep, zone: str | None = None, state: str | None = None, page: int = 1) -> Response:
    if not isinstance(p, Page):
        return p
    every = sorted(units(p, zone or None, state or None),  # offline first, the longest gone first
                   key=lambda u: (_STATE_ORDER.get(u.status, 1), u.last_seen or 0, u.id))
    pages = max(1, -(-len(every) // PER_PAGE))
    page = min(max(page, 1), pages)
    us = every[(page - 1) * PER_PAGE: page * PER_PAGE]
    placed = [u for u in us if u.lat is not None and u.lon is not None]
    box = None
    if placed:
        lats = [u.lat for u in placed if u.lat is not None]
        lons = [u.lon for u in placed if u.lon is not None]
        box = (min(lats), max(lats), min(lons), max(lons))
    points = []
    for u in placed:
        assert box is not None and u.lat is not None and u.lon is not None
        x = 10 + 320 * ((u.lon - box[2]) / ((box[3] - box[2]) or 1))
        y = 10 + 180 * (1 - (u.lat - box[0]) / ((box[1] - box[0]) or 1))
        points.append({"id": u.id, "name": u.name or u.id, "x": round(x, 1), "y": round(y, 1),
                       "status": u.status})
    assert p.user is not None
    zs = zones(p)
    return p.render("units.html", "units", units=us, zones=zs, zone=zone or "", state=state or "",
                    zone_names={z.id: z.name for z in zs},
                    points=points, total=len(every), page_no=page, pages=pages,
                    since={u.id: fleet.ago(p.lang, u.last_seen) for u in us},
                    is_admin=p.user.role == "admin", step=broker_step(p), extra=fleet_strings(p))


@router.get("/units/{node_id}", response_class=HTMLResponse)
def unit_page(node_id: str, p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    found = [u for u in units(p) if u.id == node_id]
    if not found:
        node_for(p.s, p.user, node_id)  # 403 for another ward's unit
        raise HTTPException(404, f"unknown unit {node_id}")
    zs = zones(p)
    return p.render("unit.html", "units", u=found[0], zones=zs, zone_names={z.id: z.name for z in zs},
                    is_admin=p.user.role == "admin",
                    since=fleet.ago(p.lang, found[0].last_seen), step=broker_step(p), extra=fleet_strings(p),
                    tel=readable(p.lang, found[0].telemetry), tel_on=readable(p.lang, {"power": True})[0][2],
                    tel_off=readable(p.lang, {"power": False})[0][2])


_STATE_ORDER = {"offline": 0, "unknown": 1, "shutdown": 2, "online": 3}
_FLEET_KEYS = ("u_created", "u_secret", "u_need_zone", "u_retire_confirm", "u_retired", "saved", "online",
               "amp_off", "cmd_timeout", "cmd_offline", "cmd_error", "cmd_power_off", "cmd_unknown")


def fleet_strings(p: Page) -> dict[str, str]:
    return {k: T[p.lang][k] for k in _FLEET_KEYS}


def broker_step(p: Page) -> str:
    """The exact command that makes the broker accept a new unit's account (or forget a retired one)."""
    st = p.sv.settings
    db = ' --database-url "$LOAPHUONG_DATABASE_URL"' if st.database_url else ""
    return (f"loaphuong mqtt-config --out {st.mqtt.config_dir} --data-dir {st.data_dir.resolve()}{db}"
            ' && kill -HUP "$(pidof mosquitto)"')


_VOICES = {"vi": ("Giọng miền Bắc", "Northern accent"),
           "vi-vn-x-central": ("Giọng miền Trung", "Central accent"),
           "vi-vn-x-south": ("Giọng miền Nam", "Southern accent")}


def voice_name(voice: str, lang: str) -> str:
    """A voice as staff know it (espeak's Vietnamese voices by region; another engine's by name)."""
    return _VOICES[voice][0 if lang == "vi" else 1] if voice in _VOICES else voice


@router.get("/compose", response_class=HTMLResponse)
def compose_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    cfg = p.sv.settings.tts
    others = [v for v in tts.get_engine(cfg.engine).voices if v != cfg.voice]
    return p.render("compose.html", "compose", default_voice=voice_name(cfg.voice, p.lang),
                    voices=[(v, voice_name(v, p.lang)) for v in others],
                    extra={k: T[p.lang][k] for k in ("l_record", "l_stop_rec", "l_recording", "l_no_mic",
                                                             "c_rec_saved", "warn_unaccented", "warn_scripts",
                                                             "warn_fallback", "warn_other")})


@router.get("/bulletins", response_class=HTMLResponse)
def bulletins_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    q = select(Bulletin).order_by(col(Bulletin.id).desc()).limit(50)
    ids = visible_bulletin_ids(p.s, p.user)
    if ids is not None:
        q = q.where(col(Bulletin.id).in_(ids))
    rows = list(p.s.exec(q).all())
    said = {x.bulletin_id: x.spoken_text for x in p.s.exec(
        select(BulletinSpeech).where(col(BulletinSpeech.bulletin_id).in_([b.id for b in rows]))).all()}
    return p.render("bulletins.html", "bulletins", bulletins=rows, spoken=said, zones=zones(p),
                    zone_units=zone_units(p), extra=_air_strings(p))


_AIR_KEYS = ("air_confirm", "air_need_zone", "units_count", "emergency_need_text", "reject_reason",
             "reject_need_reason", "b_delete_confirm", "b_deleted", "b_duplicated")


def _air_strings(p: Page) -> dict[str, str]:
    return {k: T[p.lang][k] for k in _AIR_KEYS}


def zone_units(p: Page) -> dict[str, list[str]]:
    """Each visible zone's units (what a confirmation counts before airing)."""
    out: dict[str, list[str]] = {z.id: [] for z in zones(p)}
    for u in units(p):
        for z in u.zones:
            if z in out:
                out[z].append(u.id)
    return out


@router.get("/broadcasts/{broadcast_id}", response_class=HTMLResponse)
def broadcast_page(broadcast_id: str, p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    bc = broadcast_for(p.s, p.user, broadcast_id)
    b = p.s.get(Bulletin, bc.bulletin_id)
    t = T[p.lang]
    rows = [DeliveryRow(d.node_id, d.state, d.reason)
            for d in p.s.exec(select(Delivery).where(Delivery.broadcast_id == bc.id)).all()]
    sm = summarize(bc, rows, online_from(p.sv.presence.status), now_ms())
    names = {n.id: n.name or n.id for n in p.s.exec(select(Node).where(
        col(Node.id).in_([r.node_id for r in rows]))).all()}  # units and zones by name, not by id
    zone_names = {z.id: z.name for z in p.s.exec(select(Zone)).all()}
    zone_list = [t["all_zones"]] if bc.targets.get("all") else [
        zone_names.get(z, z) for z in bc.targets.get("zones", [])]
    return p.render("broadcast.html", "history", bc=bc, title=b.title if b else bc.id, unit_names=names,
                    zone_list=zone_list,
                    states={k: t.get(k, k) for k in [*DeliveryState, *BroadcastStatus, ENDED_BY_OPERATOR,
                                                      *DELIVERY_REASONS]},
                    outcome=sm.text_vi if p.lang == "vi" else sm.text_en, can_end=p.user.role in CAN_AIR,
                    can_stop=p.user.role in CAN_AIR | CAN_EMERGENCY,
                    extra={k: t[k] for k in ("bc_stop_confirm", "bc_stopped", "bc_already_over")},
                    waiting=sm.groups["waiting_offline"] > 0 and bc.status == BroadcastStatus.ACTIVE.value)


@router.get("/emergency", response_class=HTMLResponse)
def emergency_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    i = 0 if p.lang == "vi" else 1
    tpls = [{"key": t.key, "name": t.name[i], "text": t.text} for t in TEMPLATES]
    # None: not rendered ahead here (tts.prerender_emergency off), so nothing is claimed
    ready = ({t.key for t in TEMPLATES} <= p.sv.templates.ready) if p.sv.settings.tts.prerender_emergency \
        else None
    return p.render("emergency.html", "emergency", zones=zones(p), zone_units=zone_units(p), tpls=tpls,
                    ready=ready, extra={**_air_strings(p), "tpl_used": T[p.lang]["tpl_used"]})


router.include_router(relay.router)  # the relay screen (tiếp sóng): /relay, /relay/items
router.include_router(accounts.router)  # tài khoản (/accounts) and đổi mật khẩu (/password)
router.include_router(fleet.router)  # zones, relay presets, audio library, alerts
router.include_router(calendar.router)  # the calendar: a week / a month of what airs where
router.include_router(dictionary.router)  # từ điển phát âm
router.include_router(audit.router)  # nhật ký
router.include_router(assets.router)  # versioned static files, the manifest, the service worker
