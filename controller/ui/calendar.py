"""Lịch phát as a calendar (issue 14): a week or a month of what airs where, expanded from the
schedules by the agenda (controller/schedules/agenda.py: the scheduler's own triggers, exception
days as skipped slots), one row per slot with the zones by name; the week prints as the ward's
weekly schedule (app.css ``@media print``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from controller.accounts.models import OrgUnit
from controller.accounts.roles import CAN_AIR
from controller.schedules.agenda import RELAY_TITLE, build_agenda, day_range
from controller.ui.i18n import T
from controller.ui.render import Page, PageDep, zones
from scheduler import TIMEZONE

router = APIRouter(include_in_schema=False)

DAY_NAMES = {"vi": ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"],
             "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]}
SHORT_DAYS = {"vi": ["T2", "T3", "T4", "T5", "T6", "T7", "CN"],
              "en": ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]}
_JS_KEYS = ("cal_skip_confirm", "cal_unskip_confirm", "saved")
MAX_PER_DAY = 40  # a day's rows on one screen (a province's wards print their own)


@dataclass
class Slot:
    at: datetime
    end: datetime
    title: str
    kind: str
    priority: str
    skipped: bool
    conflict: bool
    schedule_id: int = 0
    zones: list[str] = field(default_factory=list)


@dataclass
class Day:
    day: date
    label: str
    slots: list[Slot]
    today: bool
    in_month: bool = True


def slots_by_day(p: Page, first: date, last: date) -> dict[date, list[Slot]]:
    """The agenda of ``first``..``last`` for the user's zones, one slot per (schedule, time) with
    every zone it reaches by name."""
    start, end = day_range(first, last)
    mine = {z.id: z.name for z in zones(p)}
    merged: dict[tuple[int, str, int], Slot] = {}
    for z in build_agenda(p.s, start=start, end=end)["zones"]:
        if z["zone"] not in mine:
            continue
        for it in z["items"]:
            key = (it["schedule_id"], it["at"], it["repeat_index"])
            if key not in merged:
                title = slot_title(it, p.lang)
                merged[key] = Slot(datetime.fromisoformat(it["at"]).astimezone(TIMEZONE),
                                   datetime.fromisoformat(it["end"]).astimezone(TIMEZONE), title, it["kind"],
                                   it["priority"], it["status"] == "skipped", bool(it["conflicts"]),
                                   it["schedule_id"])
            merged[key].zones.append(mine[z["zone"]])
            merged[key].conflict = merged[key].conflict or bool(it["conflicts"])
    out: dict[date, list[Slot]] = {}
    for sl in sorted(merged.values(), key=lambda x: (x.at, x.title)):
        out.setdefault(sl.at.date(), []).append(sl)
    return out


def slot_title(item: dict[str, Any], lang: str) -> str:
    """An agenda item's title for a screen: a relay's 'Tiếp sóng / relay: URL' in the page's language."""
    title = str(item["title"])
    if item.get("kind") == "relay" and title.startswith(RELAY_TITLE):
        return f"{T[lang]['sch_relay_label']}: {title[len(RELAY_TITLE):]}"
    return title


def parse_day(raw: str | None) -> tuple[date, bool]:
    """(the day asked for, whether it was understood); today (ward time) when absent or bad."""
    today = datetime.now(TIMEZONE).date()
    if not raw:
        return today, True
    try:
        return date.fromisoformat(raw), True
    except ValueError:
        return today, False


def ward_name(p: Page) -> str:
    assert p.user is not None
    org = p.s.get(OrgUnit, p.user.org_unit_id) if p.user.org_unit_id else None
    return org.name if org else T[p.lang]["app"]


def _week(p: Page, d: date, today: date) -> tuple[list[Day], date, date, str]:
    monday = d - timedelta(days=d.weekday())
    sunday = monday + timedelta(days=6)
    found = slots_by_day(p, monday, sunday)
    days = [Day(x, f"{DAY_NAMES[p.lang][i]} {x:%d/%m}", found.get(x, [])[:MAX_PER_DAY], x == today)
            for i, x in enumerate(monday + timedelta(days=k) for k in range(7))]
    title = T[p.lang]["cal_week_of"].format(a=f"{monday:%d/%m/%Y}", b=f"{sunday:%d/%m/%Y}")
    return days, monday - timedelta(days=7), monday + timedelta(days=7), title


def _month(p: Page, d: date, today: date) -> tuple[list[Day], date, date, str]:
    first = d.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    grid_start = first - timedelta(days=first.weekday())
    last = nxt - timedelta(days=1)
    grid_end = last + timedelta(days=6 - last.weekday())
    found = slots_by_day(p, grid_start, grid_end)
    days = [Day(x, str(x.day), found.get(x, []), x == today, x.month == first.month)
            for x in (grid_start + timedelta(days=k) for k in range((grid_end - grid_start).days + 1))]
    prev = (first - timedelta(days=1)).replace(day=1)
    return days, prev, nxt, T[p.lang]["cal_month_of"].format(m=first.month, y=first.year)


@router.get("/calendar", response_class=HTMLResponse)
def calendar_page(p: PageDep, view: str = "week", d: str | None = None) -> Response:
    if not isinstance(p, Page):
        return p
    view = view if view in ("week", "month") else "week"
    day, understood = parse_day(d)
    today = datetime.now(TIMEZONE).date()
    days, prev, nxt, title = (_week if view == "week" else _month)(p, day, today)
    weeks: list[list[Day]] = [days[i:i + 7] for i in range(0, len(days), 7)] if view == "month" else []
    now = datetime.now(TIMEZONE)
    assert p.user is not None
    t = T[p.lang]
    ctx: dict[str, Any] = {"view": view, "days": days, "weeks": weeks, "prev": prev.isoformat(),
                           "next": nxt.isoformat(), "today": today.isoformat(), "day": day.isoformat(),
                           "title": title, "ward": ward_name(p), "short_days": SHORT_DAYS[p.lang],
                           "bad_day": not understood,
                           "printed": t["cal_printed"].format(at=f"{now:%d/%m/%Y %H:%M}"),
                           "can_skip": p.user.role in CAN_AIR}
    return p.render("calendar.html", "calendar", extra={k: t[k] for k in _JS_KEYS}, **ctx)
