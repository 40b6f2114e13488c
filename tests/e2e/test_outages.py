"""Outages are conditions, not failures (issue 9): the L1 RPC and then the sequencer answer 502 or
nothing for a while in the middle of a run; no job fails, nothing settles twice, every block settles.

Each outage lasts longer than what would fail a job if an outage counted as a failure, and until a job
has met it: the last blocks are made during the L1 outage, so their aggregation meets it; the L1 comes
back and the sequencer goes at once, while that aggregation still waits, so its next try meets the
sequencer's outage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from madara_orchestrator.cli.compose import EmbeddedStack, build_embedded_stack
from madara_orchestrator.cli.devnet import close_tail, devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.domain.queues import MAX_RECEIVE_COUNT
from madara_orchestrator.server.background import BackgroundServer
from tests.conftest import require
from tests.e2e.test_devnet_anvil import anvil_available
from tests.helpers import anvil_pool
from tests.helpers.flaky_proxy import FlakyProxy
from tests.helpers.pipeline import eventually, leased_local_l1

RETRY_BASE_S = 0.1
"""``retry_base_delay_seconds``: a failed message comes back 0.1, 0.2, 0.4, 0.8 s later."""
FAILED_AFTER_S = RETRY_BASE_S * (2 ** (MAX_RECEIVE_COUNT - 1) - 1)
"""Were an outage a failure, a job's message would be dead-lettered (the job Failed) at its
``MAX_RECEIVE_COUNT``-th receive: after these redelivery delays (1.5 s), and its attempts' own time."""
SEQUENCER_CALL_S = 0.5 + 1.0
"""The stack's sequencer client gives up on a call after 3 attempts, 0.5 and 1 s apart."""
L1_OUTAGE_S = FAILED_AFTER_S + 2.5
"""The L1 outage's least length (4 s): the redelivery delays, and 2.5 s for five single-call attempts."""
SEQUENCER_OUTAGE_S = FAILED_AFTER_S + MAX_RECEIVE_COUNT * SEQUENCER_CALL_S + 1.0
"""The sequencer outage's least length (10 s): the redelivery delays, and five attempts that each first
spend the client's retries."""
BLOCKS = 24
BLOCKS_BEFORE = 16
"""Made before the outages (4 batches of 4); the other 8 during the L1 outage."""
WAITING = "Waiting for an outside service"


def reasons_of(job: Job) -> list[str]:
    return [*job.common.previous_failure_reasons, job.common.failure_reason or ""]


async def aggregation_waits_for(stack: EmbeddedStack, proxy: FlakyProxy) -> bool:
    """An Aggregator job is waiting out the outage behind ``proxy`` in processing, its next try to come."""
    for job in await stack.store.list_jobs(job_types=[JobType.AGGREGATOR]):
        reason = job.common.failure_reason or ""
        if job.status != JobStatus.COMPLETED and reason.startswith(f"{WAITING} (processing") and proxy.url in reason:
            return True
    return False


async def a_job_waited_for(stack: EmbeddedStack, proxy: FlakyProxy) -> bool:
    return any(WAITING in r and proxy.url in r for j in await stack.store.list_jobs() for r in reasons_of(j))


@pytest.mark.slow
async def test_l1_and_sequencer_outages_are_waited_out(tmp_path: Path) -> None:
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    sequencer = DevnetSequencer(block_time_s=0.1, tx_per_block=5)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    seq_proxy = FlakyProxy(rpc.url, mode="drop")
    await seq_proxy.start()
    (tmp_path / "data").mkdir()
    l1 = await leased_local_l1("prague", tmp_path / "data" / "anvil.log")
    l1_proxy = FlakyProxy(l1.anvil.url, mode="502")
    await l1_proxy.start()
    base = devnet_settings(tmp_path / "data", seq_proxy.url, port=0)
    settings = Settings(
        {
            **base.values,
            **l1.overrides,
            "ethereum_rpc_url": l1_proxy.url,
            "max_batch_size": 4,
            "max_blocks_per_snos_batch": 2,
            "retry_base_delay_seconds": RETRY_BASE_S,
        }
    )
    stack = await build_embedded_stack(settings)
    failed: list[str] = []
    try:
        sequencer.start_producing(max_blocks=BLOCKS_BEFORE)
        await stack.runtime.start()
        settlement = stack.settlement

        async def some_settled() -> bool:
            last = await settlement.last_settled_block()
            return last is not None and last >= 3

        await eventually(some_settled, 90, "the first batches to settle")
        assert await stack.runtime.backend_health() == dict.fromkeys(
            ("database", "queue", "storage", "sequencer_rpc", "settlement_rpc")
        )
        outages = (
            (l1_proxy, "settlement_rpc", L1_OUTAGE_S, lambda: aggregation_waits_for(stack, l1_proxy)),
            (seq_proxy, "sequencer_rpc", SEQUENCER_OUTAGE_S, lambda: a_job_waited_for(stack, seq_proxy)),
        )
        for proxy, backend, outage_s, met in outages:
            proxy.down = True
            health = await stack.runtime.backend_health(timeout_s=5)
            assert health[backend] is not None, f"/health must report {backend} down: {health}"
            assert [n for n, why in health.items() if why is not None] == [backend], health
            if proxy is l1_proxy:
                await sequencer.stop_producing()
                sequencer.start_producing(max_blocks=BLOCKS)
            deadline = time.monotonic() + outage_s
            give_up = deadline + 90
            while time.monotonic() < deadline or not await met():
                assert time.monotonic() < give_up, f"no job met the outage of {proxy.target}"
                counts = await stack.store.count_jobs()
                failed = [f"{t}:{n}" for (t, s), n in counts.items() if s == JobStatus.FAILED and n]
                assert not failed, f"jobs failed during the outage of {proxy.target}: {failed}"
                await asyncio.sleep(0.2)
            assert proxy.refused > 0, f"nothing reached {proxy.target} while it was down"
            proxy.down = False

        async def all_batched() -> bool:
            return await close_tail(stack, last_block=BLOCKS - 1)

        await eventually(all_batched, 120, "every block to be batched")

        async def all_settled() -> bool:
            return await settlement.last_settled_block() == BLOCKS - 1

        await eventually(all_settled, 180, "every block to settle after the outages")
        counts = await stack.store.count_jobs()
        assert not [k for k, n in counts.items() if k[1] == JobStatus.FAILED and n], counts

        async def verified() -> bool:
            jobs = await stack.store.list_jobs(job_types=[JobType.STATE_TRANSITION])
            return bool(jobs) and all(j.status == JobStatus.COMPLETED for j in jobs)

        await eventually(verified, 60, "every settlement to be verified")
        transitions = await stack.store.list_jobs(job_types=[JobType.STATE_TRANSITION])
        # The durable transaction store keys every settlement by its batch: one signed transaction per
        # batch means nothing was sent twice. (A transaction that landed while the L1 was unreachable may
        # stay "pending" there: its job then found the batch already settled and did not resend.)
        totals = await settlement.txmgr.store.totals(settlement.txmgr.address)  # type: ignore[union-attr]
        assert totals.attempts == totals.settled + totals.pending == len(transitions), totals
        reasons = [
            r
            for j in await stack.store.list_jobs()
            for r in [*j.common.previous_failure_reasons, j.common.failure_reason or ""]
        ]
        assert any("Waiting for an outside service" in r for r in reasons), "the outage is the jobs' reason"
    finally:
        await sequencer.stop_producing()
        await stack.runtime.stop()
        await stack.close()
        await seq_proxy.stop()
        await l1_proxy.stop()
        await rpc.stop()
        await asyncio.to_thread(anvil_pool.give_back, l1.anvil)
