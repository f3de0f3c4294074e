"""A 360 × 740 phone in Chromium, and the bars every screen must meet there (issue 14): no
horizontal overflow, tap targets of at least 44 × 44 px, no console errors."""

from __future__ import annotations

from typing import Any

WIDTH, HEIGHT = 360, 740


async def new_phone(browser: Any) -> tuple[Any, list[str]]:
    """A fresh phone page and the list its console errors and script exceptions are put in.

    A failed request (e.g. the 401 of a wrong password) is logged by Chromium as "Failed to load
    resource"; that is the server's answer, shown on the page, not a fault of the page: left out."""
    ctx = await browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1,
                                    is_mobile=True, has_touch=True, locale="vi-VN")
    page = await ctx.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


async def confirming_phone(browser: Any, url: str, user: str,
                           password: str) -> tuple[Any, list[str], list[str]]:
    """A phone logged in whose confirmations are all accepted: (page, console errors, the
    confirmations' texts, in order)."""
    page, errors = await new_phone(browser)
    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()
    page.on("dialog", accept)
    await login(page, url, user, password)
    await page.wait_for_url(url + "/")
    return page, errors, asked


async def login(page: Any, url: str, user: str, password: str) -> None:
    await page.goto(url + "/login")
    await page.fill("#u", user)
    await page.fill("#p", password)
    await page.click("#go")


async def assert_fits(page: Any, selectors: list[str], errors: list[str]) -> None:
    """At 360 px: nothing wider than the screen, every visible match of ``selectors`` at least
    44 × 44 px, no console error so far."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{page.url}: the page is {width} px wide"
    small = []
    for sel in selectors:
        for el in await page.query_selector_all(sel):
            box = await el.bounding_box()
            if box is None:  # hidden
                continue
            if box["width"] < 44 or box["height"] < 44:
                small.append(f"{sel}: {box['width']:.0f}×{box['height']:.0f}")
    assert not small, f"{page.url}: tap targets under 44 × 44 px: {small}"
    assert not errors, f"{page.url}: console errors {errors}"


async def go(page: Any, label: str) -> None:
    """Open the screen named ``label`` from the bottom bar, or from its "Thêm" menu."""
    link = page.locator(f"nav a:has-text('{label}')").first
    if not await link.is_visible():
        await page.click("#morebtn")
    await link.click()
