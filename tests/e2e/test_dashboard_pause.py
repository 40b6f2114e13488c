"""The dashboard's Stages panel in headless Chromium (issue 21, item 2): what is paused, by whom and since
when, and Pause / Resume buttons behind the admin token (click twice to confirm)."""

from __future__ import annotations

from pathlib import Path

import httpx

from madara_orchestrator.domain.pause import Stage
from tests.helpers.browser import chromium_page, require_browser
from tests.helpers.pipeline import start_pipeline

try:
    from playwright.async_api import expect
except ImportError:  # require_browser() skips the tests (fails them under CI) with a clear message
    pass

ADMIN_TOKEN = "dashboard-admin-token-0123"


async def test_settlement_is_paused_and_resumed_from_the_page(tmp_path: Path) -> None:
    require_browser()
    p = await start_pipeline(tmp_path, blocks=1, admin_token=ADMIN_TOKEN)
    try:
        async with chromium_page() as page:
            await page.goto(p.api.url + "/")
            row = page.locator("#pauses .pause[data-stage='settlement']")
            await expect(row).to_contain_text("settlement: running")
            button = row.locator("button")
            await expect(button).to_be_disabled()
            await expect(button).to_have_text("Pause settlement (token needed)")

            await page.fill("#admin-token", ADMIN_TOKEN)
            await page.click("#token-save")
            await page.fill("#pause-reason", "incident 42 from the page")
            await button.click()
            await expect(button).to_have_text("Confirm: Pause settlement")
            await button.click()
            await expect(row).to_contain_text("settlement: paused by dashboard since ")
            await expect(row).to_contain_text(": incident 42 from the page")
            pause = (await p.stack.runtime.pauses.current())[Stage.SETTLEMENT]
            assert (pause.by, pause.reason) == ("dashboard", "incident 42 from the page")
            async with httpx.AsyncClient(base_url=p.api.url) as client:
                assert "settlement paused by dashboard" in (await client.get("/health")).text

            await expect(button).to_have_text("Resume settlement")
            await button.click()
            await button.click()
            await expect(row).to_contain_text("settlement: running")
            assert await p.stack.runtime.pauses.current() == {}
            assert ADMIN_TOKEN not in await page.content()
    finally:
        await p.close()
