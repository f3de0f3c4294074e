"""Accounts from the phone (issue 14, blocker 1), in Chromium at 360 × 740 against uvicorn.

An admin creates an account (the one-time password shown once, next to the button), changes its
role and ward, resets its password and disables it; the new user's first login asks for a new
password before anything else; a wrong password says so in Vietnamese next to the form and keeps
what was typed. Every screen fits the phone (no overflow, 44 px targets, no console error)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN
from tests.e2e.phonecheck import assert_fits, go, login, new_phone
from tests.e2e.test_browser import Server, shot

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]

CONTROLS = ["#create", "#nu", "#nr", "#no", ".acct .save", ".acct .toggle", ".acct .reset", ".acct select",
            "nav a[href='/accounts']", "nav a[href='/password']"]


async def accept_dialogs(page: Any) -> list[str]:
    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    return asked


async def login_status(server: Server, user: str, password: str) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as anon:
        r = await anon.post("/api/login", json={"username": user, "password": password})
        return r.status_code


async def test_wrong_password_is_said_next_to_the_form(server: Server, browser: Any) -> None:
    page, errors = await new_phone(browser)
    await login(page, server.url, "admin", "not-the-password")
    note = page.locator("#loginmsg")
    await note.wait_for()
    await page.wait_for_function("() => document.getElementById('loginmsg').textContent !== ''")
    assert await note.text_content() == "Sai tên đăng nhập hoặc mật khẩu."
    assert await note.get_attribute("role") == "alert"  # announced
    assert "/login" in page.url and await page.input_value("#u") == "admin"  # nothing reloaded or cleared
    assert await page.input_value("#p") == "not-the-password"
    await assert_fits(page, ["#go", "#u", "#p"], errors)
    await page.context.close()


async def test_admin_manages_an_account_and_the_first_login_asks_for_a_new_password(
        server: Server, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        for oid, name in (("ngoquyen", "Phường Ngô Quyền"), ("lechan", "Phường Lê Chân")):
            assert (await api.post("/api/org-units", json={"id": oid, "name": name})).status_code == 201
        adm, errors = await new_phone(browser)
        asked = await accept_dialogs(adm)
        await login(adm, server.url, *ADMIN)
        await adm.wait_for_url(server.url + "/")
        await go(adm, "Tài khoản")
        await adm.fill("#nu", "bientap2")
        await adm.select_option("#nr", "editor")
        await adm.select_option("#no", "ngoquyen")
        await adm.click("#create")
        await adm.wait_for_selector("#secretbox:not([hidden])")
        assert await adm.text_content("#create + .note") == "Đã tạo tài khoản bientap2."
        one_time = (await adm.text_content("#secret") or "").strip()
        users = {u["username"]: u for u in (await api.get("/api/users")).json()}
        assert users["bientap2"]["role"] == "editor" and users["bientap2"]["org_unit_id"] == "ngoquyen"
        assert users["bientap2"]["must_change_password"] is True

        await adm.reload()  # the list shows it, waiting for its first password change
        row = adm.locator(".acct[data-user=bientap2]")
        assert "chưa đổi mật khẩu dùng một lần" in (await row.text_content() or "")
        await row.locator(".role").select_option("approver")
        await row.locator(".org").select_option("lechan")
        await row.locator(".save").click()
        await row.locator(".save + .note >> text=Đã lưu").wait_for()
        users = {u["username"]: u for u in (await api.get("/api/users")).json()}
        assert users["bientap2"]["role"] == "approver" and users["bientap2"]["org_unit_id"] == "lechan"

        await row.locator(".reset").click()  # a new one-time password, shown in the row
        await row.locator(".secretbox .secret").wait_for()
        assert asked[-1].startswith("Tạo mật khẩu dùng một lần mới cho bientap2?")
        reset = (await row.locator(".secretbox .secret").text_content() or "").strip()
        assert reset and reset != one_time
        assert await login_status(server, "bientap2", one_time) == 401  # the old one no longer works
        await assert_fits(adm, CONTROLS, errors)
        await shot(adm, "11-accounts")

        # --- the user's first login: a new password before anything else
        me, my_errors = await new_phone(browser)
        await login(me, server.url, "bientap2", reset)
        await me.wait_for_url("**/password*")
        assert "mật khẩu dùng một lần" in (await me.text_content("#forced") or "")
        await me.goto(server.url + "/bulletins")
        assert "/password" in me.url  # every other screen waits for the new password
        await me.fill("#cur", reset)
        await me.fill("#new1", "Loa-phuong-2026!")
        await me.fill("#new2", "Loa-phuong-2027!")
        await me.click("#savepw")
        assert await me.text_content("#pwmsg") == "Hai lần nhập mật khẩu mới không khớp."
        await me.fill("#cur", "wrong-current-password")
        await me.fill("#new2", "Loa-phuong-2026!")
        await me.click("#savepw")
        await me.locator("#pwmsg >> text=Mật khẩu hiện tại không đúng.").wait_for()
        assert await me.get_attribute("#pwmsg", "role") == "alert"
        await assert_fits(me, ["#savepw", "#cur", "#new1", "#new2"], my_errors)
        await shot(me, "12-password")
        await me.fill("#cur", reset)
        await me.click("#savepw")
        await me.wait_for_url("**/bulletins")  # back where the user was going
        assert await login_status(server, "bientap2", "Loa-phuong-2026!") == 200

        # --- the admin disables it: the user's session ends
        await adm.reload()
        row = adm.locator(".acct[data-user=bientap2]")
        await row.locator(".toggle").click()
        await row.locator(".st >> text=Đã khóa").wait_for()
        assert asked[-1].startswith("Khóa tài khoản bientap2?")
        assert await row.locator(".toggle").text_content() == "Mở khóa"
        await me.goto(server.url + "/")
        assert "/login" in me.url
        assert {u["username"]: u for u in (await api.get("/api/users")).json()}["bientap2"]["active"] is False
        await assert_fits(adm, CONTROLS, errors)
        await me.context.close()
        await adm.context.close()
