"""The app's shell on a phone (issue 14), in Chromium at 360 × 740: the English button switches
the language (it threw "lang is not a function"), there is a favicon (it was a 404), and the
header's buttons are tap targets of at least 44 × 44 px (they were 36 px high)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN
from tests.e2e.phonecheck import assert_fits, login, new_phone
from tests.e2e.test_browser import Server

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]


async def test_language_button_favicon_and_header_targets(server: Server, browser: Any) -> None:
    page, errors = await new_phone(browser)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    await login(page, server.url, *ADMIN)
    await page.wait_for_url(server.url + "/")
    assert await page.text_content("nav a[href='/'] span") == "Tổng quan"
    await assert_fits(page, ["header a.em", "nav.tabs > a", "#morebtn"], errors)
    await page.click("#morebtn")
    await assert_fits(page, ["#menu a", "#menu button"], errors)
    await page.click("#menu button:has-text('English')")
    await page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert await page.text_content("nav a[href='/'] span") == "Dashboard"
    await page.click("#morebtn")
    await page.click("#menu button:has-text('Tiếng Việt')")
    await page.wait_for_function("() => document.documentElement.lang === 'vi'")
    icon = await page.evaluate("fetch('/favicon.svg').then(r => r.status)")
    assert icon == 200 and not missing, missing  # no 404, the favicon included
    await assert_fits(page, ["header a.em", "nav.tabs > a", "#morebtn"], errors)
    header = await page.evaluate("document.querySelector('header').getBoundingClientRect().height")
    assert header < 70, header  # one row (was two)

    # the live page: a way back, Vietnamese only (it explained HTTPS half in English)
    await page.goto(server.url + "/live.html")
    await page.wait_for_function("() => !document.getElementById('zones').textContent.includes('Đang tải')")
    text = await page.text_content("body") or ""
    assert "needs HTTPS" not in text and "(hold to talk)" not in text and "https://" in text
    await assert_fits(page, ["a.back", "#talk", "label"], errors)
    await page.click("a.back")
    await page.wait_for_url(server.url + "/")
    await page.context.close()
