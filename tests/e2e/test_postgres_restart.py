"""PostgreSQL stopped (as in a crash) and started again under load: the orchestrator keeps running, /health
says the database is down meanwhile, and afterwards every block settles with no job lost or stuck."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from madara_orchestrator.cli.devnet import close_tail
from madara_orchestrator.domain.jobs import JobStatus, JobType
from tests.helpers.pipeline import eventually, start_pipeline
from tests.helpers.postgres import start_cluster

BLOCKS = 40
OUTAGE_S = 8.0


@pytest.mark.slow
async def test_postgres_restarted_under_load_loses_no_job(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(lambda: start_cluster(durable=True))  # its own: this test crashes it
    try:
        url = await asyncio.to_thread(cluster.create_database)
        p = await start_pipeline(
            tmp_path,
            blocks=BLOCKS,
            overrides={"postgres_url": url, "max_batch_size": 4, "max_blocks_per_snos_batch": 2},
        )
        try:
            settlement = p.stack.settlement

            async def some_settled() -> bool:
                last = await settlement.last_settled_block()
                return last is not None and last >= 7

            await eventually(some_settled, 60, "the first batches to settle")
            await asyncio.to_thread(cluster.pause)
            health = await p.stack.runtime.backend_health(timeout_s=3)
            assert health["database"] is not None and health["queue"] is not None, health
            deadline = time.monotonic() + OUTAGE_S
            while time.monotonic() < deadline:  # the outage lasts; the process must keep running meanwhile
                assert all(not t.done() for t in p.stack.runtime._tasks), "a runtime task ended during the outage"
                await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.resume)

            async def all_settled() -> bool:
                await close_tail(p.stack, last_block=BLOCKS - 1)
                return await settlement.last_settled_block() == BLOCKS - 1

            await eventually(all_settled, 120, "every block to settle after the restart")

            async def all_completed() -> bool:
                counts = await p.stack.store.count_jobs()
                return all(status == JobStatus.COMPLETED for (_, status) in counts)

            await eventually(all_completed, 60, "every job to be Completed")
            counts = await p.stack.store.count_jobs()
            settlements = counts[(JobType.STATE_TRANSITION, JobStatus.COMPLETED)]
            assert settlements == BLOCKS // 4, counts
            assert await p.stack.runtime.backend_health() == dict.fromkeys(health), "all backends up again"
        finally:
            await p.close()
    finally:
        await asyncio.to_thread(cluster.stop)
