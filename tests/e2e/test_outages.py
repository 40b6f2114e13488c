"""Outages are conditions, not failures (issue 9): the L1 RPC and then the sequencer answer 502 or
nothing for a while in the middle of a run; no job fails, nothing settles twice, every block settles."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import close_tail, devnet_settings, start_local_l1
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.server.background import BackgroundServer
from tests.conftest import require
from tests.e2e.test_devnet_anvil import anvil_available
from tests.helpers.flaky_proxy import FlakyProxy
from tests.helpers.pipeline import eventually

OUTAGE_S = 15.0
"""Each outage lasts longer than everything that would fail a job if an outage counted as a failure: the
sequencer client's own retries (3 attempts, 2 + 4 s apart) and then a job's process attempts (at most 3,
redelivered 0.5, 1, 2 s apart with ``retry_base_delay_seconds`` 0.5), together under 10 s."""
BLOCKS = 24


@pytest.mark.slow
async def test_l1_and_sequencer_outages_are_waited_out(tmp_path: Path) -> None:
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    sequencer = DevnetSequencer(block_time_s=0.5, tx_per_block=5)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    seq_proxy = FlakyProxy(rpc.url, mode="drop")
    await seq_proxy.start()
    (tmp_path / "data").mkdir()
    l1 = await start_local_l1(tmp_path / "data", hardfork="prague")
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
            "retry_base_delay_seconds": 0.5,
        }
    )
    stack = await build_embedded_stack(settings)
    failed: list[str] = []
    try:
        sequencer.start_producing(max_blocks=BLOCKS)
        await stack.runtime.start()
        settlement = stack.settlement

        async def some_settled() -> bool:
            last = await settlement.last_settled_block()
            return last is not None and last >= 3

        await eventually(some_settled, 90, "the first batches to settle")
        assert await stack.runtime.backend_health() == dict.fromkeys(
            ("database", "queue", "storage", "sequencer_rpc", "settlement_rpc")
        )
        for proxy, backend in ((l1_proxy, "settlement_rpc"), (seq_proxy, "sequencer_rpc")):
            proxy.down = True
            health = await stack.runtime.backend_health(timeout_s=5)
            assert health[backend] is not None, f"/health must report {backend} down: {health}"
            assert [n for n, why in health.items() if why is not None] == [backend], health
            deadline = time.monotonic() + OUTAGE_S
            while time.monotonic() < deadline:
                counts = await stack.store.count_jobs()
                failed = [f"{t}:{n}" for (t, s), n in counts.items() if s == JobStatus.FAILED and n]
                assert not failed, f"jobs failed during the outage of {proxy.target}: {failed}"
                await asyncio.sleep(0.5)
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
        l1.stop()
