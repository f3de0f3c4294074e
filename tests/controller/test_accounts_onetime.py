"""One-time passwords (issue 14): an account made or reset by an admin is flagged until its user
chooses a password; the web app's screens send such a user to /password first. No broker runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.broker import free_port
from tests.conftest import ADMIN, make_settings, running_controller

pytestmark = pytest.mark.timeout(90)

CHOSEN = "Loa-phuong-2026!"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        yield app, client


def browser(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller", timeout=60)


async def test_one_time_password_is_flagged_until_changed(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = api
    r = await admin.post("/api/users", json={"username": "bt1", "role": "editor"})
    assert r.status_code == 201 and r.json()["must_change_password"] is True
    one_time, uid = r.json()["password"], r.json()["id"]
    assert (await admin.get("/api/me")).json()["must_change_password"] is False  # chose its own (settings)
    async with browser(app) as c:
        r = await c.post("/api/login", json={"username": "bt1", "password": one_time})
        assert r.status_code == 200 and r.json()["user"]["must_change_password"] is True
        csrf = r.json()["csrf_token"]
        for path in ("/", "/bulletins", "/schedule", "/accounts"):
            page = await c.get(path)
            assert page.status_code == 303 and page.headers["location"].startswith("/password?next=")
        page = await c.get("/password")
        assert page.status_code == 200 and "mật khẩu dùng một lần" in page.text
        r = await c.post("/api/me/password", json={"current": one_time, "new": CHOSEN},
                         headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["user"]["must_change_password"] is False
        assert (await c.get("/")).status_code == 200  # the screens open now
    r = await admin.post(f"/api/users/{uid}/password")
    assert r.status_code == 200 and r.json()["must_change_password"] is True  # a reset is one-time again
    users = {u["username"]: u for u in (await admin.get("/api/users")).json()}
    assert users["bt1"]["must_change_password"] is True and users[ADMIN[0]]["must_change_password"] is False


async def test_accounts_screen_is_for_admins_and_in_vietnamese(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = api
    r = await admin.post("/api/users", json={"username": "vh1", "role": "operator"})
    one_time = r.json()["password"]
    async with browser(app) as c:
        r = await c.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        page = await c.get("/accounts")
        assert page.status_code == 200
        for vi in ("Tạo tài khoản", "Vai trò", "Phường / đơn vị", "Khóa tài khoản", "Đặt lại mật khẩu",
                   "vh1"):
            assert vi in page.text
        en = await c.get("/accounts?lang=en")
        assert "New account" in en.text and "Reset the password" in en.text
    async with browser(app) as c:
        r = await c.post("/api/login", json={"username": "vh1", "password": one_time})
        r = await c.post("/api/me/password", json={"current": one_time, "new": CHOSEN},
                         headers={"X-CSRF-Token": r.json()["csrf_token"]})
        assert r.status_code == 200
        page = await c.get("/accounts")
        assert page.status_code == 303 and page.headers["location"] == "/"  # not an admin
        assert "/accounts" not in (await c.get("/")).text  # no link to it either
