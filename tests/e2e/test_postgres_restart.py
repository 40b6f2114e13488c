"""PostgreSQL stopped (as in a crash) and started again under load: the orchestrator keeps running, /health
says the database is down meanwhile, and afterwards every block settles with no job lost or stuck. And an
``orchestrator run`` started while PostgreSQL is down waits for it (as for the sequencer), then serves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.cli.devnet import close_tail
from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.server.background import BackgroundServer, free_port
from tests.helpers.cluster import Instance
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


PASSWORD = "pw-orch-Kq93vT"


async def _log_shows(instance: Instance, text: str, timeout_s: float) -> str:
    """The instance's log once it holds ``text``; fails at once if the process ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = instance.log.read_text(errors="replace") if instance.log.exists() else ""
        if text in log:
            return log
        assert instance.running(), f"the process ended (code {instance.process and instance.process.returncode}): {log}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {text!r}: {instance.log_tail()}")


@pytest.mark.slow
async def test_run_started_while_postgres_is_down_waits_for_it(tmp_path: Path) -> None:
    """An ``orchestrator run`` started during a PostgreSQL outage says once that it waits, does not exit,
    and serves once the server is back (the soak's restarts found it exiting with code 1 at once)."""
    cluster = await asyncio.to_thread(lambda: start_cluster(durable=True))  # its own: this test stops it
    sequencer = DevnetSequencer(block_time_s=0.2)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    instance: Instance | None = None
    try:
        url = await asyncio.to_thread(cluster.create_database)
        dbname = url.rsplit("/", 1)[1]

        def owned_by_a_role_with_a_password() -> None:
            cluster.create_role("orch", PASSWORD)
            with cluster.admin() as conn:
                conn.execute(f'ALTER DATABASE "{dbname}" OWNER TO orch')

        await asyncio.to_thread(owned_by_a_role_with_a_password)
        await asyncio.to_thread(cluster.pause)
        instance = Instance(
            name="pgwait",
            port=free_port(),
            argv=["--settle-on-devnet", "--data-dir", str(tmp_path / "data")],
            env={
                "MADARA_ORCHESTRATOR_MADARA_RPC_URL": rpc.url,
                "MADARA_ORCHESTRATOR_POSTGRES_URL": cluster.url(dbname, user="orch", password=PASSWORD),
                "MADARA_ORCHESTRATOR_PROVER": "devnet",
                "MADARA_ORCHESTRATOR_SNOS_RUNNER": "devnet",
                "MADARA_ORCHESTRATOR_AGGREGATOR_RUNNER": "devnet",
            },
            log_dir=tmp_path,
        )
        await instance.start()
        waiting = await _log_shows(instance, "PostgreSQL not reachable yet", 60)
        await asyncio.to_thread(cluster.resume)
        async with httpx.AsyncClient(base_url=instance.url, timeout=5) as client:
            deadline = time.monotonic() + 60
            status = None
            while status != 200 and time.monotonic() < deadline:
                assert instance.running(), f"the process ended: {instance.log_tail()}"
                with contextlib.suppress(httpx.HTTPError):
                    status = (await client.get("/health")).status_code
                if status != 200:
                    await asyncio.sleep(0.2)
            assert status == 200, f"/health answered {status}: {instance.log_tail()}"
        log = await _log_shows(instance, "HTTP API on", 10)
        assert instance.starts == 1 and instance.running(), "served without having exited"
        code = await instance.stop()
        assert code == 0, instance.log_tail()
    finally:
        if instance is not None and instance.running():
            await instance.stop()
        await rpc.stop()
        await asyncio.to_thread(cluster.stop)
    line = next(line for line in waiting.splitlines() if "PostgreSQL not reachable yet" in line)
    assert "waiting up to 300 s, trying every 5 s" in line, line
    assert f"127.0.0.1:{cluster.port}" in line, "the line names the server"
    assert log.count("not reachable yet") == 1, log
    assert "PostgreSQL at " in log and " answered after " in log, log
    assert PASSWORD not in log, "the URL's password never reaches the log"
