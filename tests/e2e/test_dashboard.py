"""The dashboard at ``/`` in headless Chromium, on a running devnet pipeline (embedded orchestrator, devnet
sequencer, HTTP API): live numbers, the block view, and the admin token guarding the Retry button.

Screenshots go to the test's tmp dir; with ``UPDATE_SCREENSHOTS=1`` the overview's is also copied to
``docs/dashboard.png`` (the README's picture).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.domain.jobs import JobStatus, JobType, StateUpdateMetadata
from madara_orchestrator.server.app import create_app
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.server.dashboard import redact
from tests.conftest import REPO_ROOT
from tests.helpers.browser import chromium_page, require_browser
from tests.helpers.jsonrpc_server import running_jsonrpc_server
from tests.helpers.pipeline import Pipeline, eventually, start_pipeline

try:
    from playwright.async_api import Page, expect
except ImportError:  # require_browser() skips the tests (fails them under CI) with a clear message
    pass

ADMIN_TOKEN = "dashboard-admin-token-0123"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "dashboard.png"


async def shown(page: Page, element_id: str) -> int | None:
    """The number a pipeline card shows (its ``data-value``), None while it shows none."""
    value = await page.get_attribute(f"#{element_id}", "data-value")
    return int(value) if value else None


async def wait_until_shown_at_least(page: Page, element_id: str, minimum: int, timeout_s: float) -> None:
    await page.wait_for_function(
        "([id, min]) => { const v = document.getElementById(id)?.dataset.value; return v !== undefined && v !== ''"
        " && Number(v) >= min; }",
        arg=[element_id, minimum],
        timeout=timeout_s * 1000,
    )


async def settled(p: Pipeline) -> int | None:
    return await p.stack.settlement.last_settled_block()


async def test_overview_shows_blocks_advancing_while_it_is_watched(tmp_path: Path) -> None:
    require_browser()
    # Batches of three blocks: blocks 0-2 and 3-5 settle, block 6 waits in an open batch.
    p = await start_pipeline(tmp_path, blocks=3, admin_token=ADMIN_TOKEN, overrides={"max_batch_size": 3})
    try:
        async with chromium_page() as page:
            await page.goto(p.api.url + "/")
            await page.wait_for_selector("#head-block[data-value]:not([data-value=''])")
            head_before = await shown(page, "head-block")
            settled_before = await shown(page, "settled-block")
            assert head_before is not None

            await eventually(lambda: _head_is(p, 2), 10, "the first three blocks")
            for _ in range(3):
                p.sequencer.chain.produce_block()
            await wait_until_shown_at_least(page, "head-block", 5, 10)
            await wait_until_shown_at_least(page, "settled-block", 5, 30)
            assert head_before < 5, "the chain head moves on the page"
            assert settled_before is None or settled_before < 5, "the settled block moves on the page"

            p.sequencer.chain.produce_block()
            await wait_until_shown_at_least(page, "head-block", 6, 10)
            open_batch = page.locator("#open-batches .batch[data-kind='aggregator']")
            await expect(open_batch).to_have_attribute("data-index", "3")
            await expect(open_batch).to_contain_text("1 / 3 (33%)")
            await expect(page.locator("#lag-blocks")).to_have_text("1 block")
            for stage in ("stage-snos", "stage-proof", "stage-aggregation", "settled-block"):
                assert await shown(page, stage) == 5, f"{stage} shows every block of the closed batches"
            await expect(page.locator("#recent-aggregator tbody tr")).to_have_count(3)
            await expect(page.locator("#chart svg polyline.settled")).to_have_count(1)
            await expect(page.locator("#chart svg circle")).to_have_count(2)  # one mark per settlement
            await expect(page.locator("#live-status")).to_contain_text("live")
            await expect(page.locator("#job-counts-table tr[data-type='StateTransition']")).to_be_visible()

            await page.screenshot(path=tmp_path / "overview.png", full_page=True)
            if os.environ.get("UPDATE_SCREENSHOTS") == "1":
                shutil.copyfile(tmp_path / "overview.png", DOCS_SCREENSHOT)
    finally:
        await p.close()


async def _head_is(p: Pipeline, head: int) -> bool:
    return p.sequencer.chain.head == head


async def test_searching_a_block_shows_its_jobs_and_its_settlement_transaction(tmp_path: Path) -> None:
    require_browser()
    p = await start_pipeline(tmp_path, blocks=3, admin_token=ADMIN_TOKEN)
    try:
        await eventually(lambda: _settled_through(p, 2), 30, "blocks 0-2 to settle")
        aggregator = await p.stack.store.aggregator_batch_for_block(1)
        assert aggregator is not None
        transition = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, aggregator.index)
        assert transition is not None and isinstance(transition.metadata.specific, StateUpdateMetadata)
        tx_hash = transition.metadata.specific.tx_hash
        assert tx_hash

        async with chromium_page() as page:
            await page.goto(p.api.url + "/")
            await page.fill("#block-input", "1")
            await page.click("#block-search")
            await expect(page.locator("#block-title")).to_have_text("Block 1")
            await expect(page.locator("#block-settled")).to_have_text("settled")
            rows = page.locator("#block-jobs tbody tr")
            await expect(rows).to_have_count(4)
            types = [await rows.nth(i).get_attribute("data-job-type") for i in range(4)]
            assert types == ["SnosRun", "ProofCreation", "Aggregator", "StateTransition"]
            for i in range(4):
                assert await rows.nth(i).get_attribute("data-status") == "Completed"
            await expect(page.locator("#block-settlement .settlement-tx-hash")).to_have_text(tx_hash)
            await expect(page.locator("#block-aggregator-batch")).to_have_attribute("data-index", str(aggregator.index))
            await expect(page.locator("#block-snos-batch")).to_have_attribute("data-index", "2")
            assert "#block=1" in page.url, "the block view has an address of its own"
            await page.screenshot(path=tmp_path / "block.png", full_page=True)

            async with httpx.AsyncClient(base_url=p.api.url) as client:
                served = await client.get("/")
                assert "script-src 'self'" in served.headers["content-security-policy"], "no inline or outside script"
                assert (await client.get("/static/dashboard.js")).status_code == 200
                assert (await client.get("/static/nothing.js")).status_code == 404

            await page.fill("#block-input", "999")
            await page.click("#block-search")
            await expect(page.locator("#block-error")).to_contain_text("Block not found")
    finally:
        await p.close()


async def _settled_through(p: Pipeline, block: int) -> bool:
    last = await settled(p)
    return last is not None and last >= block


async def test_a_failed_job_is_retried_from_the_page_with_the_admin_token_and_not_without(tmp_path: Path) -> None:
    require_browser()
    # Block 1 (SNOS batch 2) fails once with a non-retryable OS error: it waits in Failed for an operator.
    p = await start_pipeline(tmp_path, blocks=3, snos_failures={1: 1}, admin_token=ADMIN_TOKEN)
    try:

        async def failed() -> bool:
            job = await p.stack.store.get_job_by_internal_id(JobType.SNOS_RUN, 2)
            return job is not None and job.status == JobStatus.FAILED

        await eventually(failed, 30, "the SnosRun job of block 1 to fail")
        job = await p.stack.store.get_job_by_internal_id(JobType.SNOS_RUN, 2)
        assert job is not None

        async with chromium_page() as page:
            await page.goto(p.api.url + "/")
            row = page.locator(f"#jobs-table tr[data-job-id='{job.id}']")
            await expect(row).to_be_visible()
            await expect(row).to_contain_text("Failed")
            retry = row.locator(".retry-button")
            await expect(retry).to_be_disabled()
            await expect(retry).to_have_text("Retry (token needed)")
            for action in await page.locator("#admin-actions button").all():
                await expect(action).to_be_disabled()

            async with httpx.AsyncClient(base_url=p.api.url) as client:
                refused = await client.post(f"/admin/jobs/{job.id}/retry")
                assert refused.status_code == 401, refused.text

            await page.fill("#admin-token", "not-the-token")
            await page.click("#token-save")
            await expect(retry).to_be_enabled()
            await retry.click()
            await expect(page.locator("#action-message")).to_contain_text("Token refused (401)")
            still = await p.stack.store.get_job(job.id)
            assert still is not None and still.status == JobStatus.FAILED, "a wrong token changes nothing"

            await page.fill("#admin-token", ADMIN_TOKEN)
            await page.click("#token-save")
            await retry.click()
            await expect(page.locator("#action-message")).to_contain_text(
                f"Job with id {job.id} queued for normal retry"
            )
            await expect(row).to_have_count(0, timeout=15_000)
            await wait_until_shown_at_least(page, "settled-block", 2, 30)

            assert await page.evaluate("() => localStorage.length") == 0, "the token is kept in this tab only"
            assert await page.context.cookies() == []
            assert ADMIN_TOKEN not in await page.content(), "the token is never rendered"
        retried = await p.stack.store.get_job(job.id)
        assert retried is not None and retried.status == JobStatus.COMPLETED
        assert retried.common.process_retry_attempt_no == 1
    finally:
        await p.close()


async def test_the_lag_card_is_coloured_against_the_batch_limits_and_the_block_view_follows_the_address(
    tmp_path: Path,
) -> None:
    require_browser()
    # Batches of 6 blocks: up to 12 blocks behind is normal (one batch filling, one settling), beyond 24 is late.
    # Block 0's SNOS run fails for good, so nothing settles and the lag is the whole chain.
    p = await start_pipeline(tmp_path, blocks=12, snos_failures={0: 1}, overrides={"max_batch_size": 6})
    try:
        await eventually(lambda: _head_is(p, 11), 10, "twelve blocks")
        async with chromium_page() as page:
            await page.goto(p.api.url + "/#block=1")
            await expect(page.locator("#block-title")).to_have_text("Block 1")
            lag = page.locator("#lag-blocks")
            await expect(lag).to_have_text("12 blocks")
            await expect(lag).to_have_attribute("data-level", "ok")  # green, though above the old fixed 10
            await expect(page.locator("#card-lag")).to_have_class("stage lag lag-ok")

            await page.evaluate("() => { location.hash = '#block=7'; }")
            await expect(page.locator("#block-title")).to_have_text("Block 7")
            await expect(page.locator("#block-input")).to_have_value("7")

            # The failed SnosRun is listed by the default filter, which counts every job needing attention.
            await expect(page.locator("#jobs-status")).to_have_value("attention")
            await expect(page.locator("#jobs-table tr[data-job-type='SnosRun'][data-status='Failed']")).to_have_count(1)
            await expect(page.locator("#attention")).to_have_attribute("data-total", "1")

            p.sequencer.chain.produce_block()
            await expect(lag).to_have_text("13 blocks")
            await expect(lag).to_have_attribute("data-level", "behind")
            for _ in range(12):
                p.sequencer.chain.produce_block()
            await expect(lag).to_have_text("25 blocks")
            await expect(lag).to_have_attribute("data-level", "late")
            await expect(page.locator("#card-lag")).to_have_class("stage lag lag-late")
            await page.screenshot(path=tmp_path / "late.png", full_page=True)

        async with httpx.AsyncClient(base_url=p.api.url) as client:
            icon = await client.get("/favicon.ico")
            assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
            assert icon.content.startswith(b"\x00\x00\x01\x00"), "an ICO file"
    finally:
        await p.close()


async def test_a_trigger_that_keeps_failing_is_shown_in_the_banner(tmp_path: Path) -> None:
    require_browser()
    # A sequencer that answers only its chain id and head: every batching run fails on a JSON-RPC error.
    handlers = {"starknet_chainId": lambda _: "0x534e5f5345504f4c4941", "starknet_blockNumber": lambda _: 5}
    with running_jsonrpc_server(handlers) as sequencer:
        stack = await build_embedded_stack(devnet_settings(tmp_path / "data", sequencer.url + "?key=S3CRET", port=0))
        api = BackgroundServer(create_app(stack.runtime))
        await api.start()
        try:
            triggers = stack.runtime.triggers
            for _ in range(3):
                await triggers.run_once(triggers.enabled[0])
            async with chromium_page() as page:
                await page.goto(api.url + "/")
                banner = page.locator("#errors")
                await expect(banner).to_be_visible()
                await expect(banner).to_contain_text(f"trigger {triggers.enabled[0]} failing (3 times since")
                await expect(banner).to_contain_text("RpcError: RPC error -32601: Method not found")
                await expect(page.locator("#no-open-batch")).to_have_text(
                    "No open batch: blocks 0–5 are not batched yet. Batching is failing: see above."
                )
                assert "S3CRET" not in await page.content()
        finally:
            await triggers.stop()
            await api.stop()
            await stack.close()


def test_free_text_shown_by_the_dashboard_has_urls_cut_to_scheme_and_host() -> None:
    reason = (
        "RPC error from https://user:pa55@rpc.example.com:8545/v3/abcdef0123?apikey=SECRET: 503; "
        "retried ws://node.internal/ws and http://127.0.0.1:9545"
    )
    shown = redact(reason)
    assert shown == (
        "RPC error from https://rpc.example.com:8545: 503; retried ws://node.internal and http://127.0.0.1:9545"
    )
    assert redact(None) is None
    assert len(redact("x" * 5000) or "") == 600


async def test_the_cost_ledger_shows_each_settled_batch_its_fees_and_the_sums(tmp_path: Path) -> None:
    """Issue 20, item 3: batches settled on anvil; the page's ledger shows each one's execution, blob and total
    fee as the API's ledger has them (equal to the receipts: tests/e2e/test_cost_ledger_anvil.py), the sums, and
    the fee per block over time."""
    require_browser()
    from tests.e2e.test_cost_ledger_anvil import settle_batches_on_anvil

    p = await settle_batches_on_anvil(tmp_path)
    try:
        async with httpx.AsyncClient(base_url=p.api.url) as api:
            ledger = (await api.get("/cost", params={"limit": "60"})).json()["data"]
        settled_lines = [line for line in ledger["batches"] if line["settled"]]
        assert len(settled_lines) >= 3 and all(line["fee_wei"] for line in settled_lines)
        async with chromium_page() as page:
            await page.goto(p.api.url + "/")
            rows = page.locator("#cost-rows tbody tr")
            await expect(rows).to_have_count(len(ledger["batches"]))
            for line in settled_lines:
                row = page.locator(f"#cost-rows tbody tr[data-batch='{line['index']}']")
                cells = row.locator("td")
                await expect(cells.nth(4)).to_have_attribute("data-wei", str(line["execution_fee_wei"]))
                await expect(cells.nth(5)).to_have_attribute("data-wei", str(line["blob_fee_wei"]))
                await expect(cells.nth(6)).to_have_attribute("data-wei", str(line["fee_wei"]))
                await expect(cells.nth(1)).to_have_text(f"{line['start_block']}–{line['end_block']}")
            summary = page.locator("#cost-summary")
            await expect(summary).to_contain_text(f"{len(settled_lines)} of {len(ledger['batches'])} aggregator")
            await expect(summary).to_contain_text("per block")
            await expect(summary).to_contain_text("replacements")
            await expect(page.locator("#cost-chart svg rect.bar")).to_have_count(len(ledger["series"]))
            await expect(page.locator("#cost-chart svg polyline.settled")).to_have_count(1)
            await page.screenshot(path=tmp_path / "cost.png", full_page=True)
    finally:
        await p.close()
