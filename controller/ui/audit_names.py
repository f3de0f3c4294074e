"""What each audit entry means, in words (issue 14): the log's actions grouped into kinds with a
Vietnamese and an English name. An entry is either a named action (``login``, ``bulletin_approved``,
``dictionary_add``, …: controller/accounts/audit.py callers) or a state-changing request recorded
by the audit middleware (``POST /api/relays``, its status as the detail: controller/app.py);
both kinds map here. The airing events (a bulletin aired, a schedule fired, live sessions and
relays on air and ended) carry a JSON detail, put in words by controller/ui/audit_events.py.
Patterns are SQL LIKE patterns ('%' = anything), matched in order."""

from __future__ import annotations

import json
import re

from controller.ui.i18n import T

#: kind → (patterns, Vietnamese, English); the first kind whose pattern matches names an entry
KINDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "login": (("login", "POST /api/login"), "Đăng nhập", "Logged in"),
    "login_failed": (("login_failed",), "Đăng nhập sai mật khẩu", "Failed login"),
    "logout": (("logout", "POST /api/logout"), "Đăng xuất", "Logged out"),
    "password_failed": (("password_change_failed",), "Nhập sai mật khẩu hiện tại", "Wrong current password"),
    "password": (("password_change", "POST /api/me/password"), "Đổi mật khẩu", "Changed own password"),
    "password_reset": (("password_reset", "POST /api/users/%/password"), "Đặt lại mật khẩu",
                       "Reset a password"),
    "user_add": (("user_add", "POST /api/users"), "Tạo tài khoản", "Created an account"),
    "user_disable": (("user_disable",), "Khóa tài khoản", "Disabled an account"),
    "user_update": (("user_update", "PATCH /api/users/%"), "Sửa tài khoản", "Changed an account"),
    "org": (("org_unit_add", "POST /api/org-units", "zone_add", "POST /api/zones"),
            "Thêm đơn vị / khu vực", "Added an org unit / zone"),
    "submit": (("bulletin_submit", "POST /api/bulletins/%/submit"), "Gửi duyệt bản tin",
               "Submitted a bulletin"),
    "approve": (("bulletin_approved", "POST /api/bulletins/%/approve"), "Duyệt bản tin",
                "Approved a bulletin"),
    "reject": (("bulletin_rejected", "POST /api/bulletins/%/reject"), "Từ chối bản tin",
               "Rejected a bulletin"),
    "reapproval": (("bulletin_reapproval",), "Bản tin phải duyệt lại", "Bulletin back to approval"),
    "bulletin_delete": (("bulletin_delete", "DELETE /api/bulletins/%"), "Xóa bản tin", "Deleted a bulletin"),
    "bulletin_write": (("POST /api/bulletins", "PATCH /api/bulletins/%", "bulletin_duplicate",
                        "POST /api/bulletins/%/duplicate", "POST /api/bulletins/recordings"),
                       "Soạn / sửa bản tin", "Wrote / edited a bulletin"),
    "emergency": (("emergency_bypass",), "Phát khẩn cấp (không qua duyệt)", "Emergency (approval skipped)"),
    "emergency_refused": (("emergency_bypass_refused",), "Lịch khẩn cấp bị chặn (chưa duyệt)",
                          "Emergency schedule refused (not approved)"),
    "air_stop": (("POST /api/broadcasts/%/cancel", "broadcast_end_waiting",
                  "POST /api/broadcasts/%/end-waiting"),
                 "Dừng / thôi chờ lượt phát", "Stopped a broadcast"),
    "air": (("broadcast_air", "POST /api/broadcasts"), "Phát bản tin", "Aired a bulletin"),
    "schedule_fired": (("schedule_fired",), "Phát theo lịch", "Scheduled airing"),
    "live_start": (("live_start",), "Bắt đầu phát trực tiếp", "Live broadcast started"),
    "live_end": (("live_end",), "Kết thúc phát trực tiếp", "Live broadcast ended"),
    "relay_start": (("relay_start",), "Bắt đầu tiếp sóng", "Relay started"),
    "relay_end": (("relay_end",), "Kết thúc tiếp sóng", "Relay ended"),
    "schedule_add": (("POST /api/schedules",), "Tạo lịch phát", "Created a schedule"),
    "schedule_update": (("PATCH /api/schedules/%",), "Sửa / tạm dừng lịch phát", "Changed a schedule"),
    "schedule_delete": (("DELETE /api/schedules/%",), "Xóa lịch phát", "Deleted a schedule"),
    "relay": (("POST /api/relays", "DELETE /api/relays/%"), "Tiếp sóng", "Relay"),
    "commands": (("POST /api/nodes/%/commands", "POST /api/zones/%/commands"), "Điều khiển cụm loa",
                 "Unit command"),
    "alarm_clear": (("alarm_clear", "POST /api/nodes/%/clear-alarm"), "Xóa cảnh báo cụm loa",
                    "Cleared a unit alarm"),
    "node_retire": (("node_retire", "DELETE /api/nodes/%"), "Ngừng sử dụng cụm loa", "Retired a unit"),
    "node_add": (("node_add", "POST /api/nodes", "POST /api/nodes/%/credentials"), "Thêm cụm loa",
                 "Added a unit"),
    "node_update": (("node_update", "PATCH /api/nodes/%"), "Sửa cụm loa", "Changed a unit"),
    "windows": (("zone_window_%", "% /api/zones/%/windows", "% /api/zone-windows/%"),
                "Lịch bật / tắt tự động", "Power windows"),
    "presets": (("relay_preset_%", "% /api/relay-presets%"), "Đài tiếp sóng", "Relay presets"),
    "library": (("library_%", "% /api/library%"), "Kho âm thanh", "Audio library"),
    "dictionary": (("dictionary_%", "% /api/speech/dictionary%"), "Từ điển phát âm",
                   "Pronunciation dictionary"),
    "preview": (("POST /api/speech/preview", "POST /api/speech/normalize"), "Nghe thử", "Preview"),
    "alerts": (("POST /api/alerts/ack",), "Đánh dấu đã biết cảnh báo", "Acknowledged alerts"),
}
OTHER = ("Thao tác khác", "Other action")
_RX = [(k, [re.compile("^" + ".*".join(re.escape(x) for x in p.split("%")) + "$") for p in pats])
       for k, (pats, _, _) in KINDS.items()]
_TARGETS = {"bulletin": ("Bản tin", "Bulletin"), "broadcast": ("Lượt phát", "Broadcast"),
            "node": ("Cụm loa", "Unit"), "schedule": ("Lịch phát", "Schedule"),
            "dictionary": ("Từ điển", "Dictionary"), "zone": ("Khu vực", "Zone"),
            "window": ("Lịch bật / tắt", "Power window"), "preset": ("Đài tiếp sóng", "Relay preset"),
            "audio": ("Âm thanh", "Audio"), "relay": ("Tiếp sóng", "Relay")}


def kind_of(action: str) -> str | None:
    """The kind of an entry's action, or None for an action this list does not know."""
    return next((k for k, rxs in _RX if any(r.match(action) for r in rxs)), None)


def patterns(kind: str) -> tuple[str, ...]:
    """The SQL patterns of ``kind`` that no earlier kind claims first (``POST /api/broadcasts/%``
    is a stop, not an airing)."""
    return KINDS[kind][0] if kind in KINDS else ()


def action_name(action: str, lang: str) -> str:
    k = kind_of(action)
    names = KINDS[k][1:] if k else OTHER
    return names[0] if lang == "vi" else names[1]


def target_text(action: str, target: str, lang: str) -> str:
    """'Bản tin #5' for ``bulletin:5``; for a request entry the object's id from its path."""
    i = 0 if lang == "vi" else 1
    if ":" in target:
        what, _, ident = target.partition(":")
        if what in _TARGETS:
            top = ("toàn tỉnh" if i == 0 else "province") if ident == "top" else ident
            return f"{_TARGETS[what][i]} {'#' if ident.isdigit() else ''}{top}"
        return target
    if target:
        return target
    parts = action.split(" ", 1)[-1].split("/")[3:]  # after "", "api", the resource: its id, if any
    return next((f"#{x}" for x in parts if any(ch.isdigit() for ch in x)), "")


def result_text(action: str, detail: str, lang: str) -> str:
    """A request entry's status in words; a named entry's detail as written (an address in words)."""
    vi = lang == "vi"
    if " /api/" in action and detail.isdigit():
        code = int(detail)
        if code < 400:
            return "thành công" if vi else "done"
        return (f"bị từ chối ({code})" if vi else f"refused ({code})") if code < 500 else \
            (f"lỗi máy chủ ({code})" if vi else f"server error ({code})")
    if kind_of(action) in ("user_add", "user_update") and detail:
        return _account_change(detail, lang)
    if kind_of(action) == "login" and re.fullmatch(r"[0-9a-fA-F.:]+", detail):
        return f"từ {detail}" if vi else f"from {detail}"
    m = re.fullmatch(r"(?:(form|basic|live socket|password change) )?from (\S+)(?: \(\+(\d+) earlier.*\))?",
                     detail)
    if m:
        how = {"form": ("qua trang đăng nhập", "on the login page"), "basic": ("qua API", "over the API"),
               "live socket": ("qua trang phát trực tiếp", "from the live page"),
               "password change": ("khi đổi mật khẩu", "changing the password")}.get(m.group(1) or "")
        where = f"từ {m.group(2)}" if vi else f"from {m.group(2)}"
        if m.group(3):
            where += f" (+{m.group(3)} lần sai trước đó)" if vi else f" (+{m.group(3)} earlier failures)"
        return f"{how[0 if vi else 1]} {where}" if how else where
    return detail


def _account_change(detail: str, lang: str) -> str:
    """``role=editor org=w1`` or ``{"role": "editor", "active": false}`` in words."""
    t = T[lang]
    try:
        got = json.loads(detail) if detail.startswith("{") else dict(
            kv.split("=", 1) for kv in detail.split() if "=" in kv)
    except (ValueError, TypeError):
        return detail
    if not isinstance(got, dict):
        return detail
    out = []
    if got.get("role"):
        out.append(f"{t['role']}: {t.get('role_' + str(got['role']), str(got['role']))}")
    org = got.get("org") if "org" in got else got.get("org_unit_id", "")
    if org not in ("", None, "None"):
        out.append(f"{t['au_org']}: {org}")
    if "active" in got:
        out.append(t["au_enabled"] if got["active"] else t["au_disabled"])
    return " · ".join(out) or detail
