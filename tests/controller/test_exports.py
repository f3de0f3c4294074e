"""The history exports are a report a ward chairman can sign (issue 14): Vietnamese headers, zones
and units by name, the bulletin's full title and text, real dates with the year (XLSX date cells,
CSV ISO dates with a UTF-8 BOM), state words instead of codes, English on request. The files are
read back (csv, openpyxl). No broker runs here: the broadcast's outcome is written to its rows."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from controller.airing.models import Broadcast, Delivery
from devices.broker import free_port
from scheduler import TIMEZONE
from tests.conftest import make_settings, running_controller

pytestmark = pytest.mark.timeout(90)

TEXT = ("Thông báo của Ủy ban nhân dân phường: sáng Chủ nhật ngày 6 tháng 12 năm 2026, toàn thể nhân dân "
        "tổ dân phố Đông Hải tham gia tổng vệ sinh môi trường tại nhà văn hóa.")


@pytest.fixture
async def aired(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """A ward with two named zones; a long bulletin aired to both, played on 2 units of 3."""
    async with running_controller(make_settings(tmp_path, free_port())) as (app, admin):
        for zid, name in (("dh", "Tổ dân phố Đông Hải"), ("kt", "Khu tập thể Kỳ Đồng")):
            assert (await admin.post("/api/zones", json={"id": zid, "name": name})).status_code == 201
        for nid, zid in (("dh-01", "dh"), ("dh-02", "dh"), ("kt-01", "kt")):
            r = await admin.post("/api/nodes", json={"id": nid, "zones": [zid], "name": f"Loa {nid.upper()}"})
            assert r.status_code == 201, r.text
        r = await admin.post("/api/bulletins", json={"text": TEXT})
        assert r.status_code == 201, r.text
        b = r.json()
        body = {"bulletin_id": b["id"], "target": {"zones": ["dh", "kt"]}}
        r = await admin.post("/api/broadcasts", json=body)
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        with app.state.services.db.session() as s:
            bc = s.get(Broadcast, bid)
            assert bc is not None
            bc.status = "done"
            for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bid)).all():
                d.state = "failed" if d.node_id == "kt-01" else "played"
                s.add(d)
            s.add(bc)
            s.commit()
            at = datetime.fromtimestamp((bc.play_at or bc.air_at) / 1000, tz=TIMEZONE).replace(tzinfo=None)
        yield admin, {"id": bid, "title": b["title"], "at": at}


def _table(text: str) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(text)))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


async def test_csv_is_vietnamese_with_names_iso_dates_and_a_bom(
        aired: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    admin, bc = aired
    r = await admin.get("/api/reports/broadcasts.csv")
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads diacritics
    assert 'filename="luot-phat.csv"' in r.headers["content-disposition"]
    (row,) = _table(r.content.decode("utf-8-sig"))
    assert list(row)[:8] == ["STT", "Thời gian phát", "Tiêu đề bản tin", "Nội dung bản tin", "Loại tin",
                             "Trạng thái", "Kết quả", "Khu vực phát"]
    assert row["STT"] == "1" and row["Thời gian phát"] == f"{bc['at']:%Y-%m-%d %H:%M}"  # ISO, with the year
    assert row["Tiêu đề bản tin"] == bc["title"] and row["Nội dung bản tin"] == TEXT  # the whole text
    assert row["Khu vực phát"] == "Tổ dân phố Đông Hải, Khu tập thể Kỳ Đồng"  # names, not dh / kt
    assert row["Loại tin"] == "Thường" and row["Trạng thái"] == "Hoàn tất"  # words, not normal / done
    assert (row["Số cụm loa"], row["Đã phát"], row["Không phát được"]) == ("3", "2", "1")
    assert row["Mã lượt phát"] == bc["id"] and row["Người thực hiện"] == "admin"
    en = _table((await admin.get("/api/reports/broadcasts.csv", params={"lang": "en"})).text.lstrip("\ufeff"))
    assert en[0]["Status"] == "Done" and en[0]["Class"] == "Normal"
    assert en[0]["Aired at"] == row["Thời gian phát"]


async def test_xlsx_has_date_cells_names_words_and_signature_lines(
        aired: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    from openpyxl import load_workbook

    admin, bc = aired
    r = await admin.get("/api/reports/broadcasts.xlsx", params={"from": "2026-01-01"})
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["Lượt phát", "Phát trực tiếp", "Tiếp sóng"]
    ws = wb["Lượt phát"]
    assert ws["A1"].value == "BÁO CÁO CÁC LƯỢT PHÁT THANH"
    assert str(ws["A2"].value).startswith("Từ ngày 01/01/2026 đến ngày ")
    head = [c.value for c in ws[4]]
    assert head[:4] == ["STT", "Thời gian phát", "Tiêu đề bản tin", "Nội dung bản tin"]
    row = dict(zip(head, [c.value for c in ws[5]], strict=True))
    cell = ws.cell(5, head.index("Thời gian phát") + 1)
    assert isinstance(cell.value, datetime) and cell.value == bc["at"]  # a real date cell, ward time
    assert cell.number_format == "dd/mm/yyyy hh:mm" and cell.value.year >= 2026
    assert row["Nội dung bản tin"] == TEXT and row["Tiêu đề bản tin"] == bc["title"]
    assert row["Khu vực phát"] == "Tổ dân phố Đông Hải, Khu tập thể Kỳ Đồng"
    assert row["Trạng thái"] == "Hoàn tất" and row["Loại tin"] == "Thường"
    assert row["Số cụm loa"] == 3 and row["Đã phát"] == 2 and row["Không phát được"] == 1  # numbers
    below = [c.value for r in ws.iter_rows(min_row=6) for c in r if c.value]
    assert "NGƯỜI LẬP BIỂU" in below and "XÁC NHẬN CỦA LÃNH ĐẠO UBND PHƯỜNG" in below
    assert "(Ký, ghi rõ họ tên)" in below
    assert [c.value for c in wb["Tiếp sóng"][4]][:3] == ["STT", "Bắt đầu", "Kết thúc"]


async def test_the_history_screen_names_zones(aired: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    admin, _ = aired
    r = await admin.post("/api/login", json={"username": "admin", "password": "test-password-1"})
    assert r.status_code == 200
    html = (await admin.get("/history")).text  # the session cookie the login set
    assert "Tổ dân phố Đông Hải, Khu tập thể Kỳ Đồng" in html
