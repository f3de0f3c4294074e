"""Debian's headless Chromium driven by Playwright, for the browser tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@asynccontextmanager
async def chromium(*flags: str) -> AsyncIterator[Any]:
    """A launched browser (:data:`FLAGS` and ``flags``), closed afterwards."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail("chromium is not installed; tests/run.sh installs it (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, *flags], headless=True)
        try:
            yield b
        finally:
            await b.close()
