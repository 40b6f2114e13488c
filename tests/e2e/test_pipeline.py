"""End to end: a devnet sequencer over JSON-RPC/HTTP, the orchestrator on SQLite, the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.domain.batches import AggregatorBatchStatus
from madara_orchestrator.domain.jobs import JobStatus, JobType
from tests.helpers.pipeline import Pipeline, eventually, start_pipeline

ADMIN_TOKEN = "s3cret-admin-token"


async def job_status(p: Pipeline, job_type: JobType, internal_id: int) -> JobStatus | None:
    job = await p.stack.store.get_job_by_internal_id(job_type, internal_id)
    return None if job is None else job.status


async def test_blocks_are_settled_in_order(tmp_path: Path) -> None:
    p = await start_pipeline(tmp_path, blocks=8)
    try:

        async def settled() -> bool:
            return await p.stack.settlement.last_settled_block() == 7

        await eventually(settled, 30, "blocks 0..7 to settle")
        for index in range(1, 9):
            await eventually(
                lambda index=index: _is(p, JobType.STATE_TRANSITION, index, JobStatus.COMPLETED), 10, f"batch {index}"
            )
            transition = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, index)
            assert transition is not None and transition.external_id == str(index)
            tagged = transition.metadata.specific.storage_artifacts_tagged_at  # type: ignore[union-attr]
            assert transition.version == 4 + (tagged is not None), (
                "created, locked, processed, verification started, completed (then StorageCleanup's mark)"
            )
        async with httpx.AsyncClient(base_url=p.api.url) as client:
            status = (await client.get("/blocks/settlement-status/3")).json()
            assert status["success"] and status["data"]["block_number"] == 3
            assert status["data"]["aggregator_batch"]["status"] == "Completed"
            assert {j["job_type"] for j in status["data"]["block_jobs"]} == {
                "SnosRun",
                "ProofCreation",
                "Aggregator",
                "StateTransition",
            }
            metrics = (await client.get("/metrics")).text
            assert 'orchestrator_jobs{job_type="StateTransition",status="Completed"}' in metrics
            assert "orchestrator_handoff_seconds_bucket" in metrics
            assert "orchestrator_queue_depth" in metrics
    finally:
        await p.close()


async def _is(p: Pipeline, job_type: JobType, internal_id: int, status: JobStatus) -> bool:
    return await job_status(p, job_type, internal_id) == status


async def test_a_failed_block_blocks_only_what_depends_on_it_and_is_retried_through_the_api(tmp_path: Path) -> None:
    # Block 5 (SNOS batch 6) fails once with a non-retryable OS error.
    p = await start_pipeline(tmp_path, blocks=10, snos_failures={5: 1}, admin_token=ADMIN_TOKEN)
    try:
        failed_index = 6

        async def isolated() -> bool:
            later_done = [await _is(p, JobType.AGGREGATOR, i, JobStatus.COMPLETED) for i in range(failed_index + 1, 11)]
            return all(later_done) and await p.stack.settlement.last_settled_block() == 4

        await eventually(isolated, 30, "blocks 0-4 settled and blocks 6-9 aggregated")
        assert await job_status(p, JobType.SNOS_RUN, failed_index) == JobStatus.FAILED
        assert await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, failed_index) is None
        assert await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, failed_index + 1) is None
        assert await p.stack.settlement.last_settled_block() == 4, "settlement stays in block order"
        # SNOS batch 6 is block 5: the alert names the block, and the internal id as what it is.
        assert any("Type: SnosRun\nBlock: 5\nInternal ID: 6\n" in text for _, text in p.stack.recorded_alerts.sent)

        failed = await p.stack.store.get_job_by_internal_id(JobType.SNOS_RUN, failed_index)
        assert failed is not None
        async with httpx.AsyncClient(base_url=p.api.url) as client:
            listed = (await client.get("/jobs", params={"status": "Failed"})).json()
            assert listed["data"]["jobs"] == [
                {"job_type": "SnosRun", "id": str(failed.id), "status": "Failed", "start_block": 5, "end_block": 5}
            ]
            reply = await client.post(f"/jobs/{failed.id}/retry", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert reply.status_code == 200
            assert reply.json() == {"success": True, "message": f"Job with id {failed.id} queued for normal retry"}

        async def all_settled() -> bool:
            return await p.stack.settlement.last_settled_block() == 9

        await eventually(all_settled, 30, "every block to settle after the retry")
        retried = await p.stack.store.get_job(failed.id)
        assert retried is not None and retried.status == JobStatus.COMPLETED
        assert retried.common.process_retry_attempt_no == 1
    finally:
        await p.close()


def halted_runs(p: Pipeline) -> float:
    """Trigger runs that found the pipeline halted (``orchestrator_trigger_runs_total{outcome="halted"}``)."""
    registry = p.stack.runtime.metrics.registry
    return sum(
        sample.value
        for family in registry.collect()
        if family.name == "orchestrator_trigger_runs"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("outcome") == "halted"
    )


def halted_at_least(p: Pipeline, runs: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return halted_runs(p) >= runs

    return check


async def test_halt_on_failure_keeps_the_original_global_halt(tmp_path: Path) -> None:
    p = await start_pipeline(tmp_path, blocks=8, snos_failures={2: 1}, overrides={"halt_on_failure": True})
    try:

        async def failed() -> bool:
            return await _is(p, JobType.SNOS_RUN, 3, JobStatus.FAILED)

        await eventually(failed, 20, "block 2 to fail")
        # Jobs created before the failure stand (how many depends on how fast block 2 failed); from then on,
        # every trigger run finds the pipeline halted and creates nothing: counted over many halted runs.
        await eventually(halted_at_least(p, halted_runs(p) + 4), 30, "the triggers to find the pipeline halted")
        before = sum((await p.stack.store.count_jobs()).values())
        await eventually(halted_at_least(p, halted_runs(p) + 8), 30, "eight more halted trigger runs")
        assert sum((await p.stack.store.count_jobs()).values()) == before, "no job is created while one is Failed"
        last = await p.stack.settlement.last_settled_block()
        assert last is None or last <= 1, "blocks after the failed one are never settled"
    finally:
        await p.close()


@pytest.fixture
async def admin_pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    p = await start_pipeline(tmp_path, blocks=3, admin_token=ADMIN_TOKEN)
    yield p
    await p.close()


async def test_admin_routes_refuse_without_the_bearer_token(admin_pipeline: Pipeline) -> None:
    async with httpx.AsyncClient(base_url=admin_pipeline.api.url) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}):
            reply = await client.post("/admin/jobs/retry/failed", headers=headers)
            assert reply.status_code == 401
            assert reply.json()["success"] is False
            assert "Bearer" in reply.json()["message"]
        reply = await client.post("/admin/jobs/retry/failed", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert reply.status_code == 200
        assert reply.json()["message"] == "No failed jobs to retry"
        assert reply.json()["data"] == {
            "success_count": 0,
            "successful_job_ids": [],
            "failed_count": 0,
            "failed_job_ids": [],
        }


async def test_admin_routes_are_absent_when_disabled(tmp_path: Path) -> None:
    p = await start_pipeline(tmp_path, blocks=1)
    try:
        async with httpx.AsyncClient(base_url=p.api.url) as client:
            reply = await client.post("/admin/jobs/retry/failed", headers={"Authorization": "Bearer x"})
            assert reply.status_code == 404
            assert reply.text == "The requested resource was not found"
    finally:
        await p.close()


async def test_api_errors_use_the_envelope(admin_pipeline: Pipeline) -> None:
    p = admin_pipeline

    async def done() -> bool:
        return await p.stack.settlement.last_settled_block() == 2

    await eventually(done, 20, "3 blocks to settle")
    completed = await p.stack.store.get_job_by_internal_id(JobType.SNOS_RUN, 1)
    assert completed is not None
    async with httpx.AsyncClient(base_url=p.api.url) as client:
        assert (await client.get("/health")).text == "UP"
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        reply = await client.post("/jobs/not-a-uuid/retry", headers=auth)
        assert reply.status_code == 400 and reply.json() == {"success": False, "message": "Invalid job ID: not-a-uuid"}
        reply = await client.get(f"/jobs/{completed.id}/retry")
        assert reply.status_code == 405 and reply.headers["allow"] == "POST", "the original's GET changes nothing"
        reply = await client.post(f"/jobs/{completed.id}/retry", headers=auth)
        assert reply.status_code == 400
        assert reply.json()["message"] == f"Processing error: Cannot retry job {completed.id}: invalid status Completed"
        reply = await client.get("/jobs", params={"status": "Bogus"})
        assert reply.status_code == 400
        reply = await client.get("/api/v1/jobs/block/1/status")
        assert reply.json()["message"] == "Successfully fetched job statuses for block 1"
        reply = await client.get("/batches/aggregator", params={"limit": 501})
        assert reply.status_code == 400 and reply.json()["message"] == "limit must be less than or equal to 500"
        reply = await client.get("/batches/snos", params={"status": "closed", "sort": "desc", "limit": 2})
        assert [b["index"] for b in reply.json()["data"]["batches"]] == [3, 2]
        reply = await client.get("/blocks/batch-for-block/999")
        assert reply.status_code == 404
        reply = await client.get("/health", headers={"x-trace-id": "ab" * 16})
        assert reply.headers["x-trace-id"] == "ab" * 16
        assert len((await client.get("/health")).headers["x-trace-id"]) == 32
        reply = await client.get(f"/jobs/{completed.id}")
        assert reply.json()["data"]["metadata"]["specific"]["type"] == "Snos"


async def test_admin_close_open_closes_the_open_batches_under_the_batching_lease(tmp_path: Path) -> None:
    """A quiet chain: the open batch would wait for its maximum age; the admin route closes it now, and
    its blocks go on to settle. While a batching run holds the lease the route answers 409."""
    overrides = {"max_batch_size": 100, "max_batch_time_seconds": 3600}
    p = await start_pipeline(tmp_path, blocks=4, admin_token=ADMIN_TOKEN, overrides=overrides)
    try:
        store = p.stack.store

        async def batched() -> bool:
            latest = await store.latest_aggregator_batch()
            return latest is not None and latest.end_block == 3

        await eventually(batched, 20, "blocks 0-3 in the open batch")
        latest = await store.latest_aggregator_batch()
        assert latest is not None and latest.status == AggregatorBatchStatus.OPEN
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=p.api.url) as client:
            assert await store.acquire("AggregatorBatchingWorker", "someone-else", 30)
            reply = await client.post("/admin/batches/close-open", headers=headers)
            assert reply.status_code == 409 and reply.json()["success"] is False
            assert "AggregatorBatchingWorker" in reply.json()["message"]
            assert await store.release("AggregatorBatchingWorker", "someone-else")
            reply = await client.post("/admin/batches/close-open", headers=headers)
            assert reply.status_code == 200, reply.text
            assert reply.json()["data"] == {"snos_batches_closed": 1, "aggregator_batches_closed": 1}
            reply = await client.post("/admin/batches/close-open", headers=headers)
            assert reply.json()["data"] == {"snos_batches_closed": 0, "aggregator_batches_closed": 0}

        async def settled() -> bool:
            batch = await store.get_aggregator_batch(latest.index)
            return batch is not None and batch.status == AggregatorBatchStatus.COMPLETED

        await eventually(settled, 30, "the closed batch to settle")
        assert await p.stack.settlement.last_settled_block() == 3
        closed = await store.get_aggregator_batch(latest.index)
        assert closed is not None
        assert closed.version > latest.version, "every write went through the version guard"
    finally:
        await p.close()
