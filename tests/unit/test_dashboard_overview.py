"""The dashboard's overview and jobs list tell the truth at a glance (issue 17, item 7): every job needing
attention is counted and listed (not only Failed ones), and the cost is given in ETH, per block and as blob
fill. Jobs and batches are written straight into an embedded store."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from madara_orchestrator.cli.compose import EmbeddedStack, build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus
from madara_orchestrator.domain.jobs import (
    Job,
    JobStatus,
    JobType,
    SettlementContext,
    SpecificMetadata,
    StateUpdateMetadata,
)
from madara_orchestrator.server.app import create_app
from tests.helpers.engine import proving_meta

NOW = 1_700_000_000.0


@dataclass
class Api:
    stack: EmbeddedStack
    client: httpx.AsyncClient


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    # Nothing listens at the sequencer's URL: these reads need only the store.
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0))
    app = create_app(stack.runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield Api(stack, client)
    await stack.close()


async def add_job(
    api: Api,
    job_type: JobType,
    internal_id: int,
    status: JobStatus,
    specific: SpecificMetadata | None = None,
    **common: Any,
) -> Job:
    job = Job.new(
        job_type, internal_id, specific or proving_meta(internal_id), now=NOW + internal_id, orchestrator_version="t"
    )
    job = dataclasses.replace(job, status=status).with_common(**common)
    assert await api.stack.store.create_job(job)
    return job


async def get(api: Api, path: str, **params: str) -> Any:
    reply = await api.client.get(path, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


async def test_jobs_needing_attention_are_counted_and_listed_whatever_their_status(api: Api) -> None:
    failed = await add_job(api, JobType.PROOF_CREATION, 1, JobStatus.FAILED)
    timed_out = await add_job(api, JobType.PROOF_CREATION, 2, JobStatus.VERIFICATION_TIMEOUT)
    waiting = await add_job(
        api, JobType.PROOF_CREATION, 3, JobStatus.CREATED, waiting_since=int(NOW), failure_reason="prover down"
    )
    await add_job(api, JobType.PROOF_CREATION, 4, JobStatus.COMPLETED)
    await add_job(api, JobType.PROOF_CREATION, 5, JobStatus.CREATED)

    overview = await get(api, "/api/v1/dashboard/overview")
    assert overview["attention"] == {
        "total": 3,
        "by_status": {"Failed": 1, "VerificationTimeout": 1, "VerificationFailed": 0},
        "waiting": 1,
    }
    listed = await get(api, "/api/v1/dashboard/jobs", needs_attention="true")
    assert {j["id"] for j in listed["jobs"]} == {str(failed.id), str(timed_out.id), str(waiting.id)}
    only_snos = await get(api, "/api/v1/dashboard/jobs", needs_attention="true", job_type="SnosRun")
    assert only_snos["jobs"] == []
    reply = await api.client.get("/api/v1/dashboard/jobs", params={"needs_attention": "maybe"})
    assert reply.status_code == 400


async def test_the_cost_is_given_in_eth_per_block_and_as_blob_fill(api: Api) -> None:
    store = api.stack.store
    # Two settled batches: 10 blocks in 1,000 felts (one blob) and 20 blocks in 5,000 felts (two blobs).
    for index, (start, end, felts) in enumerate([(0, 9, 1000), (10, 29, 5000)], start=1):
        await store.insert_aggregator_batch(
            AggregatorBatch(
                index=index,
                start_block=start,
                end_block=end,
                status=AggregatorBatchStatus.CLOSED,
                created_at=NOW,
                updated_at=NOW,
                blob_len=felts,
            )
        )
        fee = str(300_000_000_000_000 * index)  # 0.0003 and 0.0006 ETH
        meta = StateUpdateMetadata(
            context=SettlementContext(type="Batch", to_settle=index),
            tx_hash=f"0x{index:064x}",
            tx_attempts=[{"attempt_no": 1, "status": "Finalized", "fee_paid_wei": fee}],
        )
        await add_job(api, JobType.STATE_TRANSITION, index, JobStatus.COMPLETED, meta)

    fees = (await get(api, "/api/v1/dashboard/overview"))["fees"]
    assert fees["unit"] == "ETH" and fees["window"] == 2 and fees["with_fee"] == 2
    assert fees["total_wei"] == 900_000_000_000_000 and fees["blocks"] == 30
    assert fees["per_block_wei"] == 30_000_000_000_000
    assert fees["blob_fill"] == pytest.approx(6000 / (3 * 4096)) and fees["blob_batches"] == 2
