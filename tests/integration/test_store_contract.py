"""Contract tests every job store must pass (SQLite today; each new backend joins the parameter list)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.errors import StaleVersion
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, ProvingMetadata, SnosMetadata, transition
from madara_orchestrator.interfaces import Database


@pytest.fixture(params=["sqlite"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    db = SqliteDatabase(tmp_path / "store.db")
    await db.open()
    store = SqliteStore(db)
    yield store
    await store.close()


def snos_job(i: int, now: float = 1000.0) -> Job:
    meta = SnosMetadata(snos_batch_index=i, start_block=i - 1, end_block=i - 1, num_blocks=1)
    return Job.new(JobType.SNOS_RUN, i, meta, now=now, orchestrator_version="0.1.0")


async def test_created_job_reads_back_equal(database: Database) -> None:
    job = snos_job(1)
    assert await database.create_job(job) is True
    assert await database.get_job(job.id) == job
    assert await database.get_job_by_internal_id(JobType.SNOS_RUN, 1) == job


async def test_duplicate_creation_is_a_no_op(database: Database) -> None:
    first = snos_job(1)
    assert await database.create_job(first)
    second = snos_job(1)
    assert await database.create_job(second) is False
    assert await database.get_job(second.id) is None
    assert (await database.get_job_by_internal_id(JobType.SNOS_RUN, 1)) == first
    assert await database.count_jobs() == {(JobType.SNOS_RUN, JobStatus.CREATED): 1}


async def test_update_bumps_version_and_a_stale_write_is_refused(database: Database) -> None:
    job = snos_job(1)
    await database.create_job(job)
    locked = await database.update_job(transition(job, JobStatus.LOCKED_FOR_PROCESSING), now=1001.0)
    assert locked.version == 1 and locked.updated_at == 1001.0
    with pytest.raises(StaleVersion, match="changed since version 0"):
        await database.update_job(transition(job, JobStatus.FAILED), now=1002.0)
    stored = await database.get_job(job.id)
    assert stored is not None and stored.status == JobStatus.LOCKED_FOR_PROCESSING and stored.version == 1


async def test_concurrent_writers_on_one_version_exactly_one_wins(database: Database) -> None:
    job = snos_job(1)
    await database.create_job(job)

    async def attempt(target: JobStatus) -> bool:
        try:
            await database.update_job(transition(job, target), now=1001.0)
            return True
        except StaleVersion:
            return False

    results = await asyncio.gather(*(attempt(JobStatus.LOCKED_FOR_PROCESSING) for _ in range(10)))
    assert sum(results) == 1


async def test_lease_take_over_refused_while_the_lease_is_live(database: Database) -> None:
    job = snos_job(1)
    await database.create_job(job)
    held = await database.update_job(
        transition(job, JobStatus.LOCKED_FOR_PROCESSING, lease_owner="a", lease_expires_at=1100.0), now=1000.0
    )
    healed = transition(held, JobStatus.CREATED, lease_owner=None, lease_expires_at=None)
    with pytest.raises(StaleVersion):
        await database.update_job(healed, now=1050.0, only_if_lease_expired=True)
    assert await database.renew_lease(job.id, "a", 1200.0)
    assert not await database.renew_lease(job.id, "b", 1200.0), "only the owner renews"
    with pytest.raises(StaleVersion):
        await database.update_job(healed, now=1150.0, only_if_lease_expired=True)
    taken = await database.update_job(healed, now=1201.0, only_if_lease_expired=True)
    assert taken.status == JobStatus.CREATED and taken.version == held.version + 1


async def test_queries_used_by_the_triggers(database: Database) -> None:
    for i in range(1, 6):
        job = snos_job(i, now=1000.0 + i)
        await database.create_job(job)
        if i <= 3:
            await database.update_job(dataclasses.replace(job, status=JobStatus.COMPLETED), now=1010.0)
    proving = Job.new(JobType.PROOF_CREATION, 2, ProvingMetadata(block_number=1), now=1020.0, orchestrator_version="")
    await database.create_job(proving)
    missing = await database.jobs_without_successor(JobType.SNOS_RUN, JobStatus.COMPLETED, JobType.PROOF_CREATION)
    assert [j.internal_id for j in missing] == [1, 3]
    missing = await database.jobs_without_successor(
        JobType.SNOS_RUN, JobStatus.COMPLETED, JobType.PROOF_CREATION, min_internal_id=2
    )
    assert [j.internal_id for j in missing] == [3]
    latest = await database.latest_job(JobType.SNOS_RUN)
    assert latest is not None and latest.internal_id == 5
    latest_done = await database.latest_job(JobType.SNOS_RUN, statuses=[JobStatus.COMPLETED])
    assert latest_done is not None and latest_done.internal_id == 3
    oldest = await database.oldest_job(JobType.SNOS_RUN, excluding_statuses=[JobStatus.COMPLETED])
    assert oldest is not None and oldest.internal_id == 4
    listed = await database.list_jobs(statuses=[JobStatus.CREATED], job_types=[JobType.SNOS_RUN])
    assert [j.internal_id for j in listed] == [4, 5]
    stalled = await database.stalled_jobs([JobStatus.CREATED], updated_before=1004.5, limit=10)
    assert [j.internal_id for j in stalled] == [4]


async def test_batches_and_jobs_for_a_block(database: Database) -> None:
    for i in (1, 2):
        await database.save_aggregator_batch(
            AggregatorBatch(
                index=i,
                start_block=(i - 1) * 10,
                end_block=i * 10 - 1,
                status=AggregatorBatchStatus.CLOSED,
                created_at=1.0,
                updated_at=1.0,
            )
        )
    for i in (1, 2, 3):
        await database.save_snos_batch(
            SnosBatch(
                index=i,
                start_block=(i - 1) * 5,
                end_block=i * 5 - 1,
                status=SnosBatchStatus.CLOSED,
                created_at=1.0,
                updated_at=1.0,
                aggregator_batch_index=1 if i <= 2 else 2,
            )
        )
    agg = await database.aggregator_batch_for_block(12)
    assert agg is not None and agg.index == 2
    snos = await database.snos_batch_for_block(7)
    assert snos is not None and snos.index == 2
    assert [b.index for b in await database.list_snos_batches(aggregator_index=1)] == [1, 2]
    assert await database.aggregator_batch_for_block(99) is None
    await database.set_aggregator_batch_status(1, AggregatorBatchStatus.COMPLETED, now=5.0)
    updated = await database.get_aggregator_batch(1)
    assert updated is not None and updated.status == AggregatorBatchStatus.COMPLETED and updated.updated_at == 5.0
    closed = await database.list_aggregator_batches(statuses=[AggregatorBatchStatus.CLOSED])
    assert [b.index for b in closed] == [2]
    job = snos_job(2)
    await database.create_job(job)
    without = await database.snos_batches_without_jobs(SnosBatchStatus.CLOSED)
    assert [b.index for b in without] == [1, 3]
    assert [j.id for j in await database.jobs_for_block(6)] == [job.id]
    assert await database.jobs_for_block(1000) == []


async def test_locks_are_exclusive_and_free_again_at_expiry(database: Database) -> None:
    locks = database
    assert await locks.acquire("k", "a", 0.3)  # type: ignore[attr-defined]
    assert not await locks.acquire("k", "b", 10)  # type: ignore[attr-defined]
    await asyncio.sleep(0.35)
    assert await locks.acquire("k", "b", 10), "an expired lock is free at once"  # type: ignore[attr-defined]
    assert not await locks.release("k", "a")  # type: ignore[attr-defined]
    assert await locks.release("k", "b")  # type: ignore[attr-defined]
