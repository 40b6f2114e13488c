"""Headless Chromium for the dashboard's tests: Debian's /usr/bin/chromium driven by the ``playwright``
package, which is pointed at that binary and downloads nothing (``make setup`` installs the package).

Missing Chromium or playwright: a skip locally, a failure under CI (``require``). Uncaught JavaScript
errors and console errors are collected, and ``chromium_page`` fails the test when there are any (except
Chromium's own "Failed to load resource" line for an HTTP error answer, which tests provoke on purpose).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import require

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser() -> None:
    """Skip (fail under CI) unless Chromium and the playwright package are both here."""
    require(CHROMIUM.exists(), f"Chromium at {CHROMIUM} (make setup installs Debian's chromium)")
    require(_has_playwright(), "the playwright package (pip install -e '.[test]')")


def _has_playwright() -> bool:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return False
    return True


def _console(kind: str, text: str, errors: list[str]) -> None:
    if kind == "error" and not text.startswith("Failed to load resource"):
        errors.append(f"console error: {text}")


@asynccontextmanager
async def chromium_page(*, width: int = 1360, height: int = 900) -> AsyncIterator[Page]:
    """A fresh browser and page; closed, and checked for JavaScript errors, on exit."""
    require_browser()
    from playwright.async_api import async_playwright

    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda msg: _console(msg.type, msg.text, errors))
            yield page
        finally:
            await browser.close()
    assert not errors, "the dashboard logged JavaScript errors:\n" + "\n".join(errors)
