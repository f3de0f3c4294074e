"""What an anonymous visitor reaches, and what stored text can do to the exports (issue 11, items
12, 13, 22), performed over real HTTP against a controller on a Mosquitto configured by
``loaphuong mqtt-config``.

* 22: anonymous: only ``/api/livez`` ({"status": "ok"}, nothing else); ``/api/health``,
  ``/openapi.json``, ``/docs``, ``/redoc`` need a login, and answer a logged-in user in full.
* 12: a control character in a bulletin title or a relay URL cannot break the CSV / XLSX
  exports (they answer 200, openpyxl reads the value back), and formula text stays quoted.
* 13: ``/login?next=...`` never sends the user off the controller, whatever the spelling.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.conftest import ADMIN
from tests.security.ward import secure_stack

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

ZONES = {"x1": ["x1-01"]}
PRIVATE = ("/api/health", "/openapi.json", "/docs", "/redoc")
PUBLIC = ("/api/livez", "/api/login")


async def test_anonymous_visitor_gets_liveness_only() -> None:
    async with secure_stack(ZONES) as st, st.anon() as anon, st.admin() as admin:
        live = await anon.get("/api/livez")
        assert live.status_code == 200 and live.json() == {"status": "ok"}  # and nothing more
        broker = f"127.0.0.1:{st.broker_port}"
        for path in PRIVATE:
            r = await anon.get(path)
            assert r.status_code in (401, 303), (path, r.status_code)
            if r.status_code == 303:  # a browser page: to the login screen, on this controller
                assert r.headers["location"].startswith("/login?"), path
            for secret in (broker, '"paths"', "swagger", "redoc", "mqtt"):
                assert secret not in r.text, (path, secret)
        wrong = httpx.BasicAuth(ADMIN[0], "not-the-password")
        for path in PRIVATE:
            assert (await anon.get(path, auth=wrong)).status_code == 401, path
        # FastAPI's own unauthenticated routes are gone, not just hidden
        assert (await anon.get("/docs/oauth2-redirect")).status_code == 404

        # what holds afterwards: staff still get all of it, by Basic and by the session cookie
        health = (await admin.get("/api/health")).json()
        assert health["status"] == "ok" and health["mqtt"]["connected"] is True
        assert broker in health["mqtt"]["broker"]
        spec = (await admin.get("/openapi.json")).json()
        assert "/api/livez" in spec["paths"] and "/api/health" in spec["paths"]
        # every documented operation but liveness and the login form refuses an anonymous caller
        swept = 0
        for path, ops in spec["paths"].items():
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            for method in ops:
                if path in PUBLIC or method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                    continue
                r = await anon.request(method.upper(), concrete, json={})
                assert r.status_code in (401, 403), (method, path, r.status_code, r.text[:200])
                swept += 1
        assert swept > 40
        assert "swagger" in (await admin.get("/docs")).text.lower()
        login = await anon.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert login.status_code == 200
        assert (await anon.get("/api/health")).status_code == 200  # the cookie now
        docs = await anon.get("/docs")
        assert docs.status_code == 200 and "/openapi.json" in docs.text
        assert (await anon.get("/openapi.json")).json()["info"]["title"] == "loaphuong"


CONTROL = "".join(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)))


async def test_control_characters_cannot_break_the_exports() -> None:
    from openpyxl import load_workbook

    from controller.relays.models import Relay

    title = "Họp\x01tổ\x0b" + CONTROL[:4] + "dân phố"
    async with secure_stack(ZONES) as st, st.admin() as admin:
        r = await admin.post("/api/bulletins", json={"title": title, "text": "Họp tổ dân phố lúc 7 giờ."})
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        formula = await admin.post("/api/bulletins", json={"title": "\x01=HYPERLINK(1)", "text": "Họp tổ."})
        assert formula.status_code == 201
        for b in (bid, formula.json()["id"]):
            r = await admin.post("/api/broadcasts", json={"bulletin_id": b, "target": {"all": True}})
            assert r.status_code == 201, r.text
        # a relay whose URL holds a control character: through the API when it takes it, else the
        # row as an older controller could have stored it (an address literal: nothing is resolved,
        # and it is never fetched: it would start tomorrow)
        url = "http://198.51.100.7/live\x01.mp3"
        start = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        r = await admin.post("/api/relays", json={"url": url, "target": {"all": True}, "start_at": start,
                                                  "duration_s": 60})
        if r.status_code != 201:
            assert r.status_code == 422, r.text  # refused with a clear error is fine too
            with st.app.state.services.db.session() as s:
                s.add(Relay(id="relay-ctl", url=url, mode="node_fetch", target={"all": True}, nodes=["x1-01"],
                            state="ended", reason="stopped", created_by="admin"))
                s.commit()

        for path in ("/api/reports/broadcasts.csv", "/api/reports/relays.csv", "/api/reports/live.csv"):
            r = await admin.get(path)
            assert r.status_code == 200, (path, r.text[:200])
            assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", r.text), path
        csv_text = (await admin.get("/api/reports/broadcasts.csv")).text
        assert "Họp␁tổ␋␀␁␂␃dân phố" in csv_text and "␁=HYPERLINK(1)" in csv_text
        assert "198.51.100.7/live␁.mp3" in (await admin.get("/api/reports/relays.csv")).text

        for _ in range(2):  # not "500 for good": every later export works as well
            r = await admin.get("/api/reports/broadcasts.xlsx")
            assert r.status_code == 200, r.text[:300]
            wb = load_workbook(io.BytesIO(r.content))
            cells = {c.value for row in wb["Lượt phát"].iter_rows() for c in row}
            assert "Họp␁tổ␋␀␁␂␃dân phố" in cells and "␁=HYPERLINK(1)" in cells
            urls = {c.value for row in wb["Tiếp sóng"].iter_rows() for c in row}
            assert "http://198.51.100.7/live␁.mp3" in urls

        # formula injection is still refused: a title that starts a formula is quoted
        plain = await admin.post("/api/bulletins", json={"title": "=cmd|' /C calc'!A0", "text": "Họp tổ."})
        body = {"bulletin_id": plain.json()["id"], "target": {"all": True}}
        r = await admin.post("/api/broadcasts", json=body)
        assert r.status_code == 201
        wb = load_workbook(io.BytesIO((await admin.get("/api/reports/broadcasts.xlsx")).content))
        titles = {c.value for c in wb["Lượt phát"]["C"]}
        assert "'=cmd|' /C calc'!A0" in titles and "=cmd|' /C calc'!A0" not in titles
        assert ",'=cmd|' /C calc'!A0," in (await admin.get("/api/reports/broadcasts.csv")).text


BAD_NEXT = ["/\t/evil.example/", "//evil.example/", "/\\evil.example/", "https://evil.example/",
            "\t//evil.example", "/\n/evil.example", " //evil.example", "/\\/evil.example",
            "//evil.example@127.0.0.1/", "http:/evil.example", "javascript:alert(1)", "/.//evil.example",
            "/%2e//evil.example", "/\u3000/evil.example", "/\x7f/evil.example", "\\\\evil.example"]


def _lands_on(base: str, location: str) -> str:
    """Where a browser goes: WHATWG drops tabs / newlines and reads a backslash as a slash."""
    cleaned = re.sub("[\t\n\r]", "", location).replace("\\", "/").strip("\x00- ")
    return urlsplit(urljoin(base + "/", cleaned)).netloc


async def test_login_never_redirects_off_site() -> None:
    async with secure_stack(ZONES) as st, st.anon() as c:
        host = urlsplit(st.url).netloc
        raw = ["%2F%09%2Fevil.example%2F", "/%09/evil.example/", "%2F%2Fevil.example", "%5C%5Cevil.example",
               "/%5Cevil.example", "https:%2F%2Fevil.example", "%2F%0D%0A%2Fevil.example"]
        # before login: the page's script goes to the next address after a successful login
        for bad in BAD_NEXT:
            page = await c.get("/login", params={"next": bad})
            assert page.status_code == 200
            target = json.loads(re.search(r"location\.href = (\".*?\");", page.text).group(1))  # type: ignore[union-attr]
            assert target == "/" and _lands_on(st.url, target) == host, (bad, target)
            assert "evil.example" not in page.text
        for enc in raw:
            page = await c.get(f"/login?next={enc}")
            assert "evil.example" not in page.text, enc
        # logged in: /login answers 303 to next
        r = await c.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200
        for bad in BAD_NEXT:
            r = await c.get("/login", params={"next": bad})
            assert r.status_code == 303 and _lands_on(st.url, r.headers["location"]) == host, bad
            assert r.headers["location"] == "/"
        for enc in raw:
            r = await c.get(f"/login?next={enc}")
            assert r.status_code == 303 and r.headers["location"] == "/", enc
        # what must hold: a next address on the site is kept (query included)
        good = "/history?status=done&from=2026-01-01"
        r = await c.get("/login", params={"next": good})
        assert r.status_code == 303 and r.headers["location"] == good
        assert (await c.get(good)).status_code == 200
