"""The audit log's named details and a bulletin's reason to go back to approval, in words
(controller/ui/audit_details.py): what the code writes in English for logs and scripts is shown as
a Vietnamese phrase on a Vietnamese screen (zones by name), an English one on request."""

from __future__ import annotations

import re

from controller.ui.audit_details import named_detail, reapproval_reason

ZONES = {"tdp1": "Tổ dân phố 1", "tdp3": "Tổ dân phố 3"}
RAW = re.compile(r"zones=|org=|None|True|False|days=|unit\(s\)|from bulletin|audio:|broker|\bms\b")


def vi(action: str, detail: str) -> str:
    out = named_detail(action, detail, "vi", ZONES)
    assert out is not None and not RAW.search(out), (action, out)
    return out


def test_named_details_in_vietnamese_with_zone_names() -> None:
    assert vi("node_add", "zones=tdp1,tdp3") == "khu vực: Tổ dân phố 1, Tổ dân phố 3"
    assert vi("node_retire", "zones=tdp3; broker credentials revoked") == (
        "khu vực: Tổ dân phố 3 · đã thu hồi tài khoản kết nối")
    assert vi("node_update", '{"name": "Loa chợ", "zones": ["tdp1"]}') == "tên · khu vực: Tổ dân phố 1"
    assert vi("zone_add", "org=None") == "" and vi("zone_add", "org=w1") == "đơn vị: w1"
    assert vi("zone_window_add", "05:30-21:00 days=[0, 1, 6]") == "bật 05:30, tắt 21:00 (T2, T3, CN)"
    assert vi("zone_window_update", "enabled=False") == "tắt"
    assert vi("zone_window_delete", "zone=tdp1") == "khu vực: Tổ dân phố 1"
    assert vi("emergency_bypass", "aired as an emergency while draft (broadcast:bc-1)") == (
        "phát khi bản tin còn ở trạng thái “Nháp”")
    assert vi("emergency_bypass_refused", "schedule:4: set to air as an emergency by x, who …") == (
        "theo lịch phát #4 · người đặt lịch không còn quyền bỏ qua bước duyệt")
    assert vi("broadcast_end_waiting", "2 unit(s): a-1, a-2") == "2 cụm loa (a-1, a-2)"
    assert vi("library_add", "mp3 61200 ms") == "MP3 · 61 giây"
    assert vi("library_use", "audio:7") == "âm thanh #7 trong kho"
    assert vi("bulletin_duplicate", "from bulletin:5") == "bản sao của bản tin #5"
    assert vi("alarm_clear", "duplicate_id").startswith("Trùng mã")
    assert named_detail("dictionary_add", "Kẻ Sặt → kẻ sặt", "vi", ZONES) is None  # already words
    en = named_detail("node_retire", "zones=tdp3; broker credentials revoked", "en", ZONES)
    assert en == "zones: Tổ dân phố 3 · its broker account revoked"


def test_why_a_bulletin_is_back_in_the_queue_in_vietnamese() -> None:
    assert reapproval_reason("edited by bt1 (text, title) after approval", "vi") == (
        "bt1 đã sửa (nội dung, tiêu đề) sau khi bản tin được duyệt.")
    said = reapproval_reason("the pronunciation entry 'UBND' → 'ủy ban nhân dân' of the top (by qt) changed "
                             "its spoken text to: ủy ban nhân dân phường", "vi")
    assert said == ("Từ điển phát âm đã đổi: “UBND” đọc là “ủy ban nhân dân”. "
                    "Cách đọc mới: ủy ban nhân dân phường")
    kept = reapproval_reason("removing the pronunciation entry 'UBND' of w1 (by qt) changes its spoken text, "
                             "but it could not be rendered again (boom); the approved audio is kept", "vi")
    assert kept == "Từ điển phát âm đã bỏ mục “UBND”. Chưa đọc lại được; vẫn giữ âm thanh đã duyệt."
    assert reapproval_reason("something new", "vi") == "Xem chi tiết trong nhật ký của máy chủ."
    english = "edited by bt1 (text) after approval"
    assert reapproval_reason(english, "en") == english
