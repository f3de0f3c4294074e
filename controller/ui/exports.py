"""CSV / XLSX exports of the history: a report a ward chairman can sign (issue 14).

Vietnamese headers (English with ``lang=en``), zones and units by name, the bulletin's full title
and text, real dates and state words, never codes. XLSX: a title, the period, the table (times
are date cells with the year, ``dd/mm/yyyy hh:mm`` in ward time) and the signature lines; CSV:
UTF-8 with a BOM (so Excel shows the diacritics), one header row, ISO 8601 times in ward time
(``2026-12-03 06:00``). Cells a spreadsheet would evaluate are quoted; control characters are
shown as their Unicode pictures, so no stored text can break an export.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from controller.api.deps import SessionDep, UserDep
from controller.api.responses import COMMON_ERRORS, errors
from controller.ui.i18n import T, pick
from controller.ui.reports import history_rows, live_rows, relay_rows
from devices.protocol import now_ms
from scheduler import TIMEZONE

export_router = APIRouter(prefix="/api/reports", tags=["reports"], responses=errors(*COMMON_ERRORS))

Row = dict[str, Any]
Getter = Callable[[Row, dict[str, str]], Any]


@dataclass(frozen=True)
class Col:
    """One column: its header (the i18n key ``xh_<key>``), how a row gives its value, its kind."""

    key: str
    get: Getter
    kind: str = "text"  # text | number | time
    width: int = 14


def _f(key: str) -> Getter:
    return lambda r, t: r[key]


def _word(key: str, prefix: str = "") -> Getter:
    """A code turned into the language's word (``t[prefix + code]``), the code itself if unknown."""
    return lambda r, t: t.get(prefix + str(r[key]), str(r[key])) if r[key] else ""


def _live_state(r: Row, t: dict[str, str]) -> str:
    words = {"live": t["on_air"], "waiting": t["waiting"], "ended": t["ended"]}
    return words.get(str(r["state"]), str(r["state"]))


BROADCAST_COLS = (
    Col("no", lambda r, t: r["_no"], "number", 6), Col("aired_at", _f("_at"), "time", 17),
    Col("title", _f("title"), width=40), Col("text", _f("text"), width=60),
    Col("class", _word("class"), width=11), Col("status", _word("status"), width=14),
    Col("outcome", lambda r, t: r["_outcome_" + t["lang_code"]], width=40),
    Col("zones", _f("zones"), width=28), Col("units", _f("units"), "number", 8),
    Col("played", _f("played"), "number", 8), Col("failed", _f("failed"), "number", 8),
    Col("offline", _f("offline"), "number", 8), Col("other", _f("other"), "number", 8),
    Col("made_by", _f("created_by")), Col("broadcast", _f("broadcast"), width=20),
)
LIVE_COLS = (
    Col("no", lambda r, t: r["_no"], "number", 6), Col("opened_at", _f("_opened"), "time", 17),
    Col("started_at", _f("_started"), "time", 17), Col("ended_at", _f("_ended"), "time", 17),
    Col("duration_s", _f("duration_s"), "number", 10), Col("speaker", _f("user")),
    Col("class", _word("class"), width=11), Col("zones", _f("zones"), width=28),
    Col("units", _f("units"), "number", 8), Col("units_heard", _f("units_heard"), width=30),
    Col("refused", _f("refused"), "number", 8), Col("state", _live_state),
    Col("reason", _word("reason", "end_"), width=24), Col("audio_s", _f("audio_s"), "number", 10),
    Col("audio", _f("audio"), width=30), Col("archive_note", _f("archive_note"), width=24),
    Col("session", _f("session"), width=20),
)
RELAY_COLS = (
    Col("no", lambda r, t: r["_no"], "number", 6), Col("started_at", _f("_started"), "time", 17),
    Col("ended_at", _f("_ended"), "time", 17), Col("duration_s", _f("duration_s"), "number", 10),
    Col("url", _f("url"), width=40), Col("mode", _word("mode", "relay_"), width=20),
    Col("class", _word("class"), width=11), Col("zones", _f("zones"), width=28),
    Col("units", _f("units"), "number", 8), Col("state", _word("state")),
    Col("reason", _word("reason", "end_"), width=24), Col("made_by", _f("created_by")),
    Col("relay", _f("relay"), width=20),
)

# what an XLSX cell (XML 1.0) cannot hold: C0 controls but tab/newline/CR, lone surrogates, U+FFFE/F
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _visible(m: re.Match[str]) -> str:
    """A control character as its Unicode picture (U+0001 → ␁), anything else as U+FFFD."""
    code = ord(m.group())
    return chr(0x2400 + code) if code < 0x20 else "\ufffd"


def _cell(v: Any) -> Any:
    """Every cell is writable (a control character in a title or URL is shown as its picture, so
    the export cannot break) and no formula injection: text a spreadsheet would evaluate is quoted."""
    if not isinstance(v, str):
        return v
    v = _ILLEGAL.sub(_visible, v)
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


def ward_time(ms: int | None) -> datetime | None:
    """Epoch ms → the ward's wall-clock time (naive: a spreadsheet has no time zones)."""
    return None if not ms else datetime.fromtimestamp(ms / 1000, tz=TIMEZONE).replace(tzinfo=None)


def _values(cols: tuple[Col, ...], rows: Iterable[Row], t: dict[str, str]) -> Iterable[list[Any]]:
    for i, r in enumerate(rows, 1):
        r["_no"] = i
        out: list[Any] = []
        for c in cols:
            v = c.get(r, t)
            out.append(ward_time(v) if c.kind == "time" else ("" if v is None else _cell(v)))
        yield out


def _csv(name: str, cols: tuple[Col, ...], rows: list[Row], t: dict[str, str]) -> Response:
    """UTF-8 with BOM (for Excel), times as ISO 8601 in ward time."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([t["xh_" + c.key] for c in cols])
    for vals in _values(cols, rows, t):
        w.writerow([f"{v:%Y-%m-%d %H:%M}" if isinstance(v, datetime) else v for v in vals])
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _lang(request: Request) -> dict[str, str]:
    return T[pick(request.cookies.get("lang"), request.query_params.get("lang"))]


_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}
LANG_Q = Query(None, pattern="^(vi|en)$", description="headers and words in Vietnamese (default) or English")


@export_router.get("/broadcasts.csv", response_class=Response, responses=_CSV)
def export_csv(request: Request, s: SessionDep, user: UserDep, status: str | None = None,
               zone: str | None = None, since: date | None = Query(None, alias="from"),
               until: date | None = Query(None, alias="to"), lang: str | None = LANG_Q) -> Response:
    """The broadcast log (filters as on the history screen) as CSV (UTF-8 with BOM, for Excel)."""
    t = _lang(request)
    rows = history_rows(s, user, status, zone, since, until, limit=100_000, lang=t["lang_code"])
    return _csv("luot-phat", BROADCAST_COLS, rows, t)


@export_router.get("/live.csv", response_class=Response, responses=_CSV)
def export_live_csv(request: Request, s: SessionDep, user: UserDep, zone: str | None = None,
                    since: date | None = Query(None, alias="from"),
                    until: date | None = Query(None, alias="to"), lang: str | None = LANG_Q) -> Response:
    """The live sessions from a phone (period and zone as on the history screen) as CSV."""
    t = _lang(request)
    rows = live_rows(s, user, zone, since, until, 100_000, t["lang_code"])
    return _csv("phat-truc-tiep", LIVE_COLS, rows, t)


@export_router.get("/relays.csv", response_class=Response, responses=_CSV)
def export_relays_csv(request: Request, s: SessionDep, user: UserDep, zone: str | None = None,
                      since: date | None = Query(None, alias="from"),
                      until: date | None = Query(None, alias="to"), lang: str | None = LANG_Q) -> Response:
    """The relays (tiếp sóng) as CSV."""
    t = _lang(request)
    rows = relay_rows(s, user, zone, since, until, 100_000, t["lang_code"])
    return _csv("tiep-song", RELAY_COLS, rows, t)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER_ROW = 4  # title, period, a blank row, then the table's header


def _sheet(wb: Any, title: str, cols: tuple[Col, ...], rows: list[Row], t: dict[str, str],
           period: str) -> None:
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    ws.append([t["xs_title_" + title]])
    ws.append([period])
    ws.append([])
    ws.append([t["xh_" + c.key] for c in cols])
    ws["A1"].font = Font(bold=True, size=14)
    for cell in ws[HEADER_ROW]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for vals in _values(cols, rows, t):
        ws.append(vals)
    for i, c in enumerate(cols, 1):
        ws.column_dimensions[get_column_letter(i)].width = c.width
        if c.kind == "time":
            for (cell,) in ws.iter_rows(min_row=HEADER_ROW + 1, min_col=i, max_col=i):
                cell.number_format = "dd/mm/yyyy hh:mm"
    ws.freeze_panes = ws.cell(HEADER_ROW + 1, 1)
    ws.append([])
    ws.append([])
    ws.append([t["xs_made_by"], None, None, None, t["xs_approved_by"]])
    ws.append([t["xs_sign"], None, None, None, t["xs_sign"]])


def period_text(t: dict[str, str], since: date | None, until: date | None) -> str:
    made = datetime.fromtimestamp(now_ms() / 1000, tz=TIMEZONE)
    lo = f"{since:%d/%m/%Y}" if since else "…"
    hi = f"{until:%d/%m/%Y}" if until else f"{made:%d/%m/%Y}"
    return t["xs_period"].format(lo=lo, hi=hi, made=f"{made:%d/%m/%Y %H:%M}")


@export_router.get("/broadcasts.xlsx", response_class=Response, responses={200: {"content": {XLSX: {}}}})
def export_xlsx(request: Request, s: SessionDep, user: UserDep, status: str | None = None,
                zone: str | None = None, since: date | None = Query(None, alias="from"),
                until: date | None = Query(None, alias="to"), lang: str | None = LANG_Q) -> Response:
    """The broadcast log as an Excel workbook (a sheet per kind: broadcasts, live sessions, relays),
    each with a title, the period, the table and the signature lines."""
    from openpyxl import Workbook

    t = _lang(request)
    code = t["lang_code"]
    wb = Workbook()
    assert wb.active is not None
    wb.remove(wb.active)
    period = period_text(t, since, until)
    _sheet(wb, "broadcasts", BROADCAST_COLS,
           history_rows(s, user, status, zone, since, until, limit=100_000, lang=code), t, period)
    _sheet(wb, "live", LIVE_COLS, live_rows(s, user, zone, since, until, 100_000, code), t, period)
    _sheet(wb, "relays", RELAY_COLS, relay_rows(s, user, zone, since, until, 100_000, code), t, period)
    for ws in wb.worksheets:  # the sheet's own name, in the language (the code names were for the build)
        ws.title = t["xs_sheet_" + ws.title]
    buf = io.BytesIO()
    wb.save(buf)
    return Response(buf.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": 'attachment; filename="bao-cao-phat-thanh.xlsx"'})
