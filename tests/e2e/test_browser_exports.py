"""The history screen's exports, downloaded in the browser (issue 14: "CSV/XLSX exports have English
headers and codes, zone ids, truncated titles, no year, dates as text: make them a report a ward
chairman can sign"), in Chromium at 360 × 740 against a real server, Mosquitto and a simulated
unit, as an operator: the CSV and the XLSX links of *Lịch sử* give Vietnamese headers, the zone
by name, the whole title, the class and state in words, a real date with its year (a date cell in
the XLSX), and the XLSX ends with the two signature blocks."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from devices.broker import BrokerProcess
from tests.conftest import ADMIN
from tests.e2e.helpers import air, bulletin, provision, sim, wait_broadcast, wait_online
from tests.e2e.phonecheck import assert_fits
from tests.e2e.test_browser import Server, phone

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]

TITLE = "Thông báo lịch tiêm phòng vắc-xin cho trẻ em dưới năm tuổi tại nhà văn hóa tổ dân phố số một"


async def download(page: Any, link: str) -> bytes:
    async with page.expect_download() as info:
        await page.click(link)
    path = await (await info.value).path()
    return await asyncio.to_thread(Path(path).read_bytes)


async def test_history_exports_are_a_report_in_vietnamese(server: Server, browser: Any,
                                                          mosquitto: BrokerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"tdp1": ["tdp1-01"]})
        unit = sim("tdp1-01", mosquitto.port)
        await unit.start()
        try:
            await wait_online(api, ["tdp1-01"], timeout=30)
            b = await bulletin(api, "Sáng mai tiêm phòng tại nhà văn hóa.", title=TITLE)
            bid = await air(api, b["id"], {"zones": ["tdp1"]})
            await wait_broadcast(api, bid, 90)
            r = await api.post("/api/users", json={"username": "vanhanh", "role": "operator"})
            page = await phone(browser, server, "vanhanh", r.json()["password"])
            await page.goto(server.url + "/history")
            # the chart per zone: by name, readable words (it was a tiny SVG with "tdp1", cut-off labels
            # and "min"), and a healthy ward's units online most of the time (counted from when added)
            zone = page.locator("#zonechart li[data-zone=tdp1]")
            assert await zone.locator("b").inner_text() == "Tổ dân phố tdp1"
            words = await zone.inner_text()
            m = re.search(r"Thời lượng phát: \d+,\d phút\s+Cụm loa trực tuyến: (\d+)% thời gian", words)
            assert m and int(m.group(1)) >= 50, words
            await assert_fits(page, ["main button", "main a.btn"], [])

            text = (await download(page, "a[href^='/api/reports/broadcasts.csv']")).decode("utf-8-sig")
            rows = list(csv.DictReader(io.StringIO(text)))
            head = text.splitlines()[0]
            assert head.startswith(
                "STT,Thời gian phát,Tiêu đề bản tin,Nội dung bản tin,Loại tin,Trạng thái"), head
            row = next(x for x in rows if x["Mã lượt phát"] == bid)
            assert row["Tiêu đề bản tin"] == TITLE  # whole, not cut
            assert row["Khu vực phát"] == "Tổ dân phố tdp1" and row["Loại tin"] == "Thường", row
            assert row["Trạng thái"] == "Hoàn tất" and row["Đã phát"] == "1", row
            assert datetime.strptime(row["Thời gian phát"], "%Y-%m-%d %H:%M").year >= 2026, row

            xlsx = await download(page, "a[href^='/api/reports/broadcasts.xlsx']")
            book = openpyxl.load_workbook(io.BytesIO(xlsx))
            sheet = book.worksheets[0]
            assert sheet.title == "Lượt phát" and sheet.cell(1, 1).value == "BÁO CÁO CÁC LƯỢT PHÁT THANH"
            values = [[c for c in r if c is not None] for r in sheet.iter_rows(values_only=True)]
            header = next(i for i, r in enumerate(values) if r[:1] == ["STT"])
            first = values[header + 1]
            assert isinstance(first[1], datetime) and first[2] == TITLE, first  # a real date cell
            assert ["NGƯỜI LẬP BIỂU", "XÁC NHẬN CỦA LÃNH ĐẠO UBND PHƯỜNG"] in values
            assert [ws.title for ws in book.worksheets] == ["Lượt phát", "Phát trực tiếp", "Tiếp sóng"]
            await page.context.close()
        finally:
            await unit.stop()
