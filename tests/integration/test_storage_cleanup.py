"""StorageCleanup (SPEC §4.12) on a real SQLite store and the files object store: the artifacts of settled
batches are marked to expire, each job once, and the files store's expiry rule deletes them in time."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.domain.artifacts import aggregator_artifact_keys
from madara_orchestrator.domain.batches import SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, SettlementContext, StateUpdateMetadata
from madara_orchestrator.engine.cleanup import MAX_BLOB_FILES, StorageCleanup
from tests.helpers.engine import FakeClock

DAY = 86400.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteDatabase(tmp_path / "orchestrator.db")
    await db.open()
    yield SqliteStore(db)
    await db.close()


async def settled(store: SqliteStore, index: int, *, status: JobStatus = JobStatus.COMPLETED) -> Job:
    meta = StateUpdateMetadata(context=SettlementContext(type="Batch", to_settle=index))
    job = Job.new(JobType.STATE_TRANSITION, index, meta, now=1000.0, orchestrator_version="0.1.0")
    job = dataclasses.replace(job, status=status)
    assert await store.create_job(job)
    return job


async def test_settled_batches_artifacts_are_marked_once_and_expire_after_the_configured_days(
    tmp_path: Path, store: SqliteStore
) -> None:
    clock = FakeClock(start=1_000_000.0)
    objects = FilesystemObjectStore(tmp_path / "objects", expiration_days=14, clock=clock)
    for index, (start, end, agg) in enumerate([(0, 1, 1), (2, 3, 1), (4, 5, 2)], start=1):
        await store.insert_snos_batch(
            SnosBatch(
                index=index,
                start_block=start,
                end_block=end,
                aggregator_batch_index=agg,
                status=SnosBatchStatus.CLOSED,
                created_at=1.0,
                updated_at=1.0,
            )
        )
        for name in ("cairo_pie.zip", "snos_output.json", "program_output.txt"):
            await objects.put(f"{index}/{name}", b"x")
    for agg in (1, 2):
        for key in ("cairo_pie.zip", "da_blob.json", "program_output.txt"):
            await objects.put(f"artifacts/batch/{agg}/{key}", b"x")
        await objects.put(f"blob/batch/{agg}/1.txt", b"x")
        await objects.put(f"state_update/batch/{agg}.json", b"x")
    await settled(store, 1)
    await settled(store, 2, status=JobStatus.PENDING_VERIFICATION)  # not settled yet: left alone

    cleanup = StorageCleanup(db=store, store=objects, locks=store, owner="me", clock=clock)
    assert await cleanup.run() is True
    assert cleanup.tagged_objects == 3 + 1 + 1 + 2 * 3, "batch 1's aggregator artifacts and its two SNOS batches"
    job = await store.get_job_by_internal_id(JobType.STATE_TRANSITION, 1)
    assert job is not None and isinstance(job.metadata.specific, StateUpdateMetadata)
    assert job.metadata.specific.storage_artifacts_tagged_at is not None
    assert await cleanup.run() is False, "a job is done once"

    later = await store.get_job_by_internal_id(JobType.STATE_TRANSITION, 2)
    assert later is not None
    await store.update_job(dataclasses.replace(later, status=JobStatus.COMPLETED), now=2000.0)
    assert await cleanup.run() is True and cleanup.jobs_done == 2

    marked = set(aggregator_artifact_keys(1, max_blob_files=MAX_BLOB_FILES)) | {f"{i}/cairo_pie.zip" for i in (1, 2)}
    # Nothing is deleted before its time; everything marked is deleted after it; the rest stays.
    clock.advance(13 * DAY)
    await objects.tag_for_expiry([])
    assert await objects.exists("1/cairo_pie.zip") and await objects.exists("artifacts/batch/1/da_blob.json")
    await objects.put("99/unsettled.bin", b"keep")
    clock.advance(2 * DAY)
    await objects.tag_for_expiry([])
    left = await objects.list("")
    assert not marked & set(left), left
    assert left == ["99/unsettled.bin"], "only the unmarked file is left (batch 2 was marked at the same time)"


async def test_another_instance_holding_the_cleanup_lease_means_this_run_does_nothing(
    tmp_path: Path, store: SqliteStore
) -> None:
    objects = FilesystemObjectStore(tmp_path / "objects")
    await settled(store, 1)
    assert await store.acquire("StorageCleanupWorker", "other", 60)
    cleanup = StorageCleanup(db=store, store=objects, locks=store, owner="me", clock=FakeClock())
    assert await cleanup.run() is False
    assert await store.release("StorageCleanupWorker", "other")
    assert await cleanup.run() is True


async def test_the_files_store_refuses_keys_inside_its_expiry_marks(tmp_path: Path) -> None:
    from madara_orchestrator.domain.errors import InvalidInput

    objects = FilesystemObjectStore(tmp_path / "objects")
    with pytest.raises(InvalidInput):
        await objects.put(".expiry/1/cairo_pie.zip", b"x")
