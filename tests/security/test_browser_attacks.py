"""What a web page of someone else can make a staff member's browser do (issue 11, items 10, 13),
performed for real: Debian's Chromium driven by Playwright, the controller over real HTTP /
WebSocket on a Mosquitto configured by ``loaphuong mqtt-config``, simulated units on their own
broker accounts, and the attacker's page served by its own web server on another port.

* 10: the browser holds both logins for the controller (Basic credentials it cached after the
  401 prompt, and the session cookie). The attacker's page (same site, another origin; and
  another site) opens ``ws://<controller>/api/live/ws`` and asks for an emergency to every unit:
  the handshake is refused; no live session is logged, no unit got a frame. The real
  ``/live.html`` in the same browser then goes live (cookie + the session's token).
* 13: logging in from ``/login?next=/%09/evil.example/`` lands on the controller.
* The login rules of the live socket, one by one, with a plain WebSocket client; a password
  guesser on the socket meets the API's login backoff and is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlmodel import select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from controller.accounts.models import AuditEntry
from controller.live.models import LiveLog
from controller.live.settings import LiveSettings
from tests.conftest import ADMIN
from tests.e2e.chromium import chromium
from tests.e2e.helpers import wait_for
from tests.e2e.serve import basic, next_msg, phone, talk
from tests.security.ward import Stack, secure_stack

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

FLAGS = (  # besides tests/e2e/chromium.py's
    # a microphone for /live.html without a prompt
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    # nothing leaves the machine, whatever a page (or a failed fix) asks for
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost")
ZONES = {"b1": ["b1-01", "b1-02"]}

ATTACK = """<!doctype html><meta charset="utf-8"><title>Xem phim miễn phí</title>
<script>
window.result = new Promise((resolve) => {
  const out = { opened: false, messages: [], code: null };
  const ws = new WebSocket("ws://%(ctl)s/api/live/ws");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    out.opened = true;
    ws.send(JSON.stringify({ type: "start", target: { all: true }, priority: "emergency" }));
    const pcm = new Int16Array(320);
    for (let i = 0; i < 320; i++) pcm[i] = Math.round(12000 * Math.sin(i / 4));
    let n = 0;
    const t = setInterval(() => {
      if (n++ > 150 || ws.readyState !== WebSocket.OPEN) { clearInterval(t); return; }
      ws.send(pcm.buffer);
    }, 20);
  };
  ws.onmessage = (e) => out.messages.push(typeof e.data === "string" ? e.data : "binary");
  ws.onclose = (e) => { out.code = e.code; resolve(out); };
  setTimeout(() => resolve(out), 10000);
});
</script>"""


@asynccontextmanager
async def attacker_site(html: str) -> AsyncIterator[str]:
    """Another web origin on 127.0.0.1 (its own port) that serves one page: ``html``."""
    body = html.encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                             b"Cache-Control: no-store\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(name="chromium")
async def chromium_fixture() -> AsyncIterator[Any]:
    async with chromium(*FLAGS) as b:
        yield b


async def _contain(ctx: Any, st: Stack, left: list[str]) -> None:
    """Every request of the context that would leave the controller / attacker is stopped here."""
    async def guard(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            await route.continue_()
        else:
            left.append(route.request.url)
            await route.abort()

    await ctx.route("**/*", guard)


async def _log_in(page: Any, st: Stack, next_path: str | None = None) -> None:
    await page.goto(st.url + "/login" + (f"?next={next_path}" if next_path else ""))
    await page.fill("#u", ADMIN[0])
    await page.fill("#p", ADMIN[1])
    await page.click("#go")


def _live_rows(st: Stack) -> list[LiveLog]:
    with st.app.state.services.db.session() as s:
        return list(s.exec(select(LiveLog)).all())


async def test_foreign_page_cannot_go_live_with_the_browsers_logins(chromium: Any) -> None:
    async with secure_stack(ZONES, record=True) as st:
        assert st.recorder is not None
        ctx = await chromium.new_context(http_credentials={"username": ADMIN[0], "password": ADMIN[1]},
                                         viewport={"width": 360, "height": 740}, locale="vi-VN")
        left: list[str] = []
        await _contain(ctx, st, left)
        page = await ctx.new_page()
        page.set_default_timeout(20_000)
        # the victim's browser: Basic credentials cached (answered the API's 401 prompt) ...
        r = await page.goto(st.url + "/api/nodes")
        assert r is not None and r.status == 200 and "b1-01" in await page.content()
        # ... and logged in to the web app (session cookie)
        await _log_in(page, st)
        await page.wait_for_url(st.url + "/")

        async with attacker_site(ATTACK % {"ctl": st.addr}) as evil:
            port = urlsplit(evil).port
            for origin in (evil, f"http://localhost:{port}"):  # same site other origin; other site
                before = len(st.recorder.handshakes)
                attack = await ctx.new_page()
                await attack.goto(origin + "/")
                out = await attack.evaluate("window.result")
                await attack.close()
                assert out["opened"] is False and out["messages"] == [], (origin, out)
                assert out["code"] == 1006, out  # the handshake failed
                tried = st.recorder.handshakes[before:]
                assert [h.get("origin") for h in tried] == [origin], tried  # the attack reached us
                if origin == evil:  # the browser did attach its logins: that is the attack
                    assert tried[0].get("authorization", "").startswith("Basic "), tried[0]
                    assert "lp_session=" in tried[0].get("cookie", ""), tried[0]
        # what holds: no live session was opened or logged, no unit received a frame
        assert _live_rows(st) == [] and st.frames_in() == 0
        assert not st.app.state.services.live_hub.sessions
        assert not any(u.live.active for u in st.units.values())

        # the legit page in the same browser still goes live: session cookie + the session's token
        await page.goto(st.url + "/live.html")
        await page.check("input[name=zone][value=b1]")
        await page.check("#toggle")
        await page.click("#talk")
        await page.wait_for_function("document.getElementById('status').textContent.includes('ĐANG PHÁT')")
        await wait_for(lambda: all(u.live.stats.frames_in > 0 for u in st.units.values()), 15,
                       "both units receive the live page's audio")
        legit = st.recorder.handshakes[-1]
        assert legit.get("origin") == st.url
        await page.click("#talk")  # toggle off: stop
        await wait_for(lambda: [r.state for r in _live_rows(st)] == ["ended"], 15, "the session logged")
        rows = _live_rows(st)
        assert [(r.user, r.priority) for r in rows] == [(ADMIN[0], "normal")]
        assert left == []
        await ctx.close()


async def test_login_in_the_browser_stays_on_the_controller(chromium: Any) -> None:
    async with secure_stack({"b2": ["b2-01"]}) as st:
        ctx = await chromium.new_context()
        left: list[str] = []
        await _contain(ctx, st, left)
        page = await ctx.new_page()
        page.set_default_timeout(20_000)
        for bad in ("/%09/evil.example/", "%2F%2Fevil.example%2F", "/%5Cevil.example/", "/%0A/evil.example"):
            await ctx.clear_cookies()
            await _log_in(page, st, bad)
            await page.wait_for_url(st.url + "/")  # the dashboard of the controller
            assert urlsplit(page.url).netloc == st.addr
            assert "evil.example" not in page.url
        # logged in already: /login?next=... answers 303, the browser stays here too
        await page.goto(st.url + "/login?next=/%09/evil.example/")
        assert urlsplit(page.url).netloc == st.addr and urlsplit(page.url).path == "/"
        assert left == []  # nothing was even requested from evil.example
        await ctx.close()


async def test_live_socket_login_rules() -> None:
    """Basic only from non-browser clients; a browser: cookie and the session's token; a foreign
    origin refused at the handshake, also with valid logins; a listed origin still needs the token."""
    allowed = "https://loa.example.vn"
    async with secure_stack(ZONES, live=LiveSettings(allowed_origins=[allowed])) as st, st.anon() as web:
        url = f"ws://{st.addr}/api/live/ws"
        login = await web.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert login.status_code == 200
        csrf = login.json()["csrf_token"]
        cookie = f"lp_session={web.cookies['lp_session']}"
        assert (await web.get("/api/live/token")).json() == {"csrf_token": csrf}
        async with st.admin() as admin:
            assert (await admin.get("/api/live/token")).json() == {"csrf_token": None}  # Basic: none needed
        start = {"type": "start", "target": {"zones": ["b1"]}}

        async def refused_at_handshake(headers: dict[str, str]) -> None:
            with pytest.raises(InvalidStatus) as exc:
                async with connect(url, additional_headers=headers):
                    pass
            assert exc.value.response.status_code == 403

        async def refused_after(headers: dict[str, str], body: dict[str, Any], why: str) -> None:
            async with connect(url, additional_headers=headers) as ws:
                with contextlib.suppress(ConnectionClosed):  # refused before the start: it closes at once
                    await ws.send(json.dumps(body))
                msg = await next_msg(ws, "error")
                assert why in msg["detail"], msg
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)  # and the socket is closed

        both = {"Authorization": basic(*ADMIN), "Cookie": cookie}
        for origin in ("http://evil.example", "null", f"http://{st.addr}.evil.example", "https://evil.example"):
            await refused_at_handshake({**both, "Origin": origin})
        # a browser on our own origin: cached Basic is no login; the cookie needs the token
        await refused_after({"Authorization": basic(*ADMIN), "Origin": st.url}, start, "login required")
        await refused_after({"Cookie": cookie, "Origin": st.url}, start, "CSRF")
        await refused_after({**both, "Origin": st.url}, {**start, "csrf": "not-the-token"}, "CSRF")
        await refused_after({"Cookie": cookie, "Origin": allowed}, start, "CSRF")  # listed origin: token too
        await refused_after({"Cookie": cookie}, start, "CSRF")  # a cookie without Origin: the same
        assert _live_rows(st) == [] and st.frames_in() == 0  # nothing of these went anywhere

        async def goes_live(headers: dict[str, str] | None, body: dict[str, Any]) -> None:
            if headers is not None:
                ws = await connect(url, additional_headers=headers)
                await ws.send(json.dumps(body))
            else:
                ws = await phone(st.addr, ADMIN, body["target"])
            await next_msg(ws, "state", state="live")
            await talk(ws, 200)
            await ws.send(json.dumps({"type": "stop"}))
            await next_msg(ws, "state", state="ended")
            await ws.close()

        # what holds: the page (cookie + token, own or listed origin) and scripts (Basic) go live
        await goes_live({"Cookie": cookie, "Origin": st.url}, {**start, "csrf": csrf})
        await goes_live({"Cookie": cookie, "Origin": allowed}, {**start, "csrf": csrf})
        await goes_live(None, start)
        await wait_for(lambda: len(_live_rows(st)) == 3 and all(r.state == "ended" for r in _live_rows(st)),
                       15, "three sessions logged")
        assert st.frames_in() > 0
        assert not any(u.live.active for u in st.units.values())

        # a password guesser on the socket meets the API's login backoff, and every guess is audited
        for i in range(5):
            await refused_after({"Authorization": basic(ADMIN[0], f"guess-{i}")}, start, "login required")
        await refused_after({"Authorization": basic(*ADMIN)}, start, "too many failed logins")  # even right
        with st.app.state.services.db.session() as s:
            failed = s.exec(select(AuditEntry).where(AuditEntry.action == "login_failed")).all()
        assert sum("live socket" in a.detail for a in failed) == 5
        # the user is not locked out: their session still goes live
        await goes_live({"Cookie": cookie, "Origin": st.url}, {**start, "csrf": csrf})
        assert len(_live_rows(st)) >= 4
